-- Privileges: every function here is revoked from PUBLIC; the owner grants each kind of role its
-- functions (grant_role); the audit tables are written only through these functions (the guard
-- triggers refuse direct writes).

-- Refuses a direct write to plans and decisions by anyone but the owner (the functions that write
-- them run as the owner): a GRANT on those tables does not open them to direct writes.
CREATE OR REPLACE FUNCTION syncguard_control._guard_plans()
RETURNS trigger LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
BEGIN
  IF current_user::text IS DISTINCT FROM (SELECT r.rolname FROM pg_catalog.pg_class c JOIN pg_catalog.pg_roles r ON r.oid = c.relowner
                                            WHERE c.oid = TG_RELID) THEN
    RAISE EXCEPTION 'permission denied: % is written only through the syncguard_control functions (create_plan, decide_plan, claim_plan, finish_plan), which record who acts', TG_TABLE_NAME
      USING ERRCODE = '42501';
  END IF;
  RETURN NULL;
END $function$;

-- What each job may call: PostgreSQL lets PUBLIC execute every new function, so a role with only
-- USAGE on the schema (a dashboard) could otherwise create, decide, claim and release plans and
-- take or replace task tokens. Every function here is revoked from PUBLIC (and so is every
-- function the owner creates in the schema later); the owner grants each login the kinds it needs
-- with grant_role. Appliers get take_over_plan besides claiming, finishing and releasing;
-- approvers and the workflow's approval function get deployment_id (what a signed decision names).
CREATE OR REPLACE FUNCTION syncguard_control.grant_role(p_role name, p_kind text)
RETURNS text LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
    -- record_run runs as its caller: it writes the run, divergence and table tables itself, and
    -- nothing else: plans, approvals, the policy and the claims are written only through the
    -- SECURITY DEFINER functions, which record who acted
    EXECUTE format('GRANT INSERT, UPDATE ON syncguard_control.verification_run, syncguard_control.divergence, '
                   'syncguard_control.divergence_event, syncguard_control.table_verified TO %s', v_role);
    EXECUTE format('GRANT USAGE ON ALL SEQUENCES IN SCHEMA syncguard_control TO %s', v_role);
  END IF;
  FOREACH f IN ARRAY v_fns LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION syncguard_control.%s TO %s', f, v_role);
  END LOOP;
  RETURN p_kind;
END $function$;

-- PostgreSQL grants EXECUTE on every new function to PUBLIC, and that default cannot be removed per
-- schema: install runs this after every change to the definitions.
CREATE OR REPLACE FUNCTION syncguard_control._grants()
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  f regprocedure;
BEGIN
  FOR f IN SELECT p.oid::regprocedure FROM pg_catalog.pg_proc p WHERE p.pronamespace = 'syncguard_control'::regnamespace LOOP
    EXECUTE format('REVOKE ALL ON FUNCTION %s FROM PUBLIC', f);
  END LOOP;
END $function$;

-- Every login that holds a kind's functions gets that kind's functions as they are now, so that a
-- function a release adds to a kind reaches the logins granted it before (as the node's
-- _regrant_roles does: the two schemas may live in different databases). A login's kind is told
-- by the function only that kind holds; a reader holds none and has nothing to gain. Install runs
-- it after every change to the definitions.
CREATE OR REPLACE FUNCTION syncguard_control._regrant_roles()
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT DISTINCT r.rolname AS who, k.kind
      FROM (VALUES ('recorder', 'syncguard_control.record_run(jsonb, jsonb)'),
                   ('planner', 'syncguard_control.create_plan(jsonb, text)'),
                   ('approver', 'syncguard_control.decide_plan(bigint, text, text, boolean, text, text)'),
                   ('applier', 'syncguard_control.claim_plan(bigint, text, integer)'),
                   ('workflow', 'syncguard_control.set_task_token(bigint, text)')) k(kind, marker)
      JOIN pg_catalog.pg_proc p ON p.oid = pg_catalog.to_regprocedure(k.marker)
      CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
      JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
     WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
  LOOP
    PERFORM syncguard_control.grant_role(g.who, g.kind);
  END LOOP;
END $function$;
