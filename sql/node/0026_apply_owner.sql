-- syncguard node schema 0026: syncguard's replicated tables belong to a dedicated owner role
-- (issue 17 item A1; docs/permissions.md "The subscription's owner").
--
-- A subscription's apply worker writes syncguard.probe (and, under a FOR ALL TABLES publication,
-- every logged syncguard table) with the rights of the subscription's owner: from PostgreSQL 16
-- with run_as_owner = false it switches to each table's owner, which it may only do when its owner
-- may SET ROLE to that owner; with run_as_owner = true, and on PostgreSQL 15, it needs INSERT,
-- UPDATE or DELETE on the table itself. The privilege error is raised before any trigger runs.
-- When those tables belong to the installer, the only grant that would let a subscription owned
-- by another role apply them is the installer's role, which hands over all of syncguard's rights.
-- So they are given to a role of their own, syncguard_apply_<database>: NOLOGIN, NOINHERIT, it owns
-- those tables and nothing else, has no other privilege, and is the one role a subscription owner
-- is told to be granted (WITH SET TRUE, INHERIT FALSE). Trigger functions stay owned by the
-- installer (SECURITY DEFINER), so answers are still computed with syncguard's rights; the
-- installer is a member of the role WITH INHERIT TRUE, SET TRUE, so it keeps every right on them.
-- The role is per database because roles are per cluster: a subscription owner of one database
-- gets nothing on another database's syncguard tables.
--
-- _adopt_apply_owner() runs at every install (functions/db/install.ts), so an installer that may
-- not create roles gets it done on a later install, once an administrator has created the role
-- and granted it to the installer as the check's fix says.

-- The dedicated owner's name for this database (at most 63 bytes, as role names are).
CREATE FUNCTION syncguard._apply_role_name() RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN octet_length('syncguard_apply_' || current_database()) <= 63
              THEN ('syncguard_apply_' || current_database())::name
              ELSE ('syncguard_apply_' || left(md5(current_database()), 16))::name END
$$;

-- Gives the logged syncguard tables to the dedicated owner: creates the role when the installer
-- may, makes the installer a member that inherits its rights, and changes the owner. Returns
-- {role, exists, member, adopted, tables}; it changes nothing it cannot complete.
CREATE FUNCTION syncguard._adopt_apply_owner() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_role name := syncguard._apply_role_name();
  v_me name := current_user;
  v_v16 boolean := current_setting('server_version_num')::int >= 160000;
  v_tbl regclass;
  v_moved text[] := '{}';
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = v_role) THEN
    BEGIN
      EXECUTE format('CREATE ROLE %I NOLOGIN NOINHERIT', v_role);
    EXCEPTION WHEN insufficient_privilege THEN
      RETURN jsonb_build_object('role', v_role, 'exists', false, 'member', false, 'adopted', false);
    END;
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
  -- ALTER ... OWNER needs CREATE on the schema for the new owner; taken back at once (a role that
  -- could create functions in syncguard could shadow the ones syncguard calls)
  EXECUTE format('GRANT CREATE ON SCHEMA syncguard TO %I', v_role);
  FOR v_tbl IN
    SELECT c.oid::regclass FROM pg_catalog.pg_class c
     WHERE c.relnamespace = 'syncguard'::regnamespace AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
       AND c.relowner <> (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname = v_role)
       AND pg_catalog.pg_has_role(v_me, c.relowner, 'USAGE')   -- the installer's own (a table of another role stays)
     ORDER BY c.relname
  LOOP
    EXECUTE format('ALTER TABLE %s OWNER TO %I', v_tbl, v_role);
    v_moved := v_moved || v_tbl::text;
  END LOOP;
  EXECUTE format('REVOKE CREATE ON SCHEMA syncguard FROM %I', v_role);
  RETURN jsonb_build_object('role', v_role, 'exists', true, 'member', true, 'adopted', true, 'tables', to_jsonb(v_moved));
END
$$;

-- Subscriber: can probes reach this node? As in 0013, plus who owns syncguard.probe, the
-- dedicated owner's name and whether it exists, the installer (the schema's owner), and the
-- triggers and rules on syncguard's logged tables that syncguard did not create (the owner of
-- those tables may add some; probes are not trusted while there are any).
CREATE OR REPLACE FUNCTION syncguard.probe_route() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
    'nodeId', syncguard.node_id(),
    'table', to_regclass('syncguard.probe') IS NOT NULL,
    'trigger', (SELECT t.tgenabled::text FROM pg_trigger t WHERE t.tgrelid = to_regclass('syncguard.probe') AND t.tgname = 'syncguard_probe'),
    'subscriptions', (SELECT coalesce(jsonb_object_agg(s.subname, sr.srsubstate::text), '{}')
                        FROM pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid
                       WHERE sr.srrelid = to_regclass('syncguard.probe')
                         AND s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())),
    'probeOwner', (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = to_regclass('syncguard.probe')),
    'installer', (SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'syncguard'),
    'applyRole', syncguard._apply_role_name(),
    'applyRoleExists', EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = syncguard._apply_role_name()),
    'foreign', (SELECT coalesce(jsonb_agg(x.what ORDER BY x.what), '[]')
                  FROM (SELECT format('trigger %s on %s', t.tgname, c.relname) AS what
                          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                         WHERE c.relnamespace = 'syncguard'::regnamespace AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
                           AND NOT t.tgisinternal
                           AND NOT (c.relname = 'probe' AND t.tgname = 'syncguard_probe')
                        UNION ALL
                        SELECT format('rule %s on %s', w.rulename, c.relname)
                          FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class
                         WHERE c.relnamespace = 'syncguard'::regnamespace AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p') x))
$$;
