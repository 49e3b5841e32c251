-- Privileges: PUBLIC may use the schema and nothing in it; each kind of role (drain, verify,
-- repair) gets exactly its functions; syncguard.probe belongs to a dedicated apply role so that the
-- subscription's owner, whoever it is, may apply it (docs/design.md).

-- What PUBLIC may do. PostgreSQL grants EXECUTE on every new function to PUBLIC, and that default
-- cannot be removed per schema, so this revokes explicitly; install runs it after every change to
-- the definitions.
CREATE OR REPLACE FUNCTION syncguard._grants()
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
BEGIN
  REVOKE ALL ON ALL TABLES IN SCHEMA syncguard FROM PUBLIC;
  REVOKE ALL ON ALL SEQUENCES IN SCHEMA syncguard FROM PUBLIC;
  REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA syncguard FROM PUBLIC;
  GRANT USAGE ON SCHEMA syncguard TO PUBLIC;
END $function$;

-- Every role that holds a kind's functions gets that kind's functions as they are now: a function
-- a release adds to a kind reaches the roles granted before it. A role's kind is told by the one
-- function only that kind has (drain_batch(integer) for every kind, verify_ranges for verify and
-- repair, repair_request for repair). Install runs it after every change to the definitions.
CREATE OR REPLACE FUNCTION syncguard._regrant_roles()
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT DISTINCT r.rolname AS who, k.kind
      FROM (VALUES ('drain', 'syncguard.drain_batch(integer)'), ('verify', 'syncguard.verify_ranges(bigint)'),
                   ('repair', 'syncguard.repair_request(text, text, bigint, jsonb, text, uuid, text)')) k(kind, marker)
      JOIN pg_catalog.pg_proc p ON p.oid = pg_catalog.to_regprocedure(k.marker)
      CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
      JOIN pg_catalog.pg_roles r ON r.oid = a.grantee
     WHERE a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner
  LOOP
    PERFORM syncguard.grant_role(g.who, g.kind);
  END LOOP;
END $function$;

-- The functions each kind of role needs, as signatures. Every kind may read schema_version() and
-- definitions_id() (the checksum of the definitions install wrote), so that a drain or verify
-- role is told when its node's functions are not its syncguard's.
CREATE OR REPLACE FUNCTION syncguard._role_functions(p_kind text)
RETURNS text[] LANGUAGE sql IMMUTABLE
AS $function$
  SELECT ARRAY['syncguard.schema_version()', 'syncguard.definitions_id()', 'syncguard.check_state()', 'syncguard.request_full_sweep()',
               'syncguard.maybe_full_sweep(interval)', 'syncguard.drain_batch(integer)', 'syncguard.sweep_batch(integer)',
               'syncguard.status()']
      || CASE WHEN p_kind IN ('verify', 'repair') THEN
           ARRAY['syncguard.drain_batch(integer, name[], name[])',
                 'syncguard.verify_ranges(bigint)', 'syncguard.verify_buckets(text, text, bigint, bigint[], bigint[])',
                 'syncguard.verify_overview()', 'syncguard.verify_level(text, text, bigint, bigint, bigint[])',
                 'syncguard.local_writes(integer)', 'syncguard.parity_info()', 'syncguard.health()',
                 'syncguard.probe_buckets(text, text, bigint[], uuid, text)', 'syncguard.probe_marker(uuid, text)',
                 'syncguard.probe_cleanup()', 'syncguard.probe_results(uuid, bigint[])', 'syncguard.probe_route()']
         ELSE '{}' END
      || CASE WHEN p_kind = 'repair' THEN
           ARRAY['syncguard.probe_rows(text, text, bigint, uuid, text)', 'syncguard.row_values(text, text, bigint, text[])',
                 'syncguard.repair_request(text, text, bigint, jsonb, text, uuid, text)', 'syncguard.repair_privileges(text, text)',
                 'syncguard.repair_requests(text, text, text)', 'syncguard.repair_user_code(text, text)']
         ELSE '{}' END
$function$;

-- Grants a role what a drainer (p_kind 'drain') or a verifier ('verify', which also drains
-- briefly before it reads) needs, and nothing more. Returns the functions granted.
CREATE OR REPLACE FUNCTION syncguard.grant_role(p_role name, p_kind text)
RETURNS text[] LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_fn text;
BEGIN
  IF p_kind NOT IN ('drain', 'verify', 'repair') THEN
    RAISE EXCEPTION 'role kind must be drain, verify or repair, got %', p_kind USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH v_fn IN ARRAY syncguard._role_functions(p_kind) LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, p_role);
  END LOOP;
  RETURN syncguard._role_functions(p_kind);
END $function$;

-- The dedicated owner's name for this database (at most 63 bytes, as role names are).
CREATE OR REPLACE FUNCTION syncguard._apply_role_name()
RETURNS name LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT CASE WHEN octet_length('syncguard_apply_' || current_database()) <= 63
              THEN ('syncguard_apply_' || current_database())::name
              ELSE ('syncguard_apply_' || left(md5(current_database()), 16))::name END
$function$;

-- Why an existing role of that name is not safe to adopt (NULL: it is). It must not log in nor
-- hold any attribute beyond NOINHERIT, own nothing but syncguard.probe, be a member of no role,
-- and its members be the installer and subscription owners that do not inherit its rights.
CREATE OR REPLACE FUNCTION syncguard._apply_role_unsafe(p_role name)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT CASE
    WHEN r.rolcanlogin THEN format('role %I can log in', r.rolname)
    WHEN r.rolsuper OR r.rolcreaterole OR r.rolcreatedb OR r.rolbypassrls OR r.rolreplication
      THEN format('role %I has SUPERUSER, CREATEROLE, CREATEDB, BYPASSRLS or REPLICATION', r.rolname)
    WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_shdepend d
                  WHERE d.refclassid = 'pg_catalog.pg_authid'::regclass AND d.refobjid = r.oid AND d.deptype IN ('o', 'a', 'i')
                    AND NOT (d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = 'syncguard.probe'::regclass
                             AND d.dbid = (SELECT db.oid FROM pg_catalog.pg_database db WHERE db.datname = current_database())))
      THEN format('role %I owns or is granted rights on objects other than syncguard.probe', r.rolname)
    WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m WHERE m.member = r.oid)
      THEN format('role %I is a member of another role', r.rolname)
    WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_auth_members m
                  WHERE m.roleid = r.oid AND m.member <> (SELECT n.nspowner FROM pg_catalog.pg_namespace n WHERE n.nspname = 'syncguard')
                    AND NOT (m.member IN (SELECT s.subowner FROM pg_catalog.pg_subscription s)
                             AND (current_setting('server_version_num')::int < 160000
                                  OR NOT (to_jsonb(m) ->> 'inherit_option')::boolean)))
      THEN format('role %I has members other than the installer and subscription owners granted it WITH INHERIT FALSE', r.rolname)
  END
  FROM pg_catalog.pg_roles r WHERE r.rolname = p_role
$function$;

-- Gives syncguard.probe to the dedicated owner: creates the role when the installer may, makes
-- the installer a member that inherits its rights, and changes the owner. Returns {role, exists,
-- member, adopted, unsafe}; it changes nothing it cannot complete. Raises lock_not_available when
-- syncguard.probe stays locked for 5 s (the apply worker would wait behind the ALTER).
CREATE OR REPLACE FUNCTION syncguard._adopt_apply_owner()
RETURNS jsonb LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_role name := syncguard._apply_role_name();
  v_me name := current_user;
  v_v16 boolean := current_setting('server_version_num')::int >= 160000;
  v_unsafe text;
  v_lock text := current_setting('lock_timeout');
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
    BEGIN
      EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', v_role);
    EXCEPTION
      WHEN insufficient_privilege THEN
        RETURN jsonb_build_object('role', v_role, 'exists', false, 'member', false, 'adopted', false);
      WHEN duplicate_object THEN NULL;   -- a concurrent install made it: checked below like any existing role
    END;
  END IF;
  v_unsafe := syncguard._apply_role_unsafe(v_role);
  IF v_unsafe IS NOT NULL THEN
    RETURN jsonb_build_object('role', v_role, 'exists', true, 'member', false, 'adopted', false, 'unsafe', v_unsafe);
  END IF;
  IF NOT (pg_catalog.pg_has_role(v_me, v_role, 'USAGE')
          AND (NOT v_v16 OR pg_catalog.pg_has_role(v_me, v_role, 'SET'))) THEN
    BEGIN
      IF v_v16 THEN
        EXECUTE format('GRANT %I TO %I WITH INHERIT TRUE, SET TRUE', v_role, v_me);
      ELSE
        EXECUTE format('GRANT %I TO %I', v_role, v_me);
      END IF;
    EXCEPTION WHEN insufficient_privilege OR invalid_grant_operation THEN
      RETURN jsonb_build_object('role', v_role, 'exists', true, 'member', false, 'adopted', false);
    END;
    IF NOT pg_catalog.pg_has_role(v_me, v_role, 'USAGE') THEN   -- a NOINHERIT installer on PostgreSQL 15
      RETURN jsonb_build_object('role', v_role, 'exists', true, 'member', false, 'adopted', false);
    END IF;
  END IF;
  IF (SELECT c.relowner FROM pg_catalog.pg_class c WHERE c.oid = 'syncguard.probe'::regclass)
     <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = v_role) THEN
    PERFORM pg_catalog.set_config('lock_timeout', '5s', true);
    BEGIN
      -- ALTER ... OWNER needs CREATE on the schema for the new owner; taken back at once (a role
      -- that could create functions in syncguard could shadow the ones syncguard calls)
      EXECUTE format('GRANT CREATE ON SCHEMA syncguard TO %I', v_role);
      EXECUTE format('ALTER TABLE syncguard.probe OWNER TO %I', v_role);
      EXECUTE format('REVOKE CREATE ON SCHEMA syncguard FROM %I', v_role);
    EXCEPTION WHEN lock_not_available THEN
      RAISE EXCEPTION 'syncguard install could not give syncguard.probe to role % within 5 s: another session holds a lock on it', v_role
        USING ERRCODE = 'lock_not_available',
              HINT = 'run syncguard install again when no long transaction reads syncguard.probe (see pg_locks)';
    END;
    PERFORM pg_catalog.set_config('lock_timeout', v_lock, true);
  END IF;
  -- the owner's own rights (a holder of the role may have revoked them; apply needs them)
  EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON syncguard.probe TO %I', v_role);
  RETURN jsonb_build_object('role', v_role, 'exists', true, 'member', true, 'adopted', true);
END $function$;
