-- syncguard node schema 0025: what escaped marking or comparison (issue 17 items 3-7, 14).
--
-- Item 3. Hash version 2 casts a domain column to its base type by the base type's name
-- (0020 _column_expr_v2: format('%s::%s', col, base::regtype)). For char(n) and bit(n) that name is
-- `character` / `bit`, which PostgreSQL reads as char(1) / bit(1): 'USD' hashes as 'U' and B'0010'
-- as B'0'. Measured on 15 and 18, a domain over each sized type cast to its unsized name:
--   char(3) 'USD' -> 'U', bit(4) '0010' -> '0', char(3)[] '{USD,EUR}' -> '{U,E}' (truncated);
--   varchar(5), numeric(10,3), varbit(6), time(2), timetz(1), timestamp(1), timestamptz(1),
--   interval(1), interval day to second(2): unchanged (the unsized type is unbounded).
-- Version 2's hashes must not change (that is a new hash version), so such a registration is never
-- made (registration picks version 1 and says why, and refuses --hash-version 2) and an existing
-- one is a health problem: verify does not compare it, and status names the command that moves it.

-- Hashed columns of a table whose type is a domain (at any depth) over character or bit, or over
-- an array of them: version 2 reads them back truncated. [{column, type, base}], base as declared
-- by the innermost domain (e.g. character(3)).
CREATE FUNCTION syncguard._v2_truncated(p_relid oid, p_columns name[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE cols AS (
    SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a
     WHERE a.attrelid = p_relid AND a.attname = ANY(p_columns) AND a.attnum > 0 AND NOT a.attisdropped
  ), d(attname, oid, base, typmod) AS (
    SELECT c.attname, t.oid, t.typbasetype, t.typtypmod FROM cols c JOIN pg_type t ON t.oid = c.atttypid WHERE t.typtype = 'd'
    UNION ALL
    SELECT d.attname, t.oid, t.typbasetype, t.typtypmod FROM d JOIN pg_type t ON t.oid = d.base WHERE t.typtype = 'd'
  )
  SELECT coalesce(jsonb_agg(jsonb_build_object('column', c.attname, 'type', format_type(c.atttypid, c.atttypmod),
                                               'base', format_type(d.base, d.typmod)) ORDER BY c.attname), '[]')
    FROM cols c JOIN d ON d.attname = c.attname
   WHERE d.base IN ('bpchar'::regtype, 'bit'::regtype, '_bpchar'::regtype, '_bit'::regtype)
$$;

-- For registration (the owner): the columns of schema.table among p_columns that version 2 would
-- truncate; '[]' when none or when the table does not exist.
CREATE FUNCTION syncguard.v2_truncated_columns(p_schema text, p_table text, p_columns text[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(syncguard._v2_truncated(to_regclass(format('%I.%I', p_schema, p_table)), p_columns::name[]), '[]')
$$;

-- The problem of a version 2 registration with such a column, or NULL.
CREATE FUNCTION syncguard._v2_problem(r syncguard.registration) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_cols jsonb;
BEGIN
  IF r.hash_version IS DISTINCT FROM 2 OR NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relid) THEN
    RETURN NULL;
  END IF;
  v_cols := syncguard._v2_truncated(r.relid, r.columns);
  IF jsonb_array_length(v_cols) = 0 THEN
    RETURN NULL;
  END IF;
  RETURN format('hash version 2 reads %s back truncated to its first character or bit, so a change after it is not seen '
                'and the table is not compared; move it to hash version 1: syncguard register --table %s --refresh --hash-version 1',
                (SELECT string_agg(format('column %I (%s, a domain over %s)', x->>'column', x->>'type', x->>'base'), ', ' ORDER BY x->>'column')
                   FROM jsonb_array_elements(v_cols) x),
                syncguard._table_text(r.schema_name, r.table_name));
END
$$;

-- As in 0018, and the problems of this migration (_more_problems).
CREATE OR REPLACE FUNCTION syncguard._problems(r syncguard.registration) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_name text := format('%I.%I', r.schema_name, r.table_name);
  v_now oid := to_regclass(v_name);
  v_out text[] := '{}';
  v_row boolean;
  v_t record;
  v_f record;
  v_c record;
  v_fix text := format('; re-register it: syncguard unregister --table %s, then syncguard register --table %s', v_name, v_name);
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN
    RETURN ARRAY[CASE WHEN v_now IS NULL THEN format('the table was dropped on this node%s', v_fix)
                      ELSE format('the table was dropped on this node and %s is a new table without syncguard triggers%s', v_name, v_fix) END];
  END IF;
  IF v_now IS DISTINCT FROM r.relid THEN
    v_out := v_out || format('the registered table is now named %s (renamed), and %s %s%s', r.relid::regclass, v_name,
                             CASE WHEN v_now IS NULL THEN 'does not exist' ELSE 'is another table' END, v_fix);
    RETURN v_out;
  END IF;
  IF syncguard._inheritance(r.relid) IN ('parent', 'child') THEN
    v_out := v_out || format('the table is now in an inheritance tree (%s), which syncguard does not support',
                             syncguard._inheritance(r.relid));
  END IF;
  v_out := v_out || syncguard._partition_problems(r, v_fix);
  v_row := syncguard._row_triggers(r);
  FOR v_t IN
    SELECT n.name, t.tgenabled, t.tgfoid, (t.tgtype::integer & 1) = 1 AS is_row
      FROM unnest(ARRAY['syncguard_insert', 'syncguard_update', 'syncguard_delete', 'syncguard_truncate']) n(name)
      LEFT JOIN pg_trigger t ON t.tgrelid = r.relid AND t.tgname = n.name
  LOOP
    IF v_t.tgenabled IS NULL THEN
      v_out := v_out || format('trigger %s is missing, so changes are not tracked%s', v_t.name, v_fix);
    ELSIF v_t.tgenabled <> 'A' THEN
      v_out := v_out || format('trigger %s is %s, not ENABLE ALWAYS, so %s changes are not tracked (ALTER TABLE ... ENABLE TRIGGER ALL and pg_restore --disable-triggers do this); fix: ALTER TABLE %s ENABLE ALWAYS TRIGGER %s, then syncguard drain --full-resweep on this node',
                               v_t.name, CASE v_t.tgenabled WHEN 'D' THEN 'disabled' WHEN 'O' THEN 'enabled for local writes only' ELSE 'enabled for replicated changes only' END,
                               CASE v_t.tgenabled WHEN 'D' THEN 'all' WHEN 'O' THEN 'replicated' ELSE 'local' END, v_name, v_t.name);
    ELSIF v_t.name <> 'syncguard_truncate' AND v_t.is_row <> v_row THEN
      v_out := v_out || format('the table %s replicated changes on this node, and its triggers are %s-level%s',
                               CASE WHEN v_row THEN 'now receives' ELSE 'no longer receives' END,
                               CASE WHEN v_t.is_row THEN 'row' ELSE 'statement' END, v_fix);
      EXIT;
    END IF;
  END LOOP;
  FOR v_c IN
    SELECT u.c, u.ty, u.is_key, format_type(a.atttypid, a.atttypmod) AS now_type
      FROM (SELECT k, t, true FROM unnest(r.key_columns, r.key_types) x(k, t)
            UNION ALL SELECT k, t, false FROM unnest(r.columns, r.column_types) x(k, t) WHERE k <> ALL(r.key_columns)) u(c, ty, is_key)
      LEFT JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.c AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    IF v_c.now_type IS NULL THEN
      v_out := v_out || format('%s column %I no longer exists (dropped or renamed)%s', CASE WHEN v_c.is_key THEN 'key' ELSE 'hashed' END, v_c.c, v_fix);
    ELSIF v_c.now_type <> v_c.ty THEN
      v_out := v_out || format('%s column %I is now %s, registered as %s%s', CASE WHEN v_c.is_key THEN 'key' ELSE 'hashed' END,
                               v_c.c, v_c.now_type, v_c.ty, v_fix);
    END IF;
  END LOOP;
  IF r.key_collations IS NOT NULL AND syncguard._collations(r.relid, r.key_columns) IS DISTINCT FROM r.key_collations THEN
    v_out := v_out || format('the key collations are now %s, registered as %s%s', syncguard._collations(r.relid, r.key_columns), r.key_collations, v_fix);
  END IF;
  FOR v_f IN SELECT * FROM syncguard.fault f WHERE f.reg_id = r.reg_id ORDER BY f.kind LOOP
    v_out := v_out || format('%s since %s: %s (SQLSTATE %s)%s',
                             CASE WHEN v_f.kind = 'trigger' THEN 'a trigger could not mark changes' ELSE 'the drain could not recompute buckets' END,
                             v_f.at, v_f.message, v_f.sqlstate, v_fix);
  END LOOP;
  v_out := v_out || syncguard._more_problems(r);
  RETURN v_out;
END
$$;


-- As in 0018, and each table's hash version problem (item 3), which status shows with its fix.
CREATE OR REPLACE FUNCTION syncguard.status() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
SECURITY DEFINER
AS $$
  SELECT jsonb_build_object(
    'nodeId', syncguard.node_id(),
    'stateIntact', EXISTS (SELECT 1 FROM syncguard.sentinel),
    'stateLostAt', n.state_lost_at,
    'stateLostCount', coalesce(n.state_lost_count, 0),
    'lastFullSweepAt', n.full_sweep_at,
    'remainingDirty', (SELECT count(*) FROM (SELECT DISTINCT d.reg_id, d.bucket FROM syncguard.dirty d
                         WHERE d.reg_id IN (SELECT syncguard._healthy_regs())) x),
    'oldestDirtyAgeMs', (SELECT floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint
                           FROM syncguard.dirty d WHERE d.reg_id IN (SELECT syncguard._healthy_regs())),
    'tables', coalesce((SELECT jsonb_agg(jsonb_build_object(
        'table', syncguard._table_text(r.schema_name, r.table_name),
        'role', r.node_role,
        'scheme', r.scheme,
        'fingerprint', r.fingerprint,
        'buckets', (SELECT count(*) FROM syncguard.bucket b WHERE b.reg_id = r.reg_id AND b.row_count IS NOT NULL),
        'rows', (SELECT coalesce(sum(b.row_count), 0) FROM syncguard.bucket b WHERE b.reg_id = r.reg_id),
        'dirtyBuckets', (SELECT count(DISTINCT d.bucket) FROM syncguard.dirty d WHERE d.reg_id = r.reg_id),
        'oldestDirtyAgeMs', (SELECT floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint
                               FROM syncguard.dirty d WHERE d.reg_id = r.reg_id),
        'sweepProgress', syncguard._sweep_progress(r),
        'sweepPass', (SELECT s.pass FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'firstSweepFinishedAt', (SELECT s.first_finished_at FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'lastSweepFinishedAt', (SELECT s.finished_at FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'partitions', syncguard._partition_status(r),
        'hashProblem', syncguard._v2_problem(r),
        'fault', (SELECT string_agg(format('%s: %s', f.kind, f.message), '; ' ORDER BY f.kind) FROM syncguard.fault f WHERE f.reg_id = r.reg_id))
        ORDER BY r.schema_name, r.table_name) FROM syncguard.registration r WHERE r.node_id = syncguard.node_id()), '[]'::jsonb))
  FROM (SELECT 1) one LEFT JOIN syncguard.node_state n ON n.node_id = syncguard.node_id()
$$;
-- Item 4. The subscriber's row trigger (integer and range buckets) skips a mark when its memo, the
-- transaction-local setting syncguard.mark_<reg>, names the bucket and the session has
-- session_replication_role = replica. Both can be set by other code than syncguard's: since
-- PostgreSQL 15 `GRANT SET ON PARAMETER session_replication_role` lets a non-superuser (and
-- rds_superuser) set replica, any session may set a custom setting, and a user BEFORE trigger in
-- the apply worker can set the memo. Such a write went without a mark, and on a subscriber without
-- a local-write record. Now:
--   - the memo never skips a mark: every row writes its marks with INSERT ... ON CONFLICT DO
--     NOTHING (a mark this transaction already wrote conflicts and is not written twice). The
--     memo (any value) only lets the rows after the first skip the EXCEPTION block's
--     subtransaction, in replica sessions, as before; a forged memo gains nothing, because the
--     apply worker's user trigger that could forge it could as well raise itself. Cost, measured
--     here (PostgreSQL 15, plpgsql loop of 100k): the INSERT that conflicts 7.8 us per row; proving
--     the memo instead (a mark of this transaction for the memo's bucket exists: a regular
--     expression, a cast and an index probe) 12.7 us, so proving it would cost more than the mark
--     it saves. Only where the memo held (replica sessions with a per-transaction memo: PostgreSQL
--     15, or 16+ when the table owner may SET ROLE to the subscription owner) does a row now pay
--     the conflicting INSERT; on PostgreSQL 16+ applying as the table owner the memo was reset
--     after every row anyway, so nothing changes there.
--   - a write is local unless the session is a logical replication worker: the backend is listed
--     in pg_stat_get_subscription() (apply, table sync and parallel apply workers; readable by
--     every role, a short scan of shared memory, 8.7 us). It runs only when a new mark is written
--     in a session with session_replication_role = replica, so an ordinary session pays nothing
--     new and the apply worker pays it once per (bucket, transaction). A session that only set
--     session_replication_role = replica is now recorded as a local writer.
-- The TRUNCATE trigger records local writes by the same rule.

-- The condition under which a write is a local one, for the generated trigger functions.
CREATE FUNCTION syncguard._local_write_test() RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT '(pg_catalog.current_setting(''session_replication_role'') OPERATOR(pg_catalog.<>) ''replica'''
          || ' OR NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_get_subscription(NULL::pg_catalog.oid) sg_w'
          || ' WHERE sg_w.pid OPERATOR(pg_catalog.=) pg_catalog.pg_backend_pid()))' $$;

-- Creates (or, p_replace, replaces in place) a registration's trigger functions: the mark function
-- (statement- or row-level, by _row_triggers) and the TRUNCATE function. From 0009/0022's
-- _install_triggers, with the memo proven and local writes told apart as above.
CREATE FUNCTION syncguard._trigger_functions(r syncguard.registration, p_replace boolean) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
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
    -- (see the head of this item), so every row writes its marks with ON CONFLICT DO NOTHING,
    -- and only a mark that is new runs the local-write test. Hash buckets use no memo (their
    -- function's SET clauses would revert it).
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
  -- others render no text, and their names and operators are qualified: 0022). A replaced
  -- function keeps its owner and privileges; RESET ALL first drops settings it no longer pins.
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
END
$$;

-- As in 0009 and 0022, with the trigger functions made by _trigger_functions.
CREATE OR REPLACE FUNCTION syncguard._install_triggers(r syncguard.registration) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
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
END
$$;

-- Existing registrations: their trigger functions replaced in place (the triggers on the table and
-- its partitions keep calling them). A function whose table was dropped is left as it is.
DO $upgrade$
DECLARE
  r syncguard.registration;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration WHERE node_id = syncguard.node_id() ORDER BY reg_id LOOP
    -- only where the function is still of the kind _row_triggers() gives (health reports a table
    -- whose trigger kind no longer fits; re-registering it makes the new kind)
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = r.relid)
       AND EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = to_regprocedure(syncguard._mark_fn(r.reg_id) || '()')
                      AND (strpos(p.prosrc, 'sg_new') = 0) = syncguard._row_triggers(r)) THEN
      PERFORM syncguard._trigger_functions(r, true);
    END IF;
  END LOOP;
END
$upgrade$;

REVOKE ALL ON FUNCTION syncguard._local_write_test(), syncguard._trigger_functions(syncguard.registration, boolean) FROM PUBLIC;

-- Item 6. A partition detached and attached again between two drains leaves the set of leaves as
-- it was, so _check_partitions (0018), which compared only leaf oids, rebuilt nothing, while the
-- partition's rows changed unseen in between (a detached partition loses the root's cloned row
-- triggers; a statement on it reaches none of the root's). Done on both nodes it gave in sync.
-- Every DETACH deletes the partition's pg_inherits row and every ATTACH inserts a new one (DETACH
-- CONCURRENTLY also updates it first), so its xmin changes: the registration now keeps, beside its
-- leaves, a signature of the pg_inherits rows of every member of the tree below the root
-- (inhrelid:xmin). A different signature is a partition change like any other: health reports it,
-- the next drain rebuilds the catalogue. Nothing else writes pg_inherits rows of partitions;
-- TRUNCATE, VACUUM FULL and ALTER TABLE rewrite pg_class (relfilenode), which is not looked at.
ALTER TABLE syncguard.registration ADD COLUMN leaf_sig text;

CREATE FUNCTION syncguard._leaf_sig(p_relid oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(string_agg(format('%s:%s', i.inhrelid, i.xmin), ',' ORDER BY i.inhrelid), '')
    FROM pg_partition_tree(p_relid) t JOIN pg_inherits i ON i.inhrelid = t.relid
   WHERE t.relid::oid <> p_relid
$$;

UPDATE syncguard.registration g SET leaf_sig = syncguard._leaf_sig(g.relid)
 WHERE g.node_id = syncguard.node_id() AND g.partitioning = 'root'
   AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.relid AND c.relkind = 'p');

-- As in 0018, and a registration whose leaves are the same but whose signature changed (a
-- partition detached and attached again) is rebuilt too; a registration without a
-- signature yet (registered since, no catalogue built before its first check) just takes it.
CREATE OR REPLACE FUNCTION syncguard._check_partitions() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_now oid[];
  v_sig text;
  v_again text[];
  v_n integer := 0;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration g
            WHERE g.node_id = syncguard.node_id() AND g.partitioning = 'root'
              AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.relid AND c.relkind = 'p') LOOP
    v_now := syncguard._leaves(r.relid);
    v_sig := syncguard._leaf_sig(r.relid);
    IF v_now = r.leaves AND r.leaf_sig IS NULL THEN
      UPDATE syncguard.registration SET leaf_sig = v_sig WHERE node_id = r.node_id AND reg_id = r.reg_id;
      CONTINUE;
    END IF;
    CONTINUE WHEN v_now = r.leaves AND v_sig = r.leaf_sig;
    -- members still there whose pg_inherits row is new: detached and attached again
    v_again := ARRAY(SELECT x.oid::regclass::text
                       FROM (SELECT split_part(e, ':', 1)::oid AS oid, split_part(e, ':', 2) AS xmin
                               FROM unnest(string_to_array(v_sig, ',')) e) x
                       JOIN (SELECT split_part(e, ':', 1)::oid AS oid, split_part(e, ':', 2) AS xmin
                               FROM unnest(string_to_array(coalesce(r.leaf_sig, ''), ',')) e WHERE e <> '') o
                         ON o.oid = x.oid AND o.xmin <> x.xmin
                      ORDER BY 1);
    BEGIN
      PERFORM syncguard._install_leaf_triggers(r);
      PERFORM syncguard._drop_triggers_elsewhere(r, v_now);
    EXCEPTION WHEN OTHERS THEN
      IF syncguard._transient(SQLSTATE) THEN
        RAISE;
      END IF;
      INSERT INTO syncguard.fault (reg_id, kind, sqlstate, message)
      VALUES (r.reg_id, 'trigger', SQLSTATE, left(format('cannot give a new partition of %I.%I its triggers: %s',
                                                        r.schema_name, r.table_name, SQLERRM), 500))
      ON CONFLICT DO NOTHING;
    END;
    INSERT INTO syncguard.partition_change AS pc (reg_id, added, removed)
    VALUES (r.reg_id,
            ARRAY(SELECT x::regclass::text FROM unnest(v_now) x WHERE x <> ALL(r.leaves) ORDER BY 1)
              || ARRAY(SELECT a || ' (detached and attached again)' FROM unnest(v_again) a),
            ARRAY(SELECT x::regclass::text FROM unnest(r.leaves) x
                   WHERE x <> ALL(v_now) AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x)
                  UNION ALL
                  SELECT format('(dropped, oid %s)', x) FROM unnest(r.leaves) x
                   WHERE x <> ALL(v_now) AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x)))
    ON CONFLICT (reg_id) DO UPDATE SET at = clock_timestamp(), added = EXCLUDED.added, removed = EXCLUDED.removed;
    UPDATE syncguard.registration SET leaves = v_now, leaf_sig = v_sig WHERE node_id = r.node_id AND reg_id = r.reg_id;
    DELETE FROM syncguard.dirty WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.bucket WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.sweep WHERE reg_id = r.reg_id;
    v_n := v_n + 1;
  END LOOP;
  -- item 7's check runs here too: check_state() calls this on every drain
  RETURN v_n + syncguard._check_rewrites();
END
$$;

-- For health: the signature changed with the same leaves (the leaf change itself is reported by
-- _partition_problems).
CREATE FUNCTION syncguard._leaf_sig_problem(r syncguard.registration) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 'a partition was detached and attached again since the last drain; the next drain on this node rebuilds the table''s catalogue'
   WHERE r.partitioning = 'root' AND r.leaf_sig IS NOT NULL
     AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relid AND c.relkind = 'p')
     AND syncguard._leaves(r.relid) = r.leaves AND syncguard._leaf_sig(r.relid) <> r.leaf_sig
$$;


-- Item 5. Row filters. The publisher hashes only the rows its publications publish (docs/hashing.md),
-- with the filter read once at registration (registration.row_filter). Two faults:
--   - after ALTER PUBLICATION ... WHERE the publisher hashed another row set than it published,
--     and health never looked again. Health now recomputes the filter on the publisher
--     (_row_filter_problem) and, when it differs from the registered one, reports the table as not
--     comparable until it is registered again (register --refresh reads the new filter);
--   - with publish_via_partition_root = false each partition is published with its own filter
--     (pgoutput looks the filter up for the leaf itself), but the filters of all leaves were OR-ed,
--     or dropped when one was NULL. Now each leaf's filter is worked out from the publication
--     entries of that leaf and its ancestors (OR-ed across publications, none when one has none,
--     `false` when no publication carries the leaf); when all leaves agree the filter is as before
--     (same text, so registrations made before keep theirs), and otherwise it is
--     (CASE sg_t.tableoid WHEN <leaf> THEN (<its filter>) ... ELSE false END), applied per row (every
--     reader of a registered table names it sg_t).

-- As in 0018, with each leaf's own row filter.
CREATE OR REPLACE FUNCTION syncguard._publication_info(p_relid oid, p_publications text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_found boolean;
  v_cols jsonb := NULL;
  v_filter text := NULL;
  v_rels oid[] := ARRAY(SELECT t.relid::oid FROM pg_partition_tree(p_relid) t
                        UNION SELECT a.relid::oid FROM pg_partition_ancestors(p_relid) a
                        UNION SELECT p_relid);
  v_leaves oid[] := coalesce(syncguard._leaves(p_relid), ARRAY[p_relid]);
  v_per jsonb;
BEGIN
  SELECT count(*) > 0 INTO v_found FROM pg_publication_tables pt
   WHERE pt.pubname = ANY(p_publications) AND (pt.schemaname, pt.tablename) IN (SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(v_rels));
  -- Column lists and row filters exist from PostgreSQL 15 (plpgsql plans this only when it runs).
  IF v_found AND current_setting('server_version_num')::integer >= 150000 THEN
    WITH e AS (
      SELECT pt.pubname, pt.rowfilter, pt.attnames FROM pg_publication_tables pt
       WHERE pt.pubname = ANY(p_publications) AND (pt.schemaname, pt.tablename) IN (SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(v_rels))
    )
    SELECT CASE WHEN bool_or(e.attnames IS NULL) THEN NULL
                ELSE (SELECT jsonb_agg(DISTINCT x ORDER BY x) FROM e e3, unnest(e3.attnames) x) END
      INTO v_cols
      FROM e;
    -- per leaf (a plain table or a partition: itself): the entries that carry it, as itself or
    -- as an ancestor (publish_via_partition_root), OR-ed as 0018 did for the whole table
    SELECT coalesce(jsonb_agg(jsonb_build_object('leaf', x.leaf, 'published', x.published, 'filter', x.filter) ORDER BY x.leaf), '[]')
      INTO v_per
      FROM (SELECT l.leaf, count(e.pubname) > 0 AS published,
                   CASE WHEN count(e.pubname) = 0 THEN 'false'
                        WHEN bool_or(e.rowfilter IS NULL) THEN NULL
                        ELSE (SELECT string_agg('(' || f.rowfilter || ')', ' OR ' ORDER BY f.first)
                                FROM (SELECT e2.rowfilter, min(e2.pubname) AS first
                                        FROM pg_publication_tables e2 JOIN pg_namespace n2 ON n2.nspname = e2.schemaname
                                        JOIN pg_class c2 ON c2.relnamespace = n2.oid AND c2.relname = e2.tablename
                                       WHERE e2.pubname = ANY(p_publications)
                                         AND (c2.oid = l.leaf OR c2.oid IN (SELECT a.relid FROM pg_partition_ancestors(l.leaf) a))
                                       GROUP BY e2.rowfilter) f) END AS filter
              FROM unnest(v_leaves) l(leaf)
              LEFT JOIN (SELECT pt.pubname, pt.rowfilter, c.oid AS relid FROM pg_publication_tables pt
                           JOIN pg_namespace n ON n.nspname = pt.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
                          WHERE pt.pubname = ANY(p_publications)) e
                ON e.relid = l.leaf OR e.relid IN (SELECT a.relid FROM pg_partition_ancestors(l.leaf) a)
             GROUP BY l.leaf) x;
    IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_per) f WHERE NOT (f->>'published')::boolean)
       AND (SELECT count(DISTINCT coalesce(f->>'filter', chr(1))) FROM jsonb_array_elements(v_per) f) <= 1 THEN
      v_filter := v_per->0->>'filter';
    ELSE
      SELECT format('CASE sg_t.tableoid %s ELSE false END',
                    string_agg(format('WHEN %s::pg_catalog.oid THEN (%s)', f->>'leaf', coalesce(f->>'filter', 'true')), ' ' ORDER BY (f->>'leaf')::oid))
        INTO v_filter FROM jsonb_array_elements(v_per) f WHERE (f->>'published')::boolean;
    END IF;
  END IF;
  RETURN jsonb_build_object('published', v_found, 'columns', v_cols, 'rowFilter', v_filter);
END
$$;

-- For health: on the publisher, the row filter its publications apply now, when it is not the
-- registered one.
CREATE FUNCTION syncguard._row_filter_problem(r syncguard.registration) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_pub jsonb;
  v_now text;
BEGIN
  IF r.node_role <> 'publisher' OR cardinality(r.publications) = 0 OR NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relid) THEN
    RETURN NULL;
  END IF;
  v_pub := syncguard._publication_info(r.relid, r.publications);
  IF NOT (v_pub->>'published')::boolean THEN
    RETURN NULL;   -- reported by the parity checks
  END IF;
  v_now := v_pub->>'rowFilter';
  IF v_now IS NOT DISTINCT FROM r.row_filter THEN
    RETURN NULL;
  END IF;
  RETURN format('the publications'' row filter changed since registration (now %s, registered %s): the publisher would hash other rows than it publishes, so the table is not compared; re-register it: syncguard register --table %s --refresh',
                coalesce(v_now, 'none'), coalesce(r.row_filter, 'none'), syncguard._table_text(r.schema_name, r.table_name));
END
$$;

-- Item 7. Changes that rewrite rows without firing a trigger: ALTER TABLE ... ALTER COLUMN c TYPE
-- <the same type> USING <expr> (DDL is not replicated, so one side's rows change unseen), and
-- ALTER TYPE ... RENAME VALUE (the text of every row with that enum value changes, and version 1
-- and 2 hash an enum by its label). Both rewrite a catalogue row that nothing else does for a
-- hashed column: ALTER COLUMN TYPE the column's pg_attribute row, RENAME VALUE the label in
-- pg_enum. The registration keeps a signature of them (content_sig: each hashed column's
-- pg_attribute xmin, and the labels of every enum a hashed column holds, under domains and
-- arrays); every drain compares it (from _check_partitions, which check_state runs), and a
-- different one rebuilds the catalogue (a new first sweep), as a partition change does; until
-- then health reports it and verify does not compare the table. Other ALTERs of a hashed column
-- (SET STATISTICS, SET NOT NULL) also rewrite its pg_attribute row: they cost a sweep, never a
-- verdict.
ALTER TABLE syncguard.registration ADD COLUMN content_sig text;

CREATE FUNCTION syncguard._content_sig(r syncguard.registration) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE cols AS (
    SELECT a.attname, a.xmin::text AS x, a.atttypid FROM pg_attribute a
     WHERE a.attrelid = r.relid AND a.attname = ANY(r.columns) AND a.attnum > 0 AND NOT a.attisdropped
  ), ty(oid) AS (
    SELECT c.atttypid FROM cols c
    UNION
    SELECT u.o FROM ty JOIN pg_type t ON t.oid = ty.oid
      CROSS JOIN LATERAL (VALUES (t.typbasetype), (t.typelem)) u(o) WHERE u.o <> 0
  )
  SELECT coalesce((SELECT string_agg(format('%s:%s', c.attname, c.x), ',' ORDER BY c.attname) FROM cols c), '')
         || '|' || coalesce((SELECT string_agg(format('%s=%s', e.enumtypid, e.labels), ';' ORDER BY e.enumtypid)
                               FROM (SELECT en.enumtypid, string_agg(en.enumlabel, ',' ORDER BY en.enumsortorder) AS labels
                                       FROM pg_enum en WHERE en.enumtypid IN (SELECT oid FROM ty) GROUP BY en.enumtypid) e), '')
$$;

UPDATE syncguard.registration g SET content_sig = syncguard._content_sig(g)
 WHERE g.node_id = syncguard.node_id() AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.relid);

-- Every registration of this node whose content signature changed: its catalogue is rebuilt
-- (recorded like a partition change, for status). A registration without one takes it.
CREATE FUNCTION syncguard._check_rewrites() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_sig text;
  v_n integer := 0;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration g
            WHERE g.node_id = syncguard.node_id() AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.relid) LOOP
    v_sig := syncguard._content_sig(r);
    CONTINUE WHEN v_sig = r.content_sig;
    UPDATE syncguard.registration SET content_sig = v_sig WHERE node_id = r.node_id AND reg_id = r.reg_id;
    CONTINUE WHEN r.content_sig IS NULL;
    INSERT INTO syncguard.partition_change AS pc (reg_id, added, removed)
    VALUES (r.reg_id, ARRAY['(rows rewritten without triggers: a hashed column altered or an enum value renamed)'], '{}')
    ON CONFLICT (reg_id) DO UPDATE SET at = clock_timestamp(), added = EXCLUDED.added, removed = EXCLUDED.removed;
    DELETE FROM syncguard.dirty WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.bucket WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.sweep WHERE reg_id = r.reg_id;
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END
$$;

CREATE FUNCTION syncguard._rewrite_problem(r syncguard.registration) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 'rows may have been rewritten without triggers since the last drain (ALTER COLUMN ... TYPE ... USING on a hashed column, or ALTER TYPE ... RENAME VALUE of an enum it holds); the next drain on this node rebuilds the table''s catalogue'
   WHERE r.content_sig IS NOT NULL AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relid)
     AND syncguard._content_sig(r) <> r.content_sig
$$;

-- The problems this migration adds to health (_problems above calls it).
CREATE FUNCTION syncguard._more_problems(r syncguard.registration) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_out text[] := '{}';
  v_p text;
BEGIN
  FOREACH v_p IN ARRAY ARRAY[syncguard._v2_problem(r), syncguard._leaf_sig_problem(r), syncguard._row_filter_problem(r), syncguard._rewrite_problem(r)] LOOP
    IF v_p IS NOT NULL THEN
      v_out := v_out || v_p;
    END IF;
  END LOOP;
  RETURN v_out;
END
$$;
