-- syncguard control plane 0005: approvals that mean something (issue 17 items 9, 12, 18).
--
-- Until 0004 a control-plane writer inserted plans, decisions and checksums itself: it could name
-- any approver, rewrite a plan's changes and recompute its (client-side) checksum. From here:
--   * plans and decisions are written only through the SECURITY DEFINER functions below; writers
--     keep SELECT on repair_plan and plan_approval, and lose INSERT, UPDATE, DELETE and TRUNCATE
--     (revoked here from every grantee, and refused by a guard trigger should a later GRANT give
--     them back). A stored plan never changes again, except its state, through these functions.
--   * who made, decided and applied a plan is recorded by the server: 'db:' || session_user, or
--     'aws:' || a verified AWS principal passed by a role the control plane's owner trusts to
--     verify one (approval_policy.aws_gateway_roles, the Lambdas' login; the owner itself).
--   * the checksum is computed by the server from the stored plan (its keys, operations, values,
--     preconditions and the SQL preview the reviewer reads), recorded with the decision, and
--     computed again from the stored plan before it is applied.
--   * the preview must show the plan's changes: one precondition and one statement per change, in
--     order, a DELETE for each delete (naming its key values) and an INSERT for each upsert.
--   * four-eyes is a deployment setting (approval_policy.four_eyes), which a caller may make
--     stricter but never weaker, and compares identities of one kind.
--   * a claim belongs to one run (claim_id: the workflow's execution): that run's retry continues
--     it, any other run is refused.
-- Errors carry SQLSTATEs SGE01..SGE07, which functions/db/plans.ts turns into the named errors.

ALTER TABLE syncguard_control.repair_plan ADD COLUMN claim_id text;
ALTER TABLE syncguard_control.plan_approval ADD COLUMN via_role text;

-- The deployment's approval rules: one row, changed only by the control plane's owner.
CREATE TABLE syncguard_control.approval_policy (
  singleton          boolean PRIMARY KEY DEFAULT true CHECK (singleton),
  four_eyes          boolean NOT NULL DEFAULT false,
  aws_gateway_roles  text[] NOT NULL DEFAULT '{}',
  -- who may approve through the approval function: AWS account ids, or principal ARN patterns
  -- ('*' any text); empty refuses every AWS approval (a verified identity is not an authorised one)
  aws_approvers      text[] NOT NULL DEFAULT '{}'
);
INSERT INTO syncguard_control.approval_policy DEFAULT VALUES;

CREATE FUNCTION syncguard_control.set_approval_policy(p_four_eyes boolean, p_aws_gateway_roles text[] DEFAULT NULL,
                                                      p_aws_approvers text[] DEFAULT NULL) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$
  UPDATE syncguard_control.approval_policy
     SET four_eyes = p_four_eyes, aws_gateway_roles = coalesce(p_aws_gateway_roles, aws_gateway_roles),
         aws_approvers = coalesce(p_aws_approvers, aws_approvers);
$$;

-- Whether an AWS principal ARN is one approval_policy.aws_approvers allows: an entry of 12 digits
-- is an account; any other entry is the ARN with '*' standing for any text.
CREATE FUNCTION syncguard_control._aws_approver_allowed(p_arn text, p_allowed text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT EXISTS (
    SELECT 1 FROM unnest(coalesce(p_allowed, '{}')) e
     WHERE (e ~ '^[0-9]{12}$' AND split_part(p_arn, ':', 5) = e)
        OR (e !~ '^[0-9]{12}$' AND p_arn LIKE replace(replace(replace(replace(e, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')));
$$;

-- The identity an action is recorded under: the login, or an AWS principal a trusted role verified.
CREATE FUNCTION syncguard_control._identity(p_aws text) RETURNS text
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_owner text;
  v_gateways text[];
BEGIN
  IF p_aws IS NULL THEN
    RETURN 'db:' || session_user;
  END IF;
  IF p_aws !~ '^arn:aws[a-z-]*:(sts|iam)::[0-9]{12}:[A-Za-z0-9+=,.@_/-]+$' THEN
    RAISE EXCEPTION 'not an AWS principal ARN: %', p_aws USING ERRCODE = 'SGE01';
  END IF;
  SELECT r.rolname INTO v_owner FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
   WHERE c.oid = 'syncguard_control.repair_plan'::regclass;
  SELECT aws_gateway_roles INTO v_gateways FROM syncguard_control.approval_policy;
  IF session_user::text IS DISTINCT FROM v_owner AND NOT session_user::text = ANY (coalesce(v_gateways, '{}')) THEN
    RAISE EXCEPTION 'database role % may not record an AWS identity: only the control plane''s owner (%) and the roles in syncguard_control.approval_policy.aws_gateway_roles (the deployment''s functions) may; decide as yourself (syncguard approve --control-dsn) or through the approval function',
      session_user, v_owner USING ERRCODE = '42501';
  END IF;
  RETURN 'aws:' || p_aws;
END
$$;

-- What four-eyes compares: an identity without an assumed role's session name (which the caller
-- chooses), so one person cannot appear as two by naming two sessions.
CREATE FUNCTION syncguard_control._principal(p_identity text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT regexp_replace(p_identity, '^(aws:arn:[^:]+:sts::[0-9]+:assumed-role/[^/]+)/.*$', '\1');
$$;

-- The checksum of a stored plan: everything that is reviewed and applied.
CREATE FUNCTION syncguard_control._plan_checksum(p syncguard_control.repair_plan) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 'sha256:' || encode(sha256(convert_to(jsonb_build_array(
           p.plan_id, p.pair, p.table_name, p.bucket, p.fingerprint,
           to_char(p.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'),
           p.created_by, p.row_count, p.body)::text, 'UTF8')), 'hex');
$$;

-- Why a plan's SQL preview does not show its changes, or NULL when it does.
CREATE FUNCTION syncguard_control._preview_mismatch(p_changes jsonb, p_sql text) RETURNS text
LANGUAGE plpgsql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$
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
END
$$;

CREATE FUNCTION syncguard_control._move_divergence(p_id bigint, p_to text, p_actor text, p_note text) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_from text;
BEGIN
  IF p_id IS NULL THEN
    RETURN;
  END IF;
  SELECT state INTO v_from FROM syncguard_control.divergence WHERE divergence_id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  UPDATE syncguard_control.divergence SET state = p_to, updated_at = now() WHERE divergence_id = p_id;
  INSERT INTO syncguard_control.divergence_event (divergence_id, from_state, to_state, actor, note)
  VALUES (p_id, v_from, p_to, p_actor, p_note);
END
$$;

-- Stores a plan ({pair, table, bucket, fingerprint, expiresAt, body: {changes, sql, ...}}) as made
-- by the caller; links it to the bucket's divergence in flight, which becomes 'inspected'.
CREATE FUNCTION syncguard_control.create_plan(p jsonb, p_aws_creator text DEFAULT NULL) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
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
END
$$;

-- Records a decision on a plan as the caller, against the checksum of the plan as stored.
CREATE FUNCTION syncguard_control.decide_plan(p_plan bigint, p_decision text, p_comment text DEFAULT NULL,
                                              p_four_eyes boolean DEFAULT false, p_aws_approver text DEFAULT NULL) RETURNS jsonb
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
  SELECT * INTO r FROM syncguard_control.repair_plan WHERE plan_id = p_plan FOR UPDATE;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'plan % does not exist in this control plane', p_plan USING ERRCODE = 'SGE01';
  END IF;
  v_sum := syncguard_control._plan_checksum(r);
  IF v_sum IS DISTINCT FROM r.checksum THEN
    RAISE EXCEPTION 'plan % was altered after it was stored (or stored before the control plane computed checksums); make a new plan', p_plan
      USING ERRCODE = 'SGE02';
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

-- Takes an approved plan for applying, for one run (p_claim); checks everything first: the plan
-- as stored still has the checksum its approval was given, it is approved, not expired, and not
-- applied. The same run may claim it again (a retry after a lost connection): it gets the plan
-- back with its state ('applying', or 'applied' with the outcome recorded).
CREATE FUNCTION syncguard_control.claim_plan(p_plan bigint, p_claim text) RETURNS jsonb
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_by text := syncguard_control._identity(NULL);
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
    IF r.claim_id = p_claim AND a.checksum = v_sum THEN
      RETURN jsonb_build_object('state', r.state, 'table', r.table_name, 'bucket', r.bucket, 'fingerprint', r.fingerprint,
                                'body', r.body, 'outcome', r.outcome);
    END IF;
    RAISE EXCEPTION 'plan % was already applied, or is being applied by another run (%); nothing to do', p_plan,
      coalesce(r.applied_by, 'unknown') USING ERRCODE = 'SGE03';
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
  UPDATE syncguard_control.repair_plan SET state = 'applying', applied_by = v_by, claim_id = p_claim WHERE plan_id = p_plan;
  RETURN jsonb_build_object('state', 'applying', 'table', r.table_name, 'bucket', r.bucket, 'fingerprint', r.fingerprint,
                            'body', r.body, 'outcome', NULL);
END
$$;

-- Records the outcome of the run that claimed the plan; the divergence becomes repaired, then
-- verified (bucket equal) or open again. Returns false when this run had recorded it already.
CREATE FUNCTION syncguard_control.finish_plan(p_plan bigint, p_claim text, p_outcome jsonb, p_bucket_equal boolean) RETURNS boolean
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

-- Gives a claimed plan back when applying it failed before anything was sent.
CREATE FUNCTION syncguard_control.release_plan(p_plan bigint, p_claim text) RETURNS boolean
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  WITH u AS (
    UPDATE syncguard_control.repair_plan SET state = 'approved', applied_by = NULL, claim_id = NULL
     WHERE plan_id = p_plan AND state = 'applying' AND claim_id = p_claim RETURNING 1)
  SELECT count(*) = 1 FROM u;
$$;

-- Stores the workflow's task token while the plan awaits its decision; returns the plan's state,
-- or NULL when the plan does not exist. A token is stored once: a different token for a plan that
-- has one is refused (nobody replaces the workflow's wait). A plan already decided stores nothing
-- and returns its state: the caller completes its own token with the decision.
CREATE FUNCTION syncguard_control.set_task_token(p_plan bigint, p_token text) RETURNS text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
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
END
$$;

-- The task token waiting for a decided plan, taken (cleared) so that it is completed once. A plan
-- still awaiting its decision keeps its token.
CREATE FUNCTION syncguard_control.take_task_token(p_plan bigint) RETURNS text
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  WITH o AS (SELECT task_token AS t FROM syncguard_control.repair_plan WHERE plan_id = p_plan AND state <> 'proposed' FOR UPDATE),
       u AS (UPDATE syncguard_control.repair_plan p SET task_token = NULL FROM o WHERE p.plan_id = p_plan AND o.t IS NOT NULL RETURNING o.t)
  SELECT t FROM u;
$$;

-- Refuses a direct write to plans and decisions by anyone but the owner (the functions above run
-- as the owner): a GRANT made after this migration does not open them again.
CREATE FUNCTION syncguard_control._guard_plans() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  IF current_user::text IS DISTINCT FROM (SELECT r.rolname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
                                            WHERE c.oid = TG_RELID) THEN
    RAISE EXCEPTION 'permission denied: % is written only through the syncguard_control functions (create_plan, decide_plan, claim_plan, finish_plan), which record who acts', TG_TABLE_NAME
      USING ERRCODE = '42501';
  END IF;
  RETURN NULL;
END
$$;
CREATE TRIGGER guard_writes BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON syncguard_control.repair_plan
  FOR EACH STATEMENT EXECUTE FUNCTION syncguard_control._guard_plans();
CREATE TRIGGER guard_writes BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON syncguard_control.plan_approval
  FOR EACH STATEMENT EXECUTE FUNCTION syncguard_control._guard_plans();
CREATE TRIGGER guard_writes BEFORE INSERT OR UPDATE OR DELETE OR TRUNCATE ON syncguard_control.approval_policy
  FOR EACH STATEMENT EXECUTE FUNCTION syncguard_control._guard_plans();

-- Take back direct writes from every role that was given them.
DO $$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT DISTINCT c.oid::regclass AS tbl, CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS who
      FROM pg_catalog.pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) x LEFT JOIN pg_catalog.pg_roles r ON r.oid = x.grantee
     WHERE c.oid IN ('syncguard_control.repair_plan'::regclass, 'syncguard_control.plan_approval'::regclass)
       AND x.grantee <> c.relowner AND x.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
  LOOP
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %s FROM %s', g.tbl, g.who);
  END LOOP;
END
$$;

-- What each job may call (issue 17 item 1 of the review): PostgreSQL lets PUBLIC execute every new
-- function, so a role with only USAGE on the schema (a dashboard) could otherwise create, decide,
-- claim and release plans and take or replace task tokens. Every function here is revoked from
-- PUBLIC (and so is every function the owner creates in the schema later); the owner grants each
-- login the kinds it needs with grant_role.
CREATE FUNCTION syncguard_control.grant_role(p_role name, p_kind text) RETURNS text
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
    WHEN 'approver' THEN ARRAY['decide_plan(bigint, text, text, boolean, text)']
    WHEN 'applier'  THEN ARRAY['claim_plan(bigint, text)', 'finish_plan(bigint, text, jsonb, boolean)', 'release_plan(bigint, text)']
    WHEN 'workflow' THEN ARRAY['set_task_token(bigint, text)', 'take_task_token(bigint)']
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

DO $$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'syncguard_control'::regnamespace LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END
$$;
ALTER DEFAULT PRIVILEGES IN SCHEMA syncguard_control REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
