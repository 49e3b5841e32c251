-- Repair plans: created from a run's divergences with a checksum over what they would change,
-- claimed under a lease by the one login that applies them, and finished or released only by it.

-- Stores a plan ({pair, table, bucket, fingerprint, expiresAt, body: {changes, sql, ...}}) as made
-- by the caller; links it to the bucket's divergence in flight, which becomes 'inspected'.
CREATE OR REPLACE FUNCTION syncguard_control.create_plan(p jsonb, p_aws_creator text DEFAULT NULL::text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_by text := syncguard_control._identity(p_aws_creator);
  v_body jsonb := p->'body';
  v_why text;
  v_div bigint;
  v_sum text;
  r syncguard_control.repair_plan;
BEGIN
  IF jsonb_typeof(v_body->'changes') IS DISTINCT FROM 'array' OR jsonb_typeof(v_body->'sql') IS DISTINCT FROM 'string' THEN
    RAISE EXCEPTION 'a plan''s body holds its changes (an array) and its SQL preview (a string)' USING ERRCODE = 'SGE01';
  END IF;
  v_why := syncguard_control._preview_mismatch(v_body->'changes', v_body->>'sql');
  IF v_why IS NOT NULL THEN
    RAISE EXCEPTION 'the plan''s SQL preview does not show its changes: %; a plan is stored only as its reviewer will read it, make it again with syncguard plan', v_why
      USING ERRCODE = 'SGE02';
  END IF;
  IF (p->>'expiresAt')::timestamptz <= now() THEN
    RAISE EXCEPTION 'the plan expired at % before it was stored; make it again', p->>'expiresAt' USING ERRCODE = 'SGE06';
  END IF;
  SELECT divergence_id INTO v_div FROM syncguard_control.divergence
   WHERE pair = p->>'pair' AND table_name = p->>'table' AND bucket = p->>'bucket' AND state NOT IN ('verified', 'ignored');
  INSERT INTO syncguard_control.repair_plan (pair, table_name, bucket, fingerprint, divergence_id, created_by, expires_at, row_count, checksum, body)
  VALUES (p->>'pair', p->>'table', p->>'bucket', p->>'fingerprint', v_div, v_by, (p->>'expiresAt')::timestamptz,
          jsonb_array_length(v_body->'changes'), '', v_body)
  RETURNING * INTO r;
  v_sum := syncguard_control._plan_checksum(r);
  UPDATE syncguard_control.repair_plan SET checksum = v_sum WHERE plan_id = r.plan_id;
  PERFORM syncguard_control._move_divergence(v_div, 'inspected', v_by, 'plan ' || r.plan_id);
  RETURN jsonb_build_object('planId', r.plan_id, 'divergenceId', v_div, 'checksum', v_sum, 'createdBy', v_by,
                            'expiresAt', to_char(r.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
END $function$;

-- The checksum of a stored plan: everything that is reviewed and applied.
CREATE OR REPLACE FUNCTION syncguard_control._plan_checksum(p syncguard_control.repair_plan)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT 'sha256:' || encode(sha256(convert_to(jsonb_build_array(
           p.plan_id, p.pair, p.table_name, p.bucket, p.fingerprint,
           to_char(p.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           p.created_by, p.row_count, p.body)::text, 'UTF8')), 'hex');
$function$;

-- Why a plan's SQL preview does not show its changes, or NULL when it does.
CREATE OR REPLACE FUNCTION syncguard_control._preview_mismatch(p_changes jsonb, p_sql text)
RETURNS text LANGUAGE plpgsql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_lines text[] := string_to_array(coalesce(p_sql, ''), E'\n');
  v_n integer := coalesce(array_length(v_lines, 1), 0);
  v_count integer := jsonb_array_length(p_changes);
  v_k integer := 0;
  v_stmt text;
  v_want text;
  c jsonb;
  v jsonb;
BEGIN
  FOR i IN 1 .. v_n LOOP
    CONTINUE WHEN v_lines[i] NOT LIKE '-- precondition:%';
    v_k := v_k + 1;
    IF v_k > v_count THEN
      RETURN format('it shows more than the plan''s %s changes', v_count);
    END IF;
    c := p_changes -> (v_k - 1);
    v_stmt := NULL;
    FOR j IN i + 1 .. v_n LOOP
      IF v_lines[j] NOT LIKE '--%' THEN
        v_stmt := v_lines[j];
        EXIT;
      END IF;
    END LOOP;
    IF c->>'op' = 'delete' THEN
      v_want := 'DELETE ';
    ELSIF c->>'op' = 'upsert' THEN
      v_want := 'INSERT ';
    ELSE
      RETURN format('change %s has operation %s (delete or upsert expected)', v_k, coalesce(c->>'op', 'none'));
    END IF;
    IF v_stmt IS NULL OR left(v_stmt, length(v_want)) <> v_want THEN
      RETURN format('change %s (key %s) is a%s %s, but its statement is %s', v_k, c->>'key',
        CASE WHEN c->>'op' = 'upsert' THEN 'n' ELSE '' END, c->>'op', coalesce(left(v_stmt, 7) || '...', 'missing'));
    END IF;
    IF position(CASE WHEN c->>'subHash' IS NULL THEN 'subscriber row absent' ELSE 'subscriber row hash ' || (c->>'subHash') END IN v_lines[i]) = 0
       OR position(CASE WHEN c->>'pubHash' IS NULL THEN 'publisher row absent' ELSE 'publisher row hash ' || (c->>'pubHash') END IN v_lines[i]) = 0 THEN
      RETURN format('change %s (key %s): the preview shows other preconditions', v_k, c->>'key');
    END IF;
    IF c->>'op' = 'delete' THEN
      FOR v IN SELECT * FROM jsonb_array_elements(coalesce(c->'keyValues', '[]')) LOOP
        IF position(CASE WHEN jsonb_typeof(v) = 'null' THEN 'NULL' ELSE quote_literal(v #>> '{}') END IN v_stmt) = 0 THEN
          RETURN format('change %s (key %s): its statement does not name the key values it deletes', v_k, c->>'key');
        END IF;
      END LOOP;
    END IF;
  END LOOP;
  IF v_k < v_count THEN
    RETURN format('it shows %s of the plan''s %s changes', v_k, v_count);
  END IF;
  RETURN NULL;
END $function$;

-- Takes an approved plan for applying, for one run (p_claim), with a lease of p_lease_seconds;
-- checks everything first: the plan as stored still has the checksum its approval was given, it
-- is approved, not expired, and not applied. The same run, as the same login, may claim it again
-- (a retry, or the renewal before each request it sends): it gets the plan back with its state
-- ('applying', its lease renewed; or 'applied' with the outcome recorded). Another run is refused
-- (SGE08), saying whose claim it is and until when.
CREATE OR REPLACE FUNCTION syncguard_control.claim_plan(p_plan bigint, p_claim text, p_lease_seconds integer DEFAULT NULL::integer)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_by text := syncguard_control._identity(NULL);
  v_lease interval := syncguard_control._lease(p_lease_seconds);
  v_sum text;
  r syncguard_control.repair_plan;
  a syncguard_control.plan_approval;
BEGIN
  r := syncguard_control._plan_for_claim(p_plan, p_claim);
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
END $function$;

-- Gives a plan being applied by run p_from, whose lease has ended, to run p_claim. The caller has
-- checked that the publisher holds no repair request of the plan (what was sent is recovered,
-- never sent again); p_from names the claim it checked for, so a claim renewed or taken over
-- meanwhile is not taken. The plan must still be applicable: its approval's checksum is the
-- stored plan's, and it has not expired.
CREATE OR REPLACE FUNCTION syncguard_control.take_over_plan(p_plan bigint, p_claim text, p_from text, p_lease_seconds integer DEFAULT NULL::integer)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_by text := syncguard_control._identity(NULL);
  v_lease interval := syncguard_control._lease(p_lease_seconds);
  r syncguard_control.repair_plan;
  a syncguard_control.plan_approval;
BEGIN
  r := syncguard_control._plan_for_claim(p_plan, p_claim);
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
END $function$;

-- Gives a claimed plan back when applying it failed before anything was sent: only the login
-- that holds the claim may, while its lease holds (the claim id is the workflow's execution, which
-- others can read; with it alone another applier could release a live claim and apply the plan
-- beside the run that holds it).
CREATE OR REPLACE FUNCTION syncguard_control.release_plan(p_plan bigint, p_claim text)
RETURNS boolean LANGUAGE sql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
$function$;

-- Records the outcome of a claimed plan: the divergence becomes repaired, then verified (bucket
-- equal) or open again (bucket still differs). Returns false when this run had recorded it already.
-- Only the login that holds the claim records it, or, once its lease ended, the run that recovers
-- the outcome from the nodes (a run killed after it sent the repair request leaves the plan
-- `applying`): the claim id alone would let another applier record any outcome, and a bucket
-- "verified" that nobody verified, while the holder is still at work.
CREATE OR REPLACE FUNCTION syncguard_control.finish_plan(p_plan bigint, p_claim text, p_outcome jsonb, p_bucket_equal boolean)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- The plan a run (p_claim) claims or takes over, locked until the end of the transaction; an empty
-- claim or a plan that does not exist is refused (SGE01).
CREATE OR REPLACE FUNCTION syncguard_control._plan_for_claim(p_plan bigint, p_claim text)
RETURNS syncguard_control.repair_plan LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard_control.repair_plan;
BEGIN
  IF p_claim IS NULL OR p_claim = '' THEN
    RAISE EXCEPTION 'a claim names the run that applies the plan' USING ERRCODE = 'SGE01';
  END IF;
  SELECT * INTO r FROM syncguard_control.repair_plan WHERE plan_id = p_plan FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'plan % does not exist in this control plane', p_plan USING ERRCODE = 'SGE01';
  END IF;
  RETURN r;
END $function$;

-- Why another run may not have a plan that is being applied: whose claim it is and until when.
CREATE OR REPLACE FUNCTION syncguard_control._claim_refusal(r syncguard_control.repair_plan)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT CASE
    WHEN r.lease_until > now() THEN
      format('plan %s is being applied by run %s (%s), whose claim holds until %s; wait for it, or run the repair again after that time',
             r.plan_id, r.claim_id, coalesce(r.claimed_by, r.applied_by, 'unknown'), syncguard_control._ts(r.lease_until))
    ELSE
      format('plan %s was claimed by run %s (%s), whose claim ended %s without an outcome; the repair of the plan takes it over once the publisher holds no repair request of it (syncguard repair --plan %s)',
             r.plan_id, r.claim_id, coalesce(r.claimed_by, r.applied_by, 'unknown'),
             coalesce('at ' || syncguard_control._ts(r.lease_until), 'with no lease recorded'), r.plan_id)
  END;
$function$;

CREATE OR REPLACE FUNCTION syncguard_control._claimed(r syncguard_control.repair_plan, p_state text)
RETURNS jsonb LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT jsonb_build_object('state', p_state, 'table', r.table_name, 'bucket', r.bucket, 'fingerprint', r.fingerprint,
                            'body', r.body, 'outcome', r.outcome, 'claimedBy', r.claimed_by,
                            'leaseUntil', syncguard_control._ts(r.lease_until));
$function$;

-- A lease's length, in seconds, as asked for (NULL: ten minutes), within a second and a day.
CREATE OR REPLACE FUNCTION syncguard_control._lease(p_seconds integer)
RETURNS interval LANGUAGE plpgsql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
BEGIN
  IF p_seconds IS NOT NULL AND (p_seconds < 1 OR p_seconds > 86400) THEN
    RAISE EXCEPTION 'a claim''s lease is 1 to 86400 seconds, got %', p_seconds USING ERRCODE = 'SGE01';
  END IF;
  RETURN make_interval(secs => coalesce(p_seconds, 600));
END $function$;

CREATE OR REPLACE FUNCTION syncguard_control._ts(p timestamp with time zone)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT to_char(p AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"');
$function$;

-- Stores the workflow's task token while the plan awaits its decision; returns the plan's state,
-- or NULL when the plan does not exist. A token is stored once: a different token for a plan that
-- has one is refused (nobody replaces the workflow's wait). A plan already decided stores nothing
-- and returns its state: the caller completes its own token with the decision.
CREATE OR REPLACE FUNCTION syncguard_control.set_task_token(p_plan bigint, p_token text)
RETURNS text LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard_control.repair_plan;
BEGIN
  IF p_token IS NULL OR p_token = '' THEN
    RAISE EXCEPTION 'a task token is required' USING ERRCODE = 'SGE01';
  END IF;
  SELECT * INTO r FROM syncguard_control.repair_plan WHERE plan_id = p_plan FOR UPDATE;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF r.state <> 'proposed' THEN
    RETURN r.state;
  END IF;
  IF r.task_token IS NOT NULL THEN
    IF r.task_token = p_token THEN
      RETURN r.state;
    END IF;
    RAISE EXCEPTION 'plan % already has a workflow waiting for its decision; its task token is not replaced', p_plan
      USING ERRCODE = 'SGE03';
  END IF;
  UPDATE syncguard_control.repair_plan SET task_token = p_token WHERE plan_id = p_plan;
  RETURN r.state;
END $function$;

-- The task token waiting for a decided plan, taken (cleared) so that it is completed once. A plan
-- still awaiting its decision keeps its token.
CREATE OR REPLACE FUNCTION syncguard_control.take_task_token(p_plan bigint)
RETURNS text LANGUAGE sql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  WITH o AS (SELECT task_token AS t FROM syncguard_control.repair_plan WHERE plan_id = p_plan AND state <> 'proposed' FOR UPDATE),
       u AS (UPDATE syncguard_control.repair_plan p SET task_token = NULL FROM o WHERE p.plan_id = p_plan AND o.t IS NOT NULL RETURNING o.t)
  SELECT t FROM u;
$function$;
