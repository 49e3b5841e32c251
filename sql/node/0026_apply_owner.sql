-- syncguard node schema 0026: syncguard.probe belongs to
-- a dedicated owner role (issue 17 item A1; docs/permissions.md "The subscription's owner").
--
-- A subscription's apply worker writes syncguard.probe with the rights of the subscription's
-- owner: from PostgreSQL 16 with run_as_owner = false it switches to the table's owner, which it
-- may only do when its owner may SET ROLE to that owner; with run_as_owner = true, and on
-- PostgreSQL 15, it needs SELECT, INSERT and DELETE on the table itself. When the table belongs
-- to the installer, the only grant that would let a subscription owned by another role apply it
-- is the installer's role, which hands over all of syncguard's rights. So syncguard.probe (and
-- only it: its ids come from syncguard.probe_id_seq, which apply does not use and which stays the
-- installer's) is given to a role of its own, syncguard_apply_<database>: NOLOGIN, NOINHERIT, it
-- owns that table and nothing else, and is the role a subscription owner may be granted (WITH SET
-- TRUE, INHERIT FALSE). The role is per database because roles are per cluster.
--
-- syncguard.migration, registration and node_state stay the installer's: syncguard's SECURITY
-- DEFINER functions paste registration text (row filters, key types) into SQL, so a role that
-- may write or own registration could run SQL as the installer. A FOR ALL TABLES publication
-- also carries them; its subscription must be owned by a role that may apply them (a superuser,
-- or the installer), and syncguard writes none of them otherwise (flows/apply-rights.ts).
--
-- Whoever may SET ROLE to the dedicated role may run DDL on syncguard.probe: a trigger, a rule,
-- row-level security, a default, a check, an index expression would run as the installer when
-- syncguard's functions touch the table. _probe_table_clean() checks the table by name; probes
-- are not trusted while it is not clean (probe_route; docs/permissions.md says what is left).
--
-- _adopt_apply_owner() runs at every install inside the install's advisory-locked transaction
-- (functions/db/install.ts): an installer that may not create roles gets it done on a later
-- install, once an administrator has created the role and granted it to the installer; a role of
-- that name that is not safe to own the table (_apply_role_unsafe) is not adopted.

-- The dedicated owner's name for this database (at most 63 bytes, as role names are).
CREATE FUNCTION syncguard._apply_role_name() RETURNS name
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN octet_length('syncguard_apply_' || current_database()) <= 63
              THEN ('syncguard_apply_' || current_database())::name
              ELSE ('syncguard_apply_' || left(md5(current_database()), 16))::name END
$$;

-- Why an existing role of that name is not safe to adopt (NULL: it is). It must not log in nor
-- hold any attribute beyond NOINHERIT, own nothing but syncguard.probe, be a member of no role,
-- and its members be the installer and subscription owners that do not inherit its rights.
CREATE FUNCTION syncguard._apply_role_unsafe(p_role name) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
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
$$;

-- Gives syncguard.probe to the dedicated owner: creates the role when the installer may, makes
-- the installer a member that inherits its rights, and changes the owner. Returns {role, exists,
-- member, adopted, unsafe}; it changes nothing it cannot complete. Raises lock_not_available when
-- syncguard.probe stays locked for 5 s (the apply worker would wait behind the ALTER).
CREATE FUNCTION syncguard._adopt_apply_owner() RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
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
END
$$;

-- Has syncguard.probe only what syncguard gave it? NULL when clean, else what is not ("rule r on
-- probe, trigger t on probe"). The owner
-- of the table (the dedicated role, or whoever may SET ROLE to it) may add code that runs as the
-- installer when syncguard's SECURITY DEFINER functions read or write probe rows.
CREATE FUNCTION syncguard._probe_table_clean() RETURNS text
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  WITH t AS (SELECT c.* FROM pg_class c WHERE c.oid = to_regclass('syncguard.probe')),
  issue AS (
    SELECT 'no table syncguard.probe' AS what WHERE NOT EXISTS (SELECT 1 FROM t)
    UNION ALL
    SELECT format('trigger %s', g.tgname) FROM pg_trigger g, t WHERE g.tgrelid = t.oid AND NOT g.tgisinternal AND g.tgname <> 'syncguard_probe'
    UNION ALL
    SELECT 'trigger syncguard_probe running another function' FROM pg_trigger g, t
     WHERE g.tgrelid = t.oid AND g.tgname = 'syncguard_probe' AND g.tgfoid <> 'syncguard._probe_apply()'::regprocedure
    UNION ALL
    SELECT format('rule %s', w.rulename) FROM pg_rewrite w, t WHERE w.ev_class = t.oid
    UNION ALL
    SELECT 'row-level security' FROM t WHERE t.relrowsecurity OR t.relforcerowsecurity
    UNION ALL
    SELECT format('policy %s', p.polname) FROM pg_policy p, t WHERE p.polrelid = t.oid
    UNION ALL
    SELECT format('a default on column %s', a.attname) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum, t
     WHERE d.adrelid = t.oid
       AND NOT ((a.attname = 'request' AND pg_get_expr(d.adbin, d.adrelid) = '''{}''::jsonb')
             OR (a.attname = 'created_at' AND pg_get_expr(d.adbin, d.adrelid) = 'clock_timestamp()'))
    UNION ALL
    SELECT format('generated or identity column %s', a.attname) FROM pg_attribute a, t
     WHERE a.attrelid = t.oid AND a.attnum > 0 AND (a.attgenerated <> '' OR a.attidentity <> '')
    UNION ALL
    SELECT format('constraint %s', k.conname) FROM pg_constraint k, t
     WHERE k.conrelid = t.oid AND NOT (k.contype = 'p' AND k.conname = 'probe_pkey') AND k.contype <> 'n'   -- 18: NOT NULL
    UNION ALL
    SELECT format('index %s', i.indexrelid::regclass) FROM pg_index i, t
     WHERE i.indrelid = t.oid AND NOT (i.indexrelid = to_regclass('syncguard.probe_pkey') AND i.indexprs IS NULL AND i.indpred IS NULL)
    UNION ALL
    SELECT format('persistence %s', t.relpersistence) FROM t WHERE t.relpersistence <> 'p' OR t.relkind <> 'r'
    UNION ALL
    SELECT format('owner %s', t.relowner::regrole) FROM t
     WHERE t.relowner NOT IN ((SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'syncguard'),
                              coalesce((SELECT r.oid FROM pg_roles r WHERE r.rolname = syncguard._apply_role_name()), 0))
    UNION ALL
    SELECT format('a grant to %s', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END) FROM t, aclexplode(t.relacl) a
     WHERE a.grantee NOT IN (t.relowner, (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'syncguard'))
       AND NOT (a.privilege_type IN ('SELECT', 'INSERT', 'DELETE') AND a.grantee IN (SELECT s.subowner FROM pg_subscription s))
  )
  SELECT string_agg(what || ' on probe', ', ' ORDER BY what) FROM issue
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
                         WHERE c.relnamespace = 'syncguard'::regnamespace AND c.relkind IN ('r', 'p')
                           AND NOT t.tgisinternal AND c.relname <> 'probe'
                        UNION ALL
                        SELECT format('rule %s on %s', w.rulename, c.relname)
                          FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class
                         WHERE c.relnamespace = 'syncguard'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> 'probe'
                        UNION ALL
                        SELECT syncguard._probe_table_clean() WHERE syncguard._probe_table_clean() IS NOT NULL) x))
$$;

-- Publisher: a marker (as in 0013), refused while syncguard.probe has code syncguard did not add
-- (a default, a policy, a rule or a trigger there would run as the installer on this insert).
CREATE OR REPLACE FUNCTION syncguard.probe_marker(p_target uuid, p_subscription text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_unclean text := syncguard._probe_table_clean();
  v_id bigint;
BEGIN
  IF v_unclean IS NOT NULL THEN
    RAISE EXCEPTION 'syncguard sends no probe: % (syncguard did not create it)', v_unclean
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'drop it (docs/permissions.md, "Which fix is safer"), then run syncguard install again';
  END IF;
  INSERT INTO syncguard.probe (origin, id, target, kind, request)
  VALUES (syncguard.node_id(), nextval('syncguard.probe_id_seq'), p_target, 'marker', jsonb_build_object('subscription', p_subscription))
  RETURNING id INTO v_id;
  RETURN v_id;
END
$$;

-- Publisher: deletes this node's probes older than an hour (as in 0013); deletes nothing while
-- syncguard.probe has code syncguard did not add (a policy or rule would run as the installer).
CREATE OR REPLACE FUNCTION syncguard.probe_cleanup() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
BEGIN
  IF syncguard._probe_table_clean() IS NOT NULL THEN
    RETURN 0;
  END IF;
  DELETE FROM syncguard.probe WHERE origin = syncguard.node_id() AND created_at < clock_timestamp() - interval '1 hour';
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;
