-- syncguard node schema 0030: drains write nothing a publication replicates, and a probe's work on
-- the subscriber is bounded by the rows it really reads (issue 17 follow-ups H3 and item 14;
-- docs/permissions.md "What is not checked").
--
-- 1. Drain state. A FOR ALL TABLES publication replicates every logged table, syncguard's too. A
-- drain wrote two of them: syncguard.node_state (its row, the time of the last full re-sweep, each
-- loss of the unlogged state) and syncguard.registration (a partitioned table's leaves and their
-- signature, the hashed columns' signature). Such a row reaches every subscription of that
-- publication, and one whose owner may not apply the installer's tables (PostgreSQL 16+ with
-- run_as_owner off: may not SET ROLE to the installer; run_as_owner on or 15: lacks the
-- privileges) stops in an error loop. A drain runs on one node and cannot see who owns the
-- subscriptions elsewhere, so it no longer writes them at all:
--   - the drain's own state lives in the unlogged syncguard.drain_state. Crash recovery empties it
--     together with the catalogue, and the drain that notices the loss sets both of its times
--     (the loss, and the full sweep that loss starts) as before; nothing is lost that was not
--     being reset anyway;
--   - the number of losses must survive them, so it is the sequence syncguard.state_loss_count,
--     set exactly (setval) by the drain that notices a loss. PostgreSQL's logical replication
--     sends no sequence (13 to 18);
--   - what a table's catalogue was built against (leaves, leaf_sig, content_sig) lives in the
--     unlogged syncguard.catalogue_sig, beside the catalogue it describes. Without a row there
--     (a new registration, or after crash recovery) the registration's values, written when it
--     was registered or by a drain before this migration, stand in; after a loss the catalogue is
--     rebuilt anyway.
-- node_state and the registration's columns keep their last values (a replicated table's shape
-- must not change) and are read only here, to seed the new state.
--
-- 2. A probe's size. Probes target dirty or never computed buckets, whose catalogue counts are
-- stale (0 after a loss), so the cap checked against syncguard.bucket.row_count let the
-- subscriber's trigger, inside the apply worker, read a bucket as large as it really was.
-- _probe_rows now counts the rows a probe reads, reading at most one more than the cap (LIMIT),
-- with the same predicates as the compute (_compute_sql); a hash-bucketed table is read whole.
-- The subscriber then answers "not ok" (never raises) for a bucket above the cap, having read at
-- most cap + 1 rows, and the publisher's probe functions refuse it by the same count before they
-- take their lock (where statement_timeout also bounds them, flows/probes.ts).

-- The drain's state on this node (one row; unlogged: never replicated, emptied by crash recovery).
CREATE UNLOGGED TABLE syncguard.drain_state (
  one            boolean PRIMARY KEY DEFAULT true CHECK (one),
  full_sweep_at  timestamptz,          -- start of the latest full (re-)sweep of every table
  state_lost_at  timestamptz           -- last time the unlogged state was found emptied
);
INSERT INTO syncguard.drain_state (full_sweep_at, state_lost_at)
SELECT n.full_sweep_at, n.state_lost_at FROM syncguard.node_state n WHERE n.node_id = syncguard.node_id();

-- How often the unlogged state was found emptied (durable; no publication replicates a sequence).
CREATE SEQUENCE syncguard.state_loss_count MINVALUE 0 START 0;
SELECT pg_catalog.setval('syncguard.state_loss_count',
  coalesce((SELECT n.state_lost_count FROM syncguard.node_state n WHERE n.node_id = syncguard.node_id()), 0), true);

-- What each registration's catalogue was built against (unlogged, like the catalogue).
CREATE UNLOGGED TABLE syncguard.catalogue_sig (
  reg_id       integer PRIMARY KEY,
  leaves       oid[],
  leaf_sig     text,
  content_sig  text
);
INSERT INTO syncguard.catalogue_sig (reg_id, leaves, leaf_sig, content_sig)
SELECT g.reg_id, g.leaves, g.leaf_sig, g.content_sig FROM syncguard.registration g WHERE g.node_id = syncguard.node_id();

-- A registration with the leaves and signatures its catalogue was built against.
CREATE FUNCTION syncguard._as_built(r syncguard.registration) RETURNS syncguard.registration
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s syncguard.catalogue_sig;
BEGIN
  SELECT * INTO s FROM syncguard.catalogue_sig c WHERE c.reg_id = r.reg_id;
  IF FOUND THEN
    r.leaves := s.leaves;
    r.leaf_sig := s.leaf_sig;
    r.content_sig := s.content_sig;
  END IF;
  RETURN r;
END
$$;

-- Records what a registration's catalogue is built against now (r: as built, with the new values).
CREATE FUNCTION syncguard._set_built(r syncguard.registration) RETURNS void
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO syncguard.catalogue_sig (reg_id, leaves, leaf_sig, content_sig)
  VALUES (r.reg_id, r.leaves, r.leaf_sig, r.content_sig)
  ON CONFLICT (reg_id) DO UPDATE SET leaves = EXCLUDED.leaves, leaf_sig = EXCLUDED.leaf_sig, content_sig = EXCLUDED.content_sig
$$;

-- As in 0018, with the drain's state in drain_state and state_loss_count, and the signatures of
-- registrations no longer registered dropped.
CREATE OR REPLACE FUNCTION syncguard.check_state() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SECURITY DEFINER
AS $$
DECLARE
  v_restored boolean;
  v_regs integer[] := ARRAY(SELECT reg_id FROM syncguard.registration WHERE node_id = syncguard.node_id());
BEGIN
  INSERT INTO syncguard.drain_state DEFAULT VALUES ON CONFLICT DO NOTHING;
  DELETE FROM syncguard.dirty WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.local_write WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.fault WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.catalogue_sig WHERE reg_id <> ALL(v_regs);
  PERFORM syncguard._check_partitions();
  IF EXISTS (SELECT 1 FROM syncguard.sentinel) THEN
    RETURN false;
  END IF;
  INSERT INTO syncguard.sentinel DEFAULT VALUES ON CONFLICT DO NOTHING RETURNING true INTO v_restored;
  IF v_restored THEN   -- only the session that restored the sentinel records the loss
    DELETE FROM syncguard.sweep;
    DELETE FROM syncguard.bucket;
    PERFORM syncguard._install_bounds(g) FROM syncguard.registration g WHERE g.node_id = syncguard.node_id() AND g.scheme = 'range';
    UPDATE syncguard.drain_state SET state_lost_at = now(), full_sweep_at = now();
    PERFORM pg_catalog.setval('syncguard.state_loss_count', (SELECT c.last_value FROM syncguard.state_loss_count c) + 1, true);
  END IF;
  RETURN coalesce(v_restored, false);
END
$$;

-- As in 0006 (SECURITY DEFINER since 0012), with the time in drain_state.
CREATE OR REPLACE FUNCTION syncguard.request_full_sweep() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SECURITY DEFINER
AS $$
DECLARE
  v_n integer;
BEGIN
  INSERT INTO syncguard.drain_state DEFAULT VALUES ON CONFLICT DO NOTHING;
  UPDATE syncguard.drain_state SET full_sweep_at = now();
  UPDATE syncguard.sweep s SET next_bucket = syncguard._sweep_start(r), finished_at = NULL,
         started_at = now(), pass = s.pass + 1
    FROM syncguard.registration r WHERE r.node_id = syncguard.node_id() AND r.reg_id = s.reg_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;

-- As in 0006 (SECURITY DEFINER since 0012), with the time in drain_state.
CREATE OR REPLACE FUNCTION syncguard.maybe_full_sweep(p_interval interval) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SECURITY DEFINER
AS $$
DECLARE
  v_last timestamptz;
BEGIN
  INSERT INTO syncguard.drain_state (full_sweep_at) VALUES (now()) ON CONFLICT DO NOTHING;
  SELECT d.full_sweep_at INTO v_last FROM syncguard.drain_state d FOR UPDATE;
  IF v_last IS NULL THEN
    UPDATE syncguard.drain_state SET full_sweep_at = now();
    RETURN false;
  END IF;
  IF v_last > now() - p_interval THEN
    RETURN false;
  END IF;
  PERFORM syncguard.request_full_sweep();
  RETURN true;
END
$$;

-- As in 0025, with the leaves and signatures as built (catalogue_sig), recorded there.
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
  FOR r IN SELECT b.* FROM syncguard.registration g CROSS JOIN LATERAL syncguard._as_built(g) b
            WHERE g.node_id = syncguard.node_id() AND g.partitioning = 'root'
              AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.relid AND c.relkind = 'p') LOOP
    v_now := syncguard._leaves(r.relid);
    v_sig := syncguard._leaf_sig(r.relid);
    IF v_now = r.leaves AND r.leaf_sig IS NULL THEN
      r.leaf_sig := v_sig;
      PERFORM syncguard._set_built(r);
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
    r.leaves := v_now;
    r.leaf_sig := v_sig;
    PERFORM syncguard._set_built(r);
    DELETE FROM syncguard.dirty WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.bucket WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.sweep WHERE reg_id = r.reg_id;
    v_n := v_n + 1;
  END LOOP;
  -- item 7's check runs here too: check_state() calls this on every drain
  RETURN v_n + syncguard._check_rewrites();
END
$$;

-- As in 0025, with the content signature as built (catalogue_sig), recorded there.
CREATE OR REPLACE FUNCTION syncguard._check_rewrites() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_sig text;
  v_old text;
  v_n integer := 0;
BEGIN
  FOR r IN SELECT b.* FROM syncguard.registration g CROSS JOIN LATERAL syncguard._as_built(g) b
            WHERE g.node_id = syncguard.node_id() AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.relid) LOOP
    v_sig := syncguard._content_sig(r);
    CONTINUE WHEN v_sig = r.content_sig;
    v_old := r.content_sig;
    r.content_sig := v_sig;
    PERFORM syncguard._set_built(r);
    CONTINUE WHEN v_old IS NULL;
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

-- As in 0018, against the leaves the catalogue was built with.
CREATE OR REPLACE FUNCTION syncguard._partition_problems(r syncguard.registration, p_fix text) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_now oid[];
  v_out text[] := '{}';
  v_t record;
BEGIN
  IF r.partitioning IS DISTINCT FROM 'root' THEN
    RETURN v_out;
  END IF;
  r := syncguard._as_built(r);
  v_now := syncguard._leaves(r.relid);
  IF v_now IS NULL THEN
    RETURN ARRAY['the table is no longer partitioned' || p_fix];
  END IF;
  IF v_now IS DISTINCT FROM r.leaves THEN
    v_out := v_out || format('partitions were attached, created, detached or dropped since the last drain (now %s, were %s); the next drain on this node rebuilds the table''s catalogue',
                             cardinality(v_now), cardinality(r.leaves));
  END IF;
  FOR v_t IN
    SELECT l AS leaf, n.name, t.tgenabled
      FROM unnest(v_now) l CROSS JOIN unnest(ARRAY['syncguard_insert', 'syncguard_update', 'syncguard_delete', 'syncguard_truncate']) n(name)
      LEFT JOIN pg_trigger t ON t.tgrelid = l AND t.tgname = n.name
     WHERE (t.tgenabled IS NULL AND l = ANY(r.leaves)) OR t.tgenabled <> 'A'
     ORDER BY 1, 2 LIMIT 3
  LOOP
    v_out := v_out || format('trigger %s on partition %s is %s, so its changes are not tracked; fix: %s, then syncguard drain --full-resweep on this node',
                             v_t.name, v_t.leaf::regclass,
                             CASE WHEN v_t.tgenabled IS NULL THEN 'missing' WHEN v_t.tgenabled = 'D' THEN 'disabled' ELSE 'not ENABLE ALWAYS' END,
                             CASE WHEN v_t.tgenabled IS NULL THEN 're-register the table' ELSE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %s', v_t.leaf::regclass, v_t.name) END);
  END LOOP;
  RETURN v_out;
END
$$;

-- As in 0025, against the signature the catalogue was built with.
CREATE OR REPLACE FUNCTION syncguard._leaf_sig_problem(r syncguard.registration) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 'a partition was detached and attached again since the last drain; the next drain on this node rebuilds the table''s catalogue'
    FROM syncguard._as_built(r) b
   WHERE b.partitioning = 'root' AND b.leaf_sig IS NOT NULL
     AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = b.relid AND c.relkind = 'p')
     AND syncguard._leaves(b.relid) = b.leaves AND syncguard._leaf_sig(b.relid) <> b.leaf_sig
$$;

-- As in 0025, against the signature the catalogue was built with.
CREATE OR REPLACE FUNCTION syncguard._rewrite_problem(r syncguard.registration) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT 'rows may have been rewritten without triggers since the last drain (ALTER COLUMN ... TYPE ... USING on a hashed column, or ALTER TYPE ... RENAME VALUE of an enum it holds); the next drain on this node rebuilds the table''s catalogue'
    FROM syncguard._as_built(r) b
   WHERE b.content_sig IS NOT NULL AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = b.relid)
     AND syncguard._content_sig(b) <> b.content_sig
$$;

-- As in 0025, with the drain's state from drain_state and state_loss_count, and the FOR ALL
-- TABLES publications of this database (whose subscriptions get syncguard's logged tables: only
-- install, register and unregister write them, after checking the subscription's owner).
CREATE OR REPLACE FUNCTION syncguard.status() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
SECURITY DEFINER
AS $$
  SELECT jsonb_build_object(
    'nodeId', syncguard.node_id(),
    'stateIntact', EXISTS (SELECT 1 FROM syncguard.sentinel),
    'stateLostAt', d.state_lost_at,
    'stateLostCount', (SELECT c.last_value FROM syncguard.state_loss_count c),
    'lastFullSweepAt', d.full_sweep_at,
    'allTablesPublications', (SELECT coalesce(jsonb_agg(p.pubname ORDER BY p.pubname), '[]') FROM pg_publication p WHERE p.puballtables),
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
  FROM (SELECT 1) one LEFT JOIN syncguard.drain_state d ON true
$$;

-- The rows a probe of these buckets reads, counted from the table up to one more than the cap
-- (the caller compares with the cap); the predicates are _compute_sql's (0018), the hash omitted.
-- A hash-bucketed table is read whole, whatever the buckets. Settings pinned as for the compute:
-- range bounds are cast back under them, and row-level security makes it fail, not undercount.
CREATE OR REPLACE FUNCTION syncguard._probe_rows(r syncguard.registration, p_buckets bigint[]) RETURNS bigint
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET client_encoding = 'UTF8' SET max_parallel_workers_per_gather = 0
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v_limit bigint := (syncguard._probe_caps()->>'maxRows')::bigint + 1;
  v_src  text := syncguard._rel(r.schema_name, r.table_name) || ' sg_t';
  v_key  text := syncguard._key_row(r.key_columns, 'sg_t');
  v_filt text := syncguard._filter(r);
  v_n    integer := r.bucket_count - 1;   -- range: number of bounds
  v_n_rows bigint;
BEGIN
  IF r.scheme = 'hash' OR (r.scheme = 'range' AND v_n = 0) THEN
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s WHERE true%s LIMIT $1) sg_x', v_src, v_filt)
      INTO v_n_rows USING v_limit;
  ELSIF r.scheme = 'int' THEN
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM unnest($1::bigint[]) sg_cb(sg_b) CROSS JOIN LATERAL ('
                   'SELECT 1 FROM %s WHERE sg_t.%I BETWEEN syncguard.int_lo(sg_cb.sg_b, %s) AND syncguard.int_hi(sg_cb.sg_b, %s)%s'
                   ') sg_s LIMIT $2) sg_x',
                   v_src, r.key_columns[1], r.bucket_width, r.bucket_width, v_filt)
      INTO v_n_rows USING p_buckets, v_limit;
  ELSE
    EXECUTE format(
      'SELECT count(*) FROM (SELECT 1 FROM unnest($1::bigint[]) sg_cb(sg_b) CROSS JOIN (SELECT %11$s AS sg_arr) sg_ba CROSS JOIN LATERAL ('
      'SELECT 1 FROM %2$s WHERE sg_cb.sg_b = 0 AND %3$s < %4$s%7$s'
      ' UNION ALL SELECT 1 FROM %2$s WHERE sg_cb.sg_b BETWEEN 1 AND %8$s AND %3$s >= %5$s AND %3$s < %6$s%7$s'
      ' UNION ALL SELECT 1 FROM %2$s WHERE sg_cb.sg_b = %9$s AND %3$s >= %10$s%7$s'
      ') sg_s LIMIT $2) sg_x',
      NULL, v_src, v_key,
      syncguard._bound_row(r.key_columns, 'sg_ba.sg_arr[1]'),
      syncguard._bound_row(r.key_columns, 'sg_ba.sg_arr[sg_cb.sg_b]'),
      syncguard._bound_row(r.key_columns, 'sg_ba.sg_arr[sg_cb.sg_b + 1]'),
      v_filt, v_n - 1, v_n,
      syncguard._bound_row(r.key_columns, format('sg_ba.sg_arr[%s]', v_n)),
      syncguard._bounds_literal(r))
      INTO v_n_rows USING p_buckets, v_limit;
  END IF;
  RETURN v_n_rows;
END
$$;
