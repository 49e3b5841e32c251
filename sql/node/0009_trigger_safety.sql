-- syncguard node schema 0009: triggers that can neither stop replication nor fail an application
-- write, and dirty marks and local-write records that no other role can forge.
--
-- 1. Every trigger function is SECURITY DEFINER: it writes marks and local-write records as the
--    owner, with the writing transaction's own xid and the server's clock. No other role may
--    insert into syncguard.dirty or syncguard.local_write, or execute any syncguard function: a
--    writer cannot mark another transaction's bucket, back-date or post-date a mark, or log a write
--    under another role's name, and a role that writes no monitored table cannot write anything.
--    The subscriber's row trigger for integer and range buckets has no SET clause (a settings save
--    and restore per applied row costs more than the row, and would revert its memo), so every
--    name and operator in it is qualified.
-- 2. Every trigger computes its bucket numbers inside an EXCEPTION block. A failure there (a key
--    column renamed or retyped, a dropped bucket function) is recorded in syncguard.fault and the
--    trigger returns: the write goes on, replication goes on, and verification reports the table
--    as not comparable until it is registered again. The block holds only reads (no xid is
--    assigned in it), so its subtransaction is cheap; the mark insert comes after it.
-- 3. A table that receives replicated changes on a publisher node (a cascade A -> B -> C, or
--    bidirectional replication) gets row triggers like a subscriber: statement triggers never fire
--    for applied changes.

-- What went wrong with a registration on this node; the first fault of each kind is kept.
--   trigger: a trigger could not compute a bucket (its changes were not marked from then on);
--   drain:   a recompute failed (its buckets are no longer kept current).
CREATE UNLOGGED TABLE syncguard.fault (
  reg_id   integer NOT NULL,
  kind     text NOT NULL CHECK (kind IN ('trigger', 'drain')),
  sqlstate text NOT NULL,
  message  text NOT NULL,
  at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (reg_id, kind)
);

REVOKE INSERT ON syncguard.dirty, syncguard.local_write FROM PUBLIC;
ALTER TABLE syncguard.dirty ALTER COLUMN marked_at SET DEFAULT clock_timestamp();
ALTER TABLE syncguard.local_write ALTER COLUMN written_at SET DEFAULT clock_timestamp();

-- Range bounds are key values (e-mail addresses, say), so they must not be readable by every role:
-- they live in an owner-only UNLOGGED table per registration, syncguard.bounds_<id>, with the key
-- type as primary key, and bucket_of_<id>() is a SECURITY DEFINER function that finds a key's
-- bucket through that index (the bounds were compiled into its source before, which pg_proc shows
-- to everyone). UNLOGGED, because a FOR ALL TABLES publication would publish a logged table to
-- subscribers that do not have it and stop their replication; crash recovery empties it, and then
-- bucket_of_<id>() takes the bounds from the registration (slower, and correct) until check_state()
-- fills the table again. Only the owner may execute it (the triggers that call it run as the
-- owner), so it cannot serve as an oracle for the bounds either.
CREATE FUNCTION syncguard._bounds_table(p_reg integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT format('syncguard.%I', 'bounds_' || p_reg) $$;

CREATE FUNCTION syncguard._install_bounds(r syncguard.registration) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tbl text := syncguard._bounds_table(r.reg_id);
  v_args text := (SELECT string_agg(ty, ', ' ORDER BY o) FROM unnest(r.key_types) WITH ORDINALITY u(ty, o));
  v_row text := (SELECT format('ROW(%s)::%s', string_agg('$' || o, ', ' ORDER BY o), syncguard._key_type(r.reg_id))
                   FROM unnest(r.key_types) WITH ORDINALITY u(ty, o));
BEGIN
  IF r.scheme <> 'range' OR r.bucket_count <= 1 THEN
    RETURN;
  END IF;
  EXECUTE format('CREATE UNLOGGED TABLE IF NOT EXISTS %s (lo %s PRIMARY KEY, bucket bigint NOT NULL)', v_tbl, syncguard._key_type(r.reg_id));
  EXECUTE format('REVOKE ALL ON %s FROM PUBLIC', v_tbl);
  EXECUTE format('TRUNCATE %s', v_tbl);
  EXECUTE format('INSERT INTO %s (lo, bucket) SELECT s.a[g], g FROM (SELECT %s AS a) s, generate_subscripts(s.a, 1) g',
                 v_tbl, syncguard._bounds_literal(r));
  -- the slow path, for a bounds table emptied by crash recovery: the bounds from the registration,
  -- cast back under the settings they were rendered with
  EXECUTE format('CREATE OR REPLACE FUNCTION %s(%s) RETURNS bigint LANGUAGE plpgsql STABLE SECURITY DEFINER %s AS %L',
    format('syncguard.%I', 'bucket_slow_' || r.reg_id), v_args, syncguard._pinned_settings(),
    format('DECLARE sg_b int8; BEGIN EXECUTE format(%L, syncguard._bounds_literal(syncguard._reg(%s))) INTO sg_b USING %s; RETURN sg_b; END',
           'SELECT pg_catalog.width_bucket($1, %s)::int8', r.reg_id, v_row));
  EXECUTE format('REVOKE ALL ON FUNCTION %s(%s) FROM PUBLIC', format('syncguard.%I', 'bucket_slow_' || r.reg_id), v_args);
  EXECUTE format('CREATE OR REPLACE FUNCTION %s(%s) RETURNS bigint LANGUAGE plpgsql STABLE SECURITY DEFINER AS %L',
    syncguard._bucket_fn(r.reg_id), v_args, format($f$
DECLARE
  sg_b pg_catalog.int8;
BEGIN
  SELECT sg_x.bucket INTO sg_b FROM %1$s sg_x WHERE sg_x.lo OPERATOR(pg_catalog.<=) %2$s ORDER BY sg_x.lo DESC LIMIT 1;
  IF sg_b IS NOT NULL THEN
    RETURN sg_b;
  END IF;
  PERFORM FROM %1$s LIMIT 1;
  IF FOUND THEN
    RETURN 0;
  END IF;
  RETURN %3$s(%4$s);
END$f$, v_tbl, v_row, format('syncguard.%I', 'bucket_slow_' || r.reg_id),
        (SELECT string_agg('$' || o, ', ' ORDER BY o) FROM unnest(r.key_types) WITH ORDINALITY u(ty, o))));
  EXECUTE format('REVOKE ALL ON FUNCTION %s(%s) FROM PUBLIC', syncguard._bucket_fn(r.reg_id), v_args);
END
$$;

-- As in 0004, and the bounds table and slow bucket function go too.
CREATE OR REPLACE FUNCTION syncguard.unregister_table(p_schema text, p_table text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_trigger text;
BEGIN
  SELECT * INTO r FROM syncguard.registration
   WHERE node_id = syncguard.node_id() AND schema_name = p_schema AND table_name = p_table;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN   -- under its current name, if renamed
    FOREACH v_trigger IN ARRAY ARRAY['syncguard_insert', 'syncguard_update', 'syncguard_delete', 'syncguard_truncate'] LOOP
      EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_trigger, r.relid::regclass);
    END LOOP;
  END IF;
  EXECUTE format('DROP FUNCTION IF EXISTS %s()', syncguard._mark_fn(r.reg_id));
  EXECUTE format('DROP FUNCTION IF EXISTS %s()', syncguard._truncate_fn(r.reg_id));
  IF r.scheme = 'range' THEN
    EXECUTE format('DROP TABLE IF EXISTS %s', syncguard._bounds_table(r.reg_id));
    EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', syncguard._key_type(r.reg_id));
  END IF;
  DELETE FROM syncguard.dirty WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.local_write WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.fault WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.bucket WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.sweep WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.registration WHERE node_id = r.node_id AND reg_id = r.reg_id;
  RETURN true;
END
$$;

-- Whether a registration's changes must be tracked by row triggers: on a subscriber, and on a
-- publisher whose table also receives changes from a subscription of its own (a cascade).
CREATE FUNCTION syncguard._row_triggers(r syncguard.registration) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT r.node_role = 'subscriber' OR EXISTS (SELECT 1 FROM pg_subscription_rel sr WHERE sr.srrelid = r.relid) $$;

-- (Re)creates the per-registration objects and triggers, all ENABLE ALWAYS so they fire for the
-- apply worker and under session_replication_role = replica as well:
--   statement triggers with transition tables (publisher), or row triggers (subscriber, cascade);
--   a TRUNCATE trigger that marks every catalogue bucket (and, on a subscriber, records a local
--   write when the TRUNCATE did not come from replication).
-- All are SECURITY DEFINER. The row trigger for integer and range buckets has no SET clause and
-- keeps a memo of the last bucket it marked in a transaction-local setting (see below); hash
-- buckets render the key as text, which depends on session settings, so their row trigger pins
-- the settings with SET clauses and keeps no memo.
CREATE OR REPLACE FUNCTION syncguard._install_triggers(r syncguard.registration) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tbl text := format('%I.%I', r.schema_name, r.table_name);
  v_fn text := syncguard._mark_fn(r.reg_id);
  v_row boolean := syncguard._row_triggers(r);
  v_local text := CASE WHEN r.node_role = 'subscriber' THEN 'true' ELSE 'false' END;
  v_memo text := quote_literal('syncguard.mark_' || r.reg_id);
  v_guard text := format($f$
  EXCEPTION WHEN OTHERS THEN
    INSERT INTO syncguard.fault (reg_id, kind, sqlstate, message)
    VALUES (%s, 'trigger', SQLSTATE, pg_catalog."left"(SQLERRM, 500)) ON CONFLICT DO NOTHING;
    RETURN NULL;
  END;$f$, r.reg_id);
  -- marks bucket $X for this transaction (and records a local write on a subscriber)
  v_mark text := format($f$
    INSERT INTO syncguard.dirty (reg_id, bucket, xid) VALUES (%1$s, $X, pg_catalog.pg_current_xact_id()) ON CONFLICT DO NOTHING;
    IF %2$s AND pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.<>) 'replica' THEN
      INSERT INTO syncguard.local_write (reg_id, bucket, xid, role, application_name)
      VALUES (%1$s, $X, pg_catalog.pg_current_xact_id(), session_user, pg_catalog.current_setting('application_name')) ON CONFLICT DO NOTHING;
    END IF;$f$, r.reg_id, v_local);
  v_body text;
  v_pinned boolean;
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

  IF NOT v_row THEN
    v_pinned := true;
    v_body := format($f$
DECLARE
  sg_b pg_catalog.int8[];
BEGIN
  BEGIN
    IF TG_OP = 'INSERT' THEN
      SELECT pg_catalog.array_agg(sg_u.b) INTO sg_b FROM (SELECT DISTINCT %2$s FROM sg_new) sg_u(b);
    ELSIF TG_OP = 'UPDATE' THEN
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
    -- The memo: the last bucket this transaction marked, in a transaction-local setting. A set
    -- memo means a bucket of this table was computed earlier in this transaction, which proves
    -- the row type works (no DDL runs inside an applied transaction, and the apply's lock keeps
    -- other sessions' DDL out until it commits): only the first row of each applied transaction
    -- pays for the EXCEPTION block's subtransaction. A mark is skipped only when the memo equals
    -- the bucket AND the session is the apply worker (session_replication_role = replica, which
    -- only a superuser can set): any other session could set the memo itself. Hash buckets use no
    -- memo (their function's SET clauses would revert it).
    v_body := format($f$
DECLARE
  sg_o pg_catalog.int8;
  sg_n pg_catalog.int8;
  sg_m pg_catalog.text := pg_catalog.current_setting(%6$s, true);
BEGIN
  IF sg_m OPERATOR(pg_catalog.<>) '' THEN
    IF TG_OP OPERATOR(pg_catalog.=) 'INSERT' THEN
      sg_n := %3$s;
      IF sg_m OPERATOR(pg_catalog.<>) sg_n::pg_catalog.text
         OR pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.<>) 'replica' THEN
%7$s
        PERFORM pg_catalog.set_config(%6$s, sg_n::pg_catalog.text, true);
      END IF;
      RETURN NULL;
    END IF;
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
  IF sg_o IS NOT NULL AND (sg_m OPERATOR(pg_catalog.<>) sg_o::pg_catalog.text
                           OR pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.<>) 'replica') THEN
%8$s
    sg_m := sg_o::pg_catalog.text;
  END IF;
  IF sg_n IS NOT NULL AND (sg_o IS NULL OR sg_n OPERATOR(pg_catalog.<>) sg_o)
     AND (sg_m OPERATOR(pg_catalog.<>) sg_n::pg_catalog.text
          OR pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.<>) 'replica') THEN
%7$s
    sg_m := sg_n::pg_catalog.text;
  END IF;
  IF %5$s AND sg_m OPERATOR(pg_catalog.<>) '' AND pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.=) 'replica' THEN
    PERFORM pg_catalog.set_config(%6$s, sg_m, true);
  END IF;
  RETURN NULL;
END$f$, r.reg_id, syncguard._bucket_expr(r, 'OLD'), syncguard._bucket_expr(r, 'NEW'), v_guard,
        CASE WHEN v_pinned THEN 'false' ELSE 'true' END, v_memo,
        replace(v_mark, '$X', 'sg_n'), replace(v_mark, '$X', 'sg_o'));
  END IF;

  -- every trigger function runs as the owner; only the apply path's int/range row trigger goes
  -- without the pinned settings (it renders no text, and names and operators are qualified)
  EXECUTE format('CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER %s AS %L',
                 v_fn, CASE WHEN v_pinned THEN syncguard._pinned_settings() ELSE '' END, v_body);
  -- TRUNCATE reads the catalogue, which only the owner may.
  EXECUTE format('CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER %s AS %L',
    syncguard._truncate_fn(r.reg_id), syncguard._pinned_settings(), format($f$
BEGIN
  INSERT INTO syncguard.dirty (reg_id, bucket, xid)
  SELECT b.reg_id, b.bucket, pg_catalog.pg_current_xact_id() FROM syncguard.bucket b WHERE b.reg_id = %1$s ON CONFLICT DO NOTHING;
  IF %2$s AND pg_catalog.current_setting('session_replication_role') <> 'replica' THEN
    INSERT INTO syncguard.local_write (reg_id, bucket, xid, role, application_name)
    SELECT b.reg_id, b.bucket, pg_catalog.pg_current_xact_id(), session_user, pg_catalog.current_setting('application_name')
      FROM syncguard.bucket b WHERE b.reg_id = %1$s ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END$f$, r.reg_id, v_local));
  EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', v_fn);
  EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', syncguard._truncate_fn(r.reg_id));

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

-- Existing registrations get the new triggers (a table dropped meanwhile keeps none).
DO $upgrade$
DECLARE
  r syncguard.registration;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration WHERE node_id = syncguard.node_id() ORDER BY reg_id LOOP
    IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = r.relid) THEN
      PERFORM syncguard._install_triggers(r);
    END IF;
  END LOOP;
END
$upgrade$;
