-- Approvals: a decision on a plan's checksum by an allowed approver (four eyes when the policy asks
-- for it), signed over deployment;plan;checksum;decision.

CREATE OR REPLACE FUNCTION syncguard_control.decide_plan(p_plan bigint, p_decision text, p_comment text DEFAULT NULL::text, p_four_eyes boolean DEFAULT false, p_aws_approver text DEFAULT NULL::text, p_checksum text DEFAULT NULL::text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- What a decision signed for the approval function names: this control plane, the plan, the
-- checksum of the plan the approver reviewed, and the decision.
CREATE OR REPLACE FUNCTION syncguard_control.deployment_id()
RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT deployment_id FROM syncguard_control.deployment;
$function$;

CREATE OR REPLACE FUNCTION syncguard_control.set_approval_policy(p_four_eyes boolean, p_aws_gateway_roles text[] DEFAULT NULL::text[], p_aws_approvers text[] DEFAULT NULL::text[])
RETURNS void LANGUAGE sql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  UPDATE syncguard_control.approval_policy
     SET four_eyes = p_four_eyes, aws_gateway_roles = coalesce(p_aws_gateway_roles, aws_gateway_roles),
         aws_approvers = coalesce(p_aws_approvers, aws_approvers);
$function$;

-- Whether an AWS principal ARN is one approval_policy.aws_approvers allows: an entry of 12 digits
-- is an account; any other entry is the ARN with '*' standing for any text.
CREATE OR REPLACE FUNCTION syncguard_control._aws_approver_allowed(p_arn text, p_allowed text[])
RETURNS boolean LANGUAGE sql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT EXISTS (
    SELECT 1 FROM unnest(coalesce(p_allowed, '{}')) e
     WHERE (e ~ '^[0-9]{12}$' AND split_part(p_arn, ':', 5) = e)
        OR (e !~ '^[0-9]{12}$' AND p_arn LIKE replace(replace(replace(replace(e, '\', '\\'), '%', '\%'), '_', '\_'), '*', '%')));
$function$;

-- The identity an action is recorded under: the login, or an AWS principal a trusted role verified.
CREATE OR REPLACE FUNCTION syncguard_control._identity(p_aws text)
RETURNS text LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- What four-eyes compares: an identity without an assumed role's session name (which the caller
-- chooses), so one person cannot appear as two by naming two sessions.
CREATE OR REPLACE FUNCTION syncguard_control._principal(p_identity text)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT regexp_replace(p_identity, '^(aws:arn:[^:]+:sts::[0-9]+:assumed-role/[^/]+)/.*$', '\1');
$function$;
