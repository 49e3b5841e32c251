-- syncguard node schema 0006: draining in batches, sweep progress, lost-state detection and
-- periodic full re-sweeps.

-- Oldest marks first: the drain takes its candidates from the front of this index.
CREATE INDEX dirty_marked_at ON syncguard.dirty (marked_at);

-- Durable per-node drain state (logged and keyed by node, like the configuration tables).
CREATE TABLE syncguard.node_state (
  node_id            uuid PRIMARY KEY DEFAULT syncguard.node_id(),
  full_sweep_at      timestamptz,          -- start of the latest full (re-)sweep of every table
  state_lost_at      timestamptz,          -- last time the unlogged state was found emptied
  state_lost_count   integer NOT NULL DEFAULT 0
);

-- Notices that the unlogged tables were emptied (crash recovery, promotion of a standby): the
-- sentinel row is gone. Then every catalogue value and mark is gone too, and the sweep starts
-- again from the beginning by itself (no sweep row = sweep from the start); this records the loss
-- so that status and verification can say why coverage dropped. Returns true when it found a loss.
CREATE FUNCTION syncguard.check_state() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_restored boolean;
BEGIN
  INSERT INTO syncguard.node_state DEFAULT VALUES ON CONFLICT DO NOTHING;
  IF EXISTS (SELECT 1 FROM syncguard.sentinel) THEN
    RETURN false;
  END IF;
  INSERT INTO syncguard.sentinel DEFAULT VALUES ON CONFLICT DO NOTHING RETURNING true INTO v_restored;
  IF v_restored THEN   -- only the session that restored the sentinel records the loss
    DELETE FROM syncguard.sweep;
    DELETE FROM syncguard.bucket;
    UPDATE syncguard.node_state SET state_lost_at = now(), state_lost_count = state_lost_count + 1, full_sweep_at = now()
     WHERE node_id = syncguard.node_id();
  END IF;
  RETURN coalesce(v_restored, false);
END
$$;

-- Starts a new sweep pass over every registered table now. Existing catalogue values stay valid
-- until their bucket is recomputed.
CREATE FUNCTION syncguard.request_full_sweep() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
BEGIN
  INSERT INTO syncguard.node_state DEFAULT VALUES ON CONFLICT DO NOTHING;
  UPDATE syncguard.node_state SET full_sweep_at = now() WHERE node_id = syncguard.node_id();
  UPDATE syncguard.sweep s SET next_bucket = syncguard._sweep_start(r), finished_at = NULL,
         started_at = now(), pass = s.pass + 1
    FROM syncguard.registration r WHERE r.node_id = syncguard.node_id() AND r.reg_id = s.reg_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;

-- Starts a full re-sweep when the last one started more than p_interval ago (the first call only
-- starts the clock). Returns true when it started one.
CREATE FUNCTION syncguard.maybe_full_sweep(p_interval interval) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_last timestamptz;
BEGIN
  INSERT INTO syncguard.node_state (full_sweep_at) VALUES (now()) ON CONFLICT DO NOTHING;
  SELECT full_sweep_at INTO v_last FROM syncguard.node_state WHERE node_id = syncguard.node_id() FOR UPDATE;
  IF v_last IS NULL THEN
    UPDATE syncguard.node_state SET full_sweep_at = now() WHERE node_id = syncguard.node_id();
    RETURN false;
  END IF;
  IF v_last > now() - p_interval THEN
    RETURN false;
  END IF;
  PERFORM syncguard.request_full_sweep();
  RETURN true;
END
$$;

-- One drain batch: claims up to p_max_buckets dirty buckets, oldest marks first, skipping buckets
-- another drainer holds, and recomputes them. Only marks of committed transactions are visible,
-- so a bucket whose writer is still in flight is not picked until that writer commits.
-- Returns {buckets, rows}.
CREATE FUNCTION syncguard.drain_batch(p_max_buckets integer) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_regs integer[];
  v_cands bigint[];
  v_reg integer;
  v_buckets bigint[];
  v_done integer := 0;
  v_rows bigint := 0;
BEGIN
  IF p_max_buckets < 1 THEN
    RAISE EXCEPTION 'p_max_buckets must be at least 1, got %', p_max_buckets USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT array_agg(c.reg_id ORDER BY c.reg_id, c.bucket), array_agg(c.bucket ORDER BY c.reg_id, c.bucket)
    INTO v_regs, v_cands
    FROM (SELECT DISTINCT d.reg_id, d.bucket
            FROM (SELECT dd.reg_id, dd.bucket FROM syncguard.dirty dd ORDER BY dd.marked_at LIMIT p_max_buckets * 4) d
            JOIN syncguard.registrations r ON r.reg_id = d.reg_id) c;
  IF v_regs IS NULL THEN
    RETURN jsonb_build_object('buckets', 0, 'rows', 0);
  END IF;

  -- In key order, so that two drainers adding rows for overlapping sets cannot deadlock.
  INSERT INTO syncguard.bucket (reg_id, bucket)
  SELECT u.reg_id, u.bucket FROM unnest(v_regs, v_cands) u(reg_id, bucket) ORDER BY 1, 2 ON CONFLICT DO NOTHING;

  FOR v_reg, v_buckets IN
    SELECT l.reg_id, array_agg(l.bucket ORDER BY l.bucket)
      FROM (SELECT b.reg_id, b.bucket FROM syncguard.bucket b
             WHERE (b.reg_id, b.bucket) IN (SELECT u.reg_id, u.bucket FROM unnest(v_regs, v_cands) u(reg_id, bucket))
             ORDER BY b.reg_id, b.bucket LIMIT p_max_buckets
             FOR UPDATE SKIP LOCKED) l
     GROUP BY l.reg_id
  LOOP
    SELECT v_done + count(*), v_rows + coalesce(sum(x.row_count), 0) INTO v_done, v_rows
      FROM syncguard.recompute(v_reg, v_buckets) x;
  END LOOP;
  RETURN jsonb_build_object('buckets', v_done, 'rows', v_rows);
END
$$;

-- One sweep batch: advances the sweep of the first table whose current pass is unfinished.
-- Returns {table, buckets, rows, done} or NULL when every table is swept.
CREATE FUNCTION syncguard.sweep_batch(p_max_buckets integer) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_step jsonb;
BEGIN
  FOR r IN
    SELECT g.* FROM syncguard.registration g LEFT JOIN syncguard.sweep s ON s.reg_id = g.reg_id
     WHERE g.node_id = syncguard.node_id() AND (s.reg_id IS NULL OR s.finished_at IS NULL) ORDER BY g.reg_id
  LOOP
    v_step := syncguard.sweep_step(r.reg_id, p_max_buckets);
    CONTINUE WHEN (v_step->>'busy')::boolean;   -- another drainer is sweeping this table
    RETURN v_step || jsonb_build_object('table', format('%s.%s', r.schema_name, r.table_name), 'buckets', v_step->'recomputed');
  END LOOP;
  RETURN NULL;
END
$$;

-- How far the current sweep pass of a registration is, from 0 to 1.
CREATE FUNCTION syncguard._sweep_progress(r syncguard.registration) RETURNS numeric
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  s syncguard.sweep;
  v_first bigint;
  v_last bigint;
BEGIN
  SELECT * INTO s FROM syncguard.sweep WHERE reg_id = r.reg_id;
  IF NOT FOUND THEN
    RETURN 0;
  ELSIF s.finished_at IS NOT NULL THEN
    RETURN 1;
  ELSIF r.scheme <> 'int' THEN
    RETURN round(s.next_bucket::numeric / r.bucket_count, 4);
  END IF;
  EXECUTE format('SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s), syncguard.int_bucket(max(%1$I)::bigint, %2$s) FROM %3$I.%4$I',
                 r.key_columns[1], r.bucket_width, r.schema_name, r.table_name) INTO v_first, v_last;
  IF v_first IS NULL OR v_last <= v_first THEN
    RETURN 0;
  END IF;
  RETURN round(GREATEST(LEAST((s.next_bucket - v_first)::numeric / (v_last - v_first + 1), 1), 0), 4);
END
$$;

-- The state of this node's drain, per table and in total, as jsonb (for status and drain summaries).
CREATE FUNCTION syncguard.status() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
    'nodeId', syncguard.node_id(),
    'stateIntact', EXISTS (SELECT 1 FROM syncguard.sentinel),
    'stateLostAt', n.state_lost_at,
    'stateLostCount', coalesce(n.state_lost_count, 0),
    'lastFullSweepAt', n.full_sweep_at,
    'remainingDirty', (SELECT count(*) FROM (SELECT DISTINCT d.reg_id, d.bucket FROM syncguard.dirty d
                         JOIN syncguard.registrations r ON r.reg_id = d.reg_id) x),
    'oldestDirtyAgeMs', (SELECT floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint
                           FROM syncguard.dirty d JOIN syncguard.registrations r ON r.reg_id = d.reg_id),
    'tables', coalesce((SELECT jsonb_agg(jsonb_build_object(
        'table', format('%s.%s', r.schema_name, r.table_name),
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
        'lastSweepFinishedAt', (SELECT s.finished_at FROM syncguard.sweep s WHERE s.reg_id = r.reg_id))
        ORDER BY r.schema_name, r.table_name) FROM syncguard.registration r WHERE r.node_id = syncguard.node_id()), '[]'::jsonb))
  FROM (SELECT 1) one LEFT JOIN syncguard.node_state n ON n.node_id = syncguard.node_id()
$$;
