-- Dirty tracking: the generated trigger functions that mark a written row's bucket in
-- syncguard.dirty (docs/design.md "A mark queue that loses no mark"). They sit on the apply path
-- of a subscriber: they never raise (an error becomes a syncguard.fault row and the drain re-sweeps).

-- Creates the per-registration objects: the key type and bucket function (range scheme) and the
-- dirty-marking trigger function, then attaches the triggers ENABLE ALWAYS, so they fire for the
-- subscription's apply worker and under session_replication_role = replica as well.
--   publisher:  statement triggers with transition tables (one per event) plus TRUNCATE;
--   subscriber: row triggers (statement triggers never fire for applied changes) plus TRUNCATE.
-- Trigger functions only compute a bucket number and insert into an unlogged table with ON CONFLICT
-- DO NOTHING, naming everything fully qualified, so they have nothing that can raise: an error
-- there would stop replication on a subscriber. Every trigger function runs as the owner (SECURITY
-- DEFINER); _trigger_functions says why only those of hash buckets pin the settings.
-- The trigger functions themselves are made by _trigger_functions.
CREATE OR REPLACE FUNCTION syncguard._install_triggers(r syncguard.registration)
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_tbl text := format('%I.%I', r.schema_name, r.table_name);
  v_fn text := syncguard._mark_fn(r.reg_id);
  v_row boolean := syncguard._row_triggers(r);
  v_trigger text;
BEGIN
  FOREACH v_trigger IN ARRAY ARRAY['syncguard_insert', 'syncguard_update', 'syncguard_delete', 'syncguard_truncate'] LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_trigger, v_tbl);
  END LOOP;
  EXECUTE format('DROP FUNCTION IF EXISTS %s()', v_fn);
  EXECUTE format('DROP FUNCTION IF EXISTS %s()', syncguard._truncate_fn(r.reg_id));

  IF r.scheme = 'range' AND to_regtype(syncguard._key_type(r.reg_id)) IS NULL THEN
    EXECUTE format('CREATE TYPE %s AS (%s)', syncguard._key_type(r.reg_id),
      (SELECT string_agg(format('%I %s%s', k, ty,
                CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty_.typcollation
                     THEN (SELECT format(' COLLATE %I.%I', cn.nspname, co.collname) FROM pg_collation co
                             JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
                     ELSE '' END), ', ' ORDER BY o)
         FROM unnest(r.key_columns, r.key_types) WITH ORDINALITY u(k, ty, o)
         JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = k
         JOIN pg_type ty_ ON ty_.oid = a.atttypid));
  END IF;
  PERFORM syncguard._install_bounds(r);
  PERFORM syncguard._trigger_functions(r, false);

  IF v_row THEN
    EXECUTE format('CREATE TRIGGER syncguard_insert AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('CREATE TRIGGER syncguard_update AFTER UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('CREATE TRIGGER syncguard_delete AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()', v_tbl, v_fn);
  ELSE
    EXECUTE format('CREATE TRIGGER syncguard_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS sg_new FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('CREATE TRIGGER syncguard_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS sg_old NEW TABLE AS sg_new FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('CREATE TRIGGER syncguard_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS sg_old FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_tbl, v_fn);
  END IF;
  EXECUTE format('CREATE TRIGGER syncguard_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                 v_tbl, syncguard._truncate_fn(r.reg_id));
  EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER syncguard_insert, ENABLE ALWAYS TRIGGER syncguard_update, '
                 'ENABLE ALWAYS TRIGGER syncguard_delete, ENABLE ALWAYS TRIGGER syncguard_truncate', v_tbl);
END $function$;

-- Creates (or, p_replace, replaces in place) a registration's trigger functions: the mark function
-- (statement- or row-level, by _row_triggers) and the TRUNCATE function. On a subscriber a mark
-- that is new also records a local write, unless the session is a logical replication worker
-- (_local_write_test).
CREATE OR REPLACE FUNCTION syncguard._trigger_functions(r syncguard.registration, p_replace boolean)
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_fn text := syncguard._mark_fn(r.reg_id);
  v_row boolean := syncguard._row_triggers(r);
  v_local text := CASE WHEN r.node_role = 'subscriber' THEN 'true' ELSE 'false' END;
  v_memo text := quote_literal('syncguard.mark_' || r.reg_id);
  v_create text := CASE WHEN p_replace THEN 'CREATE OR REPLACE FUNCTION' ELSE 'CREATE FUNCTION' END;
  v_guard text := format($f$
  EXCEPTION WHEN OTHERS THEN
    INSERT INTO syncguard.fault (reg_id, kind, sqlstate, message)
    VALUES (%s, 'trigger', SQLSTATE, pg_catalog."left"(SQLERRM, 500)) ON CONFLICT DO NOTHING;
    RETURN NULL;
  END;$f$, r.reg_id);
  -- marks bucket $X for this transaction (and records a local write on a subscriber)
  v_mark text := format($f$
    INSERT INTO syncguard.dirty (reg_id, bucket, xid) VALUES (%1$s, $X, pg_catalog.pg_current_xact_id()) ON CONFLICT DO NOTHING
    RETURNING true INTO sg_fresh;
    IF %2$s AND sg_fresh AND %3$s THEN
      INSERT INTO syncguard.local_write (reg_id, bucket, xid, role, application_name)
      VALUES (%1$s, $X, pg_catalog.pg_current_xact_id(), session_user, pg_catalog.current_setting('application_name')) ON CONFLICT DO NOTHING;
    END IF;$f$, r.reg_id, v_local, syncguard._local_write_test());
  v_body text;
  v_pinned boolean;
BEGIN
  IF NOT v_row THEN
    v_pinned := r.scheme = 'hash';
    v_body := format($f$
DECLARE
  sg_b pg_catalog.int8[];
BEGIN
  BEGIN
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
      SELECT pg_catalog.array_agg(sg_u.b) INTO sg_b FROM (SELECT DISTINCT %2$s FROM sg_new) sg_u(b);
    ELSIF TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
      SELECT pg_catalog.array_agg(sg_u.b) INTO sg_b FROM (SELECT %3$s FROM sg_old UNION SELECT %2$s FROM sg_new) sg_u(b);
    ELSE
      SELECT pg_catalog.array_agg(sg_u.b) INTO sg_b FROM (SELECT DISTINCT %3$s FROM sg_old) sg_u(b);
    END IF;%4$s
  INSERT INTO syncguard.dirty (reg_id, bucket, xid)
  SELECT %1$s, sg_x, pg_catalog.pg_current_xact_id() FROM pg_catalog.unnest(sg_b) sg_x ON CONFLICT DO NOTHING;
  RETURN NULL;
END$f$, r.reg_id, syncguard._bucket_expr(r, 'sg_new'), syncguard._bucket_expr(r, 'sg_old'), v_guard);
  ELSE
    v_pinned := r.scheme = 'hash';
    -- The memo: a transaction-local setting that says a bucket of this table was computed in
    -- this transaction, which proves the row type works (no DDL runs inside an applied
    -- transaction, and the apply's lock keeps other sessions' DDL out until it commits): only the
    -- first row of each transaction pays for the EXCEPTION block's subtransaction. It is honoured
    -- only with session_replication_role = replica, and it never skips a mark: anyone can set it
    -- (any session may set a custom setting, a user BEFORE trigger in the apply worker as well, and
    -- since PostgreSQL 15 a non-superuser may be granted SET on session_replication_role), so every
    -- row writes its marks with ON CONFLICT DO NOTHING, and only a mark that is new runs the
    -- local-write test. Hash buckets use no memo (their function's SET clauses would revert it).
    v_body := format($f$
DECLARE
  sg_o pg_catalog.int8;
  sg_n pg_catalog.int8;
  sg_fresh boolean;
  sg_m pg_catalog.text := pg_catalog.current_setting(%6$s, true);
BEGIN
  IF sg_m OPERATOR(pg_catalog.<>) ''
     AND pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.=) 'replica' THEN
    IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
      sg_o := %2$s;
    END IF;
    IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
      sg_n := %3$s;
    END IF;
  ELSE
    sg_m := '';
    BEGIN
      IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN
        sg_o := %2$s;
      END IF;
      IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN
        sg_n := %3$s;
      END IF;%4$s
  END IF;
  IF sg_o IS NOT NULL THEN
%8$s
  END IF;
  IF sg_n IS NOT NULL AND (sg_o IS NULL OR sg_n OPERATOR(pg_catalog.<>) sg_o) THEN
%7$s
  END IF;
  IF %5$s AND sg_m OPERATOR(pg_catalog.=) ''
     AND pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.=) 'replica' THEN
    PERFORM pg_catalog.set_config(%6$s, 'computed', true);
  END IF;
  RETURN NULL;
END$f$, r.reg_id, syncguard._bucket_expr(r, 'OLD'), syncguard._bucket_expr(r, 'NEW'), v_guard,
        CASE WHEN v_pinned THEN 'false' ELSE 'true' END, v_memo,
        replace(v_mark, '$X', 'sg_n'), replace(v_mark, '$X', 'sg_o'));
  END IF;

  -- every trigger function runs as the owner; only those of hash buckets pin the settings (the
  -- others render no text, and their names and operators are qualified, so the writer's
  -- search_path cannot lend them an operator). A replaced function keeps its owner and
  -- privileges; RESET ALL first drops settings it no longer pins.
  IF p_replace AND to_regprocedure(v_fn || '()') IS NOT NULL THEN
    EXECUTE format('ALTER FUNCTION %s() RESET ALL', v_fn);
  END IF;
  EXECUTE format('%s %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER %s AS %L',
                 v_create, v_fn, CASE WHEN v_pinned THEN syncguard._pinned_settings() ELSE '' END, v_body);
  -- TRUNCATE reads the catalogue, which only the owner may.
  EXECUTE format('%s %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER %s AS %L',
    v_create, syncguard._truncate_fn(r.reg_id), syncguard._pinned_settings(), format($f$
BEGIN
  INSERT INTO syncguard.dirty (reg_id, bucket, xid)
  SELECT b.reg_id, b.bucket, pg_catalog.pg_current_xact_id() FROM syncguard.bucket b WHERE b.reg_id = %1$s ON CONFLICT DO NOTHING;
  IF %2$s AND %3$s THEN
    INSERT INTO syncguard.local_write (reg_id, bucket, xid, role, application_name)
    SELECT b.reg_id, b.bucket, pg_catalog.pg_current_xact_id(), session_user, pg_catalog.current_setting('application_name')
      FROM syncguard.bucket b WHERE b.reg_id = %1$s ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END$f$, r.reg_id, v_local, syncguard._local_write_test()));
  EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', v_fn);
  EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', syncguard._truncate_fn(r.reg_id));
END $function$;

-- Whether a registration's changes must be tracked by row triggers: on a subscriber, and on a
-- publisher whose table also receives changes from a subscription of its own (a cascade).
-- A partition registered on its own is tracked by row triggers too (statements on its root reach
-- it without firing its statement triggers), and a partitioned table is a cascade when a
-- subscription replicates it as its root or as any of its leaves.
CREATE OR REPLACE FUNCTION syncguard._row_triggers(r syncguard.registration)
RETURNS boolean LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT r.node_role = 'subscriber' OR r.partitioning IS NOT DISTINCT FROM 'leaf'
      OR EXISTS (SELECT 1 FROM pg_subscription_rel sr
                  WHERE sr.srrelid = r.relid OR sr.srrelid = ANY(coalesce(syncguard._leaves(r.relid), '{}')))
$function$;

-- The condition under which a write is a local one, for the generated trigger functions.
CREATE OR REPLACE FUNCTION syncguard._local_write_test()
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT '(pg_catalog.current_setting(''session_replication_role'') OPERATOR(pg_catalog.<>) ''replica'''
          || ' OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_subscription(NULL::pg_catalog.oid) sg_w'
          || ' WHERE sg_w.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()))' $function$;

-- Gives every leaf of a partitioned registration the triggers it lacks: its TRUNCATE trigger, and
-- on a publisher its statement triggers (row triggers are the root's clones).
CREATE OR REPLACE FUNCTION syncguard._install_leaf_triggers(r syncguard.registration)
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_leaf oid;
  v_row boolean := syncguard._row_triggers(r);
  v_fn text := syncguard._mark_fn(r.reg_id);
  v_t record;
BEGIN
  FOREACH v_leaf IN ARRAY coalesce(syncguard._leaves(r.relid), '{}') LOOP
    FOR v_t IN
      SELECT n.name, n.ddl FROM (VALUES
        ('syncguard_truncate', format('AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_leaf::regclass, syncguard._truncate_fn(r.reg_id))),
        ('syncguard_insert', format('AFTER INSERT ON %s REFERENCING NEW TABLE AS sg_new FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_leaf::regclass, v_fn)),
        ('syncguard_update', format('AFTER UPDATE ON %s REFERENCING OLD TABLE AS sg_old NEW TABLE AS sg_new FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_leaf::regclass, v_fn)),
        ('syncguard_delete', format('AFTER DELETE ON %s REFERENCING OLD TABLE AS sg_old FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_leaf::regclass, v_fn))) n(name, ddl)
       WHERE (n.name = 'syncguard_truncate' OR NOT v_row)
         AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = v_leaf AND t.tgname = n.name)
    LOOP
      EXECUTE format('CREATE TRIGGER %I %s', v_t.name, v_t.ddl);
      EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', v_leaf::regclass, v_t.name);
    END LOOP;
  END LOOP;
END $function$;

-- Drops the triggers that call a registration's trigger functions from tables other than its own
-- (a leaf's TRUNCATE trigger; the triggers a partition kept when it was detached), except from
-- p_keep. Clones go with their parent trigger and are left alone.
CREATE OR REPLACE FUNCTION syncguard._drop_triggers_elsewhere(r syncguard.registration, p_keep oid[])
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_t record;
BEGIN
  FOR v_t IN
    SELECT t.tgrelid::regclass AS tbl, t.tgname FROM pg_trigger t
     WHERE t.tgfoid IN (to_regprocedure(syncguard._mark_fn(r.reg_id) || '()'), to_regprocedure(syncguard._truncate_fn(r.reg_id) || '()'))
       AND t.tgrelid <> r.relid AND t.tgparentid = 0 AND t.tgrelid <> ALL(coalesce(p_keep, '{}'))
  LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_t.tgname, v_t.tbl);
  END LOOP;
END $function$;

-- Replaces every registration's trigger functions in place from the current templates
-- (_trigger_functions); install runs it after every change to the definitions. The triggers on the
-- table and its partitions keep calling the same functions, so no user table is locked and the
-- subscription's apply goes on. A registration whose table is gone, or whose trigger kind no longer
-- fits what _row_triggers gives (health reports that; re-registering makes the new kind), is left
-- as it is. Returns how many registrations were rebuilt.
CREATE OR REPLACE FUNCTION syncguard._rebuild_trigger_functions()
RETURNS integer LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard.registration;
  v_n integer := 0;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration WHERE node_id = syncguard.node_id() ORDER BY reg_id LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = r.relid)
       AND EXISTS (SELECT 1 FROM pg_catalog.pg_proc p WHERE p.oid = pg_catalog.to_regprocedure(syncguard._mark_fn(r.reg_id) || '()')
                      AND (pg_catalog.strpos(p.prosrc, 'sg_new') = 0) = syncguard._row_triggers(r)) THEN
      PERFORM syncguard._trigger_functions(r, true);
      v_n := v_n + 1;
    END IF;
  END LOOP;
  RETURN v_n;
END $function$;
