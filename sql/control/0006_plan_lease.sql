-- syncguard control plane 0006: claims with a lease, and approvals bound to a deployment and a
-- plan's checksum (docs/repair.md "Claims and their lease", docs/deploy.md "Approving a repair").
--
-- Claims. Until 0005 a run that claimed a plan ('applying') and was killed before its repair
-- request reached the publisher left the plan 'applying' for ever: the recovery of a killed run
-- finds its request on the publisher, and with none there every later run was told "already being
-- applied". A claim now has a lease recorded by the server (claimed_by, claimed_at, lease_until).
-- While the lease holds, another run is refused with SGE08 naming the claimant and the time the
-- lease ends. The run holding the claim renews it (claim_plan again, same claim and same login)
-- before every request it sends, so a run that was taken over learns it before it sends anything.
-- Once the lease has ended, take_over_plan gives the plan to another run; its caller checks first
-- that the publisher holds no repair request of the plan (a request that reached the node is
-- recovered, never sent again). Every claim, take-over and release is kept in plan_claim_event.
--
-- Approvals. The approval function's signed STS request named only the plan number and the
-- decision, so for the 15 minutes STS accepts a signature it could be replayed against another
-- deployment's plan of the same number, or a plan made again under that number. What is signed
-- now names this control plane (deployment.deployment_id, random, made here once) and the
-- checksum of the plan the approver reviewed; decide_plan refuses an approval whose checksum is
-- not the stored plan's, and requires one for every decision recorded for an AWS principal.

ALTER TABLE syncguard_control.repair_plan ADD COLUMN claimed_by text;
ALTER TABLE syncguard_control.repair_plan ADD COLUMN claimed_at timestamptz;
ALTER TABLE syncguard_control.repair_plan ADD COLUMN lease_until timestamptz;

-- Who claimed, took over or released which plan, and when (an audit trail; written only here).
CREATE TABLE syncguard_control.plan_claim_event (
  event_id     bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  plan_id      bigint NOT NULL REFERENCES syncguard_control.repair_plan,
  at           timestamptz NOT NULL DEFAULT now(),
  action       text NOT NULL CHECK (action IN ('claimed', 'taken_over', 'released')),
  claim_id     text NOT NULL,
  claimed_by   text NOT NULL,
  lease_until  timestamptz,
  from_claim   text,
  from_by      text
);
CREATE INDEX plan_claim_event_plan ON syncguard_control.plan_claim_event (plan_id, event_id);

-- This control plane's identity, named in every decision signed for the approval function.
CREATE TABLE syncguard_control.deployment (
  singleton      boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  deployment_id  text NOT NULL DEFAULT gen_random_uuid()::text,
  created_at     timestamptz NOT NULL DEFAULT now()
);
INSERT INTO syncguard_control.deployment DEFAULT VALUES;

CREATE TRIGGER guard_writes BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON syncguard_control.plan_claim_event
  FOR EACH STATEMENT EXECUTE FUNCTION syncguard_control._guard_plans();
CREATE TRIGGER guard_writes BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON syncguard_control.deployment
  FOR EACH STATEMENT EXECUTE FUNCTION syncguard_control._guard_plans();

-- A lease's length, in seconds, as asked for (NULL: ten minutes), within a second and a day.
CREATE FUNCTION syncguard_control._lease(p_seconds integer) RETURNS interval
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF p_seconds IS NOT NULL AND (p_seconds < 1 OR p_seconds > 86400) THEN
    RAISE EXCEPTION 'a claim''s lease is 1 to 86400 seconds, got %', p_seconds USING ERRCODE = 'SGE01';
  END IF;
  RETURN make_interval(secs => coalesce(p_seconds, 600));
END
$$;

CREATE FUNCTION syncguard_control._ts(p timestamptz) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
$$;

CREATE FUNCTION syncguard_control._claimed(r syncguard_control.repair_plan, p_state text) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object('state', p_state, 'table', r.table_name, 'bucket', r.bucket, 'fingerprint', r.fingerprint,
                            'body', r.body, 'outcome', r.outcome, 'claimedBy', r.claimed_by,
                            'leaseUntil', syncguard_control._ts(r.lease_until));
$$;

-- Why another run may not have a plan that is being applied: whose claim it is and until when.
CREATE FUNCTION syncguard_control._claim_refusal(r syncguard_control.repair_plan) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE
    WHEN r.lease_until > now() THEN
      format('plan %s is being applied by run %s (%s), whose claim holds until %s; wait for it, or run the repair again after that time',
             r.plan_id, r.claim_id, coalesce(r.claimed_by, r.applied_by, 'unknown'), syncguard_control._ts(r.lease_until))
    ELSE
      format('plan %s was claimed by run %s (%s), whose claim ended %s without an outcome; the repair of the plan takes it over once the publisher holds no repair request of it (syncguard repair --plan %s)',
             r.plan_id, r.claim_id, coalesce(r.claimed_by, r.applied_by, 'unknown'),
             coalesce('at ' || syncguard_control._ts(r.lease_until), 'with no lease recorded'), r.plan_id)
  END;
$$;

-- Takes an approved plan for applying, for one run (p_claim), with a lease of p_lease_seconds;
-- checks everything first: the plan as stored still has the checksum its approval was given, it
-- is approved, not expired, and not applied. The same run, as the same login, may claim it again
-- (a retry, or the renewal before each request it sends): it gets the plan back with its state
-- ('applying', its lease renewed; or 'applied' with the outcome recorded). Another run is refused
-- (SGE08), saying whose claim it is and until when.
CREATE FUNCTION syncguard_control.claim_plan(p_plan bigint, p_claim text, p_lease_seconds integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_by text := syncguard_control._identity(NULL);
  v_lease interval := syncguard_control._lease(p_lease_seconds);
  v_sum text;
  r syncguard_control.repair_plan;
  a syncguard_control.plan_approval;
BEGIN
  IF p_claim IS NULL OR p_claim = '' THEN
    RAISE EXCEPTION 'a claim names the run that applies the plan' USING ERRCODE = 'SGE01';
  END IF;
  SELECT * INTO r FROM syncguard_control.repair_plan WHERE plan_id = p_plan FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'plan % does not exist in this control plane', p_plan USING ERRCODE = 'SGE01';
  END IF;
  SELECT * INTO a FROM syncguard_control.plan_approval WHERE plan_id = p_plan;
  v_sum := syncguard_control._plan_checksum(r);
  IF r.state IN ('applying', 'applied') THEN
    IF r.claim_id = p_claim AND coalesce(r.claimed_by, r.applied_by) = v_by AND a.checksum = v_sum THEN
      IF r.state = 'applying' AND r.expires_at <= now() THEN
        -- a renewal comes before each request: nothing more is sent for a plan past its expiry
        RAISE EXCEPTION 'plan % expired at % while run % applied it; what was sent is recorded by the run, nothing more is sent; inspect again and make a new plan',
          p_plan, to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), p_claim USING ERRCODE = 'SGE06';
      ELSIF r.state = 'applying' THEN
        UPDATE syncguard_control.repair_plan SET lease_until = now() + v_lease, claimed_by = v_by WHERE plan_id = p_plan
        RETURNING * INTO r;
      END IF;
      RETURN syncguard_control._claimed(r, r.state);
    END IF;
    IF r.state = 'applied' THEN
      RAISE EXCEPTION 'plan % was already applied by run % (%); nothing to do', p_plan, r.claim_id, coalesce(r.applied_by, 'unknown')
        USING ERRCODE = 'SGE03';
    END IF;
    RAISE EXCEPTION '%', syncguard_control._claim_refusal(r) USING ERRCODE = 'SGE08';
  END IF;
  IF r.state = 'rejected' OR a.decision = 'rejected' THEN
    RAISE EXCEPTION 'plan % was rejected by %', p_plan, coalesce(a.decided_by, 'an approver') USING ERRCODE = 'SGE04';
  END IF;
  IF r.expires_at <= now() THEN
    RAISE EXCEPTION 'plan % expired at %; inspect again and make a new plan', p_plan,
      to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') USING ERRCODE = 'SGE06';
  END IF;
  IF a.plan_id IS NULL OR r.state <> 'approved' THEN
    RAISE EXCEPTION 'plan % is not approved; run syncguard approve --plan %', p_plan, p_plan USING ERRCODE = 'SGE05';
  END IF;
  IF a.checksum IS DISTINCT FROM v_sum THEN
    RAISE EXCEPTION 'plan % was approved as %, but is now %; make a new plan', p_plan, a.checksum, v_sum USING ERRCODE = 'SGE02';
  END IF;
  UPDATE syncguard_control.repair_plan
     SET state = 'applying', applied_by = v_by, claim_id = p_claim, claimed_by = v_by, claimed_at = now(), lease_until = now() + v_lease
   WHERE plan_id = p_plan
  RETURNING * INTO r;
  INSERT INTO syncguard_control.plan_claim_event (plan_id, action, claim_id, claimed_by, lease_until)
  VALUES (p_plan, 'claimed', p_claim, v_by, r.lease_until);
  RETURN syncguard_control._claimed(r, 'applying');
END
$$;

-- Gives a plan being applied by run p_from, whose lease has ended, to run p_claim. The caller has
-- checked that the publisher holds no repair request of the plan (what was sent is recovered,
-- never sent again); p_from names the claim it checked for, so a claim renewed or taken over
-- meanwhile is not taken. The plan must still be applicable: its approval's checksum is the
-- stored plan's, and it has not expired.
CREATE FUNCTION syncguard_control.take_over_plan(p_plan bigint, p_claim text, p_from text, p_lease_seconds integer DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_by text := syncguard_control._identity(NULL);
  v_lease interval := syncguard_control._lease(p_lease_seconds);
  r syncguard_control.repair_plan;
  a syncguard_control.plan_approval;
BEGIN
  IF p_claim IS NULL OR p_claim = '' THEN
    RAISE EXCEPTION 'a claim names the run that applies the plan' USING ERRCODE = 'SGE01';
  END IF;
  SELECT * INTO r FROM syncguard_control.repair_plan WHERE plan_id = p_plan FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'plan % does not exist in this control plane', p_plan USING ERRCODE = 'SGE01';
  END IF;
  IF r.state = 'applied' THEN
    RAISE EXCEPTION 'plan % was already applied by run % (%); nothing to do', p_plan, r.claim_id, coalesce(r.applied_by, 'unknown')
      USING ERRCODE = 'SGE03';
  END IF;
  IF r.state <> 'applying' OR r.claim_id IS DISTINCT FROM p_from THEN
    RAISE EXCEPTION 'plan % is no longer claimed by run % (it is %, claimed by %); run the repair again', p_plan, p_from, r.state,
      coalesce(r.claim_id, 'no run') USING ERRCODE = 'SGE08';
  END IF;
  IF r.lease_until > now() THEN
    RAISE EXCEPTION '%', syncguard_control._claim_refusal(r) USING ERRCODE = 'SGE08';
  END IF;
  IF r.expires_at <= now() THEN
    RAISE EXCEPTION 'plan % expired at % while its claim by run % was left unfinished; inspect again and make a new plan', p_plan,
      to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"'), r.claim_id USING ERRCODE = 'SGE06';
  END IF;
  SELECT * INTO a FROM syncguard_control.plan_approval WHERE plan_id = p_plan;
  IF a.decision IS DISTINCT FROM 'approved' OR a.checksum IS DISTINCT FROM syncguard_control._plan_checksum(r) THEN
    RAISE EXCEPTION 'plan % is not applicable as approved (approved as %, now %); make a new plan', p_plan,
      coalesce(a.checksum, 'nothing'), syncguard_control._plan_checksum(r) USING ERRCODE = 'SGE02';
  END IF;
  INSERT INTO syncguard_control.plan_claim_event (plan_id, action, claim_id, claimed_by, lease_until, from_claim, from_by)
  VALUES (p_plan, 'taken_over', p_claim, v_by, now() + v_lease, r.claim_id, coalesce(r.claimed_by, r.applied_by));
  UPDATE syncguard_control.repair_plan
     SET applied_by = v_by, claim_id = p_claim, claimed_by = v_by, claimed_at = now(), lease_until = now() + v_lease
   WHERE plan_id = p_plan
  RETURNING * INTO r;
  RETURN syncguard_control._claimed(r, 'applying');
END
$$;

-- Gives a claimed plan back when applying it failed before anything was sent: only the login
-- that holds the claim may, while its lease holds (the claim id is the workflow's execution, which
-- others can read; with it alone another applier could release a live claim and apply the plan
-- beside the run that holds it).
CREATE OR REPLACE FUNCTION syncguard_control.release_plan(p_plan bigint, p_claim text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  WITH u AS (
    UPDATE syncguard_control.repair_plan
       SET state = 'approved', applied_by = NULL, claim_id = NULL, claimed_by = NULL, claimed_at = NULL, lease_until = NULL
     WHERE plan_id = p_plan AND state = 'applying' AND claim_id = p_claim
       AND (claimed_by = syncguard_control._identity(NULL) OR lease_until IS NULL OR lease_until < now())
    RETURNING plan_id),
       e AS (
    INSERT INTO syncguard_control.plan_claim_event (plan_id, action, claim_id, claimed_by)
    SELECT plan_id, 'released', p_claim, 'db:' || session_user FROM u RETURNING 1)
  SELECT count(*) = 1 FROM e;
$$;

-- Records the outcome of a claimed plan, as in 0005, and only as the login that holds the claim,
-- or, once its lease ended, as the run that recovers the outcome from the nodes (item 22): the
-- claim id alone would let another applier record any outcome, and a bucket "verified" that
-- nobody verified, while the holder is still at work.
CREATE OR REPLACE FUNCTION syncguard_control.finish_plan(p_plan bigint, p_claim text, p_outcome jsonb, p_bucket_equal boolean) RETURNS boolean
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_by text := syncguard_control._identity(NULL);
  r syncguard_control.repair_plan;
BEGIN
  SELECT * INTO r FROM syncguard_control.repair_plan WHERE plan_id = p_plan FOR UPDATE;
  IF FOUND AND r.state = 'applied' AND r.claim_id = p_claim THEN
    RETURN false;
  END IF;
  IF NOT FOUND OR r.state <> 'applying' OR r.claim_id IS DISTINCT FROM p_claim THEN
    RAISE EXCEPTION 'plan % is not being applied by this run; its outcome is not recorded', p_plan USING ERRCODE = 'SGE03';
  END IF;
  IF r.claimed_by IS DISTINCT FROM v_by AND r.lease_until IS NOT NULL AND r.lease_until >= now() THEN
    RAISE EXCEPTION 'plan % is being applied by run % (%), whose claim holds until %; only that login records its outcome before then',
      p_plan, r.claim_id, r.claimed_by, r.lease_until USING ERRCODE = 'SGE08';
  END IF;
  UPDATE syncguard_control.repair_plan SET state = 'applied', applied_at = now(), outcome = p_outcome WHERE plan_id = p_plan;
  PERFORM syncguard_control._move_divergence(r.divergence_id, 'repaired', v_by, 'plan ' || p_plan);
  IF p_bucket_equal THEN
    PERFORM syncguard_control._move_divergence(r.divergence_id, 'verified', v_by, 'bucket equal at a probe after plan ' || p_plan);
  ELSIF NOT p_bucket_equal THEN
    PERFORM syncguard_control._move_divergence(r.divergence_id, 'open', v_by, 'bucket still differs after plan ' || p_plan);
  END IF;
  RETURN true;
END
$$;

-- What a decision signed for the approval function names: this control plane, the plan, the
-- checksum of the plan the approver reviewed, and the decision.
CREATE FUNCTION syncguard_control.deployment_id() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT deployment_id FROM syncguard_control.deployment;
$$;

-- Records a decision on a plan as the caller, against the checksum of the plan as stored. With
-- p_checksum (the checksum the approver reviewed and, through the approval function, signed),
-- the decision is refused unless it is the stored plan's; a decision for an AWS principal needs it.
CREATE FUNCTION syncguard_control.decide_plan(p_plan bigint, p_decision text, p_comment text DEFAULT NULL,
                                              p_four_eyes boolean DEFAULT false, p_aws_approver text DEFAULT NULL,
                                              p_checksum text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_by text := syncguard_control._identity(p_aws_approver);
  v_four boolean;
  v_approvers text[];
  v_sum text;
  r syncguard_control.repair_plan;
  a syncguard_control.plan_approval;
BEGIN
  IF p_decision IS NULL OR p_decision NOT IN ('approved', 'rejected') THEN
    RAISE EXCEPTION 'a decision is approved or rejected, got %', coalesce(p_decision, 'none') USING ERRCODE = 'SGE01';
  END IF;
  IF p_aws_approver IS NOT NULL AND p_checksum IS NULL THEN
    RAISE EXCEPTION 'a decision for an AWS principal names the checksum of the plan the approver signed for; decide with syncguard approve --function'
      USING ERRCODE = 'SGE01';
  END IF;
  SELECT * INTO r FROM syncguard_control.repair_plan WHERE plan_id = p_plan FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'plan % does not exist in this control plane', p_plan USING ERRCODE = 'SGE01';
  END IF;
  v_sum := syncguard_control._plan_checksum(r);
  IF v_sum IS DISTINCT FROM r.checksum THEN
    RAISE EXCEPTION 'plan % was altered after it was stored (or stored before the control plane computed checksums); make a new plan', p_plan
      USING ERRCODE = 'SGE02';
  END IF;
  IF p_checksum IS NOT NULL AND p_checksum IS DISTINCT FROM v_sum THEN
    RAISE EXCEPTION 'plan % is %, not the % its approver reviewed; review plan % again and decide on what it is now', p_plan, v_sum,
      p_checksum, p_plan USING ERRCODE = 'SGE02';
  END IF;
  SELECT * INTO a FROM syncguard_control.plan_approval WHERE plan_id = p_plan;
  IF FOUND THEN
    RAISE EXCEPTION 'plan % was already % by %', p_plan, a.decision, a.decided_by USING ERRCODE = 'SGE03';
  END IF;
  IF r.state <> 'proposed' THEN
    RAISE EXCEPTION 'plan % is %; it can no longer be decided', p_plan, r.state USING ERRCODE = 'SGE03';
  END IF;
  IF r.expires_at <= now() THEN
    RAISE EXCEPTION 'plan % expired at %; inspect again and make a new plan', p_plan,
      to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"') USING ERRCODE = 'SGE06';
  END IF;
  SELECT four_eyes, aws_approvers INTO v_four, v_approvers FROM syncguard_control.approval_policy;
  IF p_aws_approver IS NOT NULL AND NOT syncguard_control._aws_approver_allowed(p_aws_approver, v_approvers) THEN
    IF coalesce(cardinality(v_approvers), 0) = 0 THEN
      RAISE EXCEPTION 'no AWS principal may decide plans in this control plane: approval_policy.aws_approvers is empty; its owner sets who may, e.g. SELECT syncguard_control.set_approval_policy(<four-eyes>, NULL, ARRAY[''123456789012'', ''arn:aws:sts::123456789012:assumed-role/dba/*''])'
        USING ERRCODE = '42501';
    END IF;
    RAISE EXCEPTION '% is not allowed to decide plans: it matches none of approval_policy.aws_approvers (%); the control plane''s owner adds it with set_approval_policy', p_aws_approver, array_to_string(v_approvers, ', ')
      USING ERRCODE = '42501';
  END IF;
  v_four := coalesce(v_four, false) OR coalesce(p_four_eyes, false);
  IF v_four AND p_decision = 'approved' THEN
    IF split_part(r.created_by, ':', 1) NOT IN ('db', 'aws') OR split_part(r.created_by, ':', 1) <> split_part(v_by, ':', 1) THEN
      RAISE EXCEPTION 'four-eyes approval is on: plan % was made by %, which cannot be compared with %; approve it through the channel it was made in (a plan made with syncguard plan --control-dsn by another database role with syncguard approve --control-dsn, a plan the workflow made through the approval function)',
        p_plan, r.created_by, v_by USING ERRCODE = 'SGE07';
    END IF;
    IF syncguard_control._principal(r.created_by) = syncguard_control._principal(v_by) THEN
      RAISE EXCEPTION 'four-eyes approval is on: % made plan % and may not approve it; another person must', v_by, p_plan
        USING ERRCODE = 'SGE07';
    END IF;
  END IF;
  INSERT INTO syncguard_control.plan_approval (plan_id, checksum, decision, decided_by, comment, via_role)
  VALUES (p_plan, v_sum, p_decision, v_by, p_comment, session_user);
  UPDATE syncguard_control.repair_plan SET state = p_decision WHERE plan_id = p_plan;
  IF p_decision = 'approved' THEN
    PERFORM syncguard_control._move_divergence(r.divergence_id, 'approved', v_by, 'plan ' || p_plan);
  END IF;
  RETURN jsonb_build_object('planId', p_plan, 'decision', p_decision, 'checksum', v_sum, 'by', v_by);
END
$$;

-- The roles that could call claim_plan or decide_plan keep their rights under the new
-- signatures; those that could read plans may read the new tables (grant_role granted SELECT on
-- the tables there were when it ran).
DO $$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT x.grantee::regrole AS who, p.proname
      FROM pg_catalog.pg_proc p CROSS JOIN LATERAL aclexplode(p.proacl) x
     WHERE p.oid IN ('syncguard_control.claim_plan(bigint, text)'::regprocedure,
                     'syncguard_control.decide_plan(bigint, text, text, boolean, text)'::regprocedure)
       AND x.privilege_type = 'EXECUTE' AND x.grantee <> 0 AND x.grantee <> p.proowner
  LOOP
    IF g.proname = 'claim_plan' THEN
      EXECUTE format('GRANT EXECUTE ON FUNCTION syncguard_control.claim_plan(bigint, text, integer) TO %s', g.who);
      EXECUTE format('GRANT EXECUTE ON FUNCTION syncguard_control.take_over_plan(bigint, text, text, integer) TO %s', g.who);
    ELSE
      EXECUTE format('GRANT EXECUTE ON FUNCTION syncguard_control.decide_plan(bigint, text, text, boolean, text, text) TO %s', g.who);
      EXECUTE format('GRANT EXECUTE ON FUNCTION syncguard_control.deployment_id() TO %s', g.who);
    END IF;
  END LOOP;
  FOR g IN
    SELECT DISTINCT x.grantee::regrole AS who
      FROM pg_catalog.pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) x
     WHERE c.oid = 'syncguard_control.repair_plan'::regclass AND x.privilege_type = 'SELECT' AND x.grantee <> 0 AND x.grantee <> c.relowner
  LOOP
    EXECUTE format('GRANT SELECT ON syncguard_control.plan_claim_event, syncguard_control.deployment TO %s', g.who);
  END LOOP;
END
$$;
DROP FUNCTION syncguard_control.claim_plan(bigint, text);
DROP FUNCTION syncguard_control.decide_plan(bigint, text, text, boolean, text);

-- As in 0005, with the functions above in their kinds: take_over_plan for appliers, and
-- deployment_id (what a signed decision names) for approvers and the workflow's approval function.
CREATE OR REPLACE FUNCTION syncguard_control.grant_role(p_role name, p_kind text) RETURNS text
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role text := quote_ident(p_role);
  v_fns text[];
  f text;
BEGIN
  v_fns := CASE p_kind
    WHEN 'reader'   THEN '{}'::text[]
    WHEN 'recorder' THEN ARRAY['record_run(jsonb, jsonb)']
    WHEN 'planner'  THEN ARRAY['create_plan(jsonb, text)']
    WHEN 'approver' THEN ARRAY['decide_plan(bigint, text, text, boolean, text, text)', 'deployment_id()']
    WHEN 'applier'  THEN ARRAY['claim_plan(bigint, text, integer)', 'take_over_plan(bigint, text, text, integer)',
                               'finish_plan(bigint, text, jsonb, boolean)', 'release_plan(bigint, text)']
    WHEN 'workflow' THEN ARRAY['set_task_token(bigint, text)', 'take_task_token(bigint)', 'deployment_id()']
  END;
  IF v_fns IS NULL THEN
    RAISE EXCEPTION 'unknown control-plane role kind %: use reader, recorder, planner, approver, applier or workflow', coalesce(p_kind, 'none')
      USING ERRCODE = 'SGE01';
  END IF;
  EXECUTE format('GRANT USAGE ON SCHEMA syncguard_control TO %s', v_role);
  EXECUTE format('GRANT SELECT ON ALL TABLES IN SCHEMA syncguard_control TO %s', v_role);
  IF p_kind = 'recorder' THEN
    -- record_run runs as its caller: it writes the run, divergence and table tables itself
    EXECUTE format('GRANT INSERT, UPDATE ON ALL TABLES IN SCHEMA syncguard_control TO %s', v_role);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA syncguard_control TO %s', v_role);
  END IF;
  FOREACH f IN ARRAY v_fns LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION syncguard_control.%s TO %s', f, v_role);
  END LOOP;
  RETURN p_kind;
END
$$;

-- Every function here is revoked from PUBLIC, as in 0005; the owner grants them with grant_role.
-- (Direct writes to the new tables, which a recorder's grant on ALL TABLES gives, are refused by
-- their guard triggers.)
DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'syncguard_control'::regnamespace LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$$;
