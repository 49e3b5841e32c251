-- syncguard node schema 0010: a catalogue that cannot be fooled or stalled.
--   - Every recompute of a bucket raises its generation. Verification judges "the publisher bucket
--     did not change between the rounds" by the generation, not by the value: a row that flips
--     A -> B -> A while another drainer recomputes it changes the generation, not the value.
--   - A full re-sweep of integer buckets recomputes every catalogue bucket in the span it walks,
--     also those that became empty (the walk itself only finds key ranges that still hold rows).
--   - User tables are read with ONLY: a registered table never silently includes child tables.
--   - The drain joins marks to this node's registrations before it limits, deletes orphans (at
--     check_state), skips registrations with a fault, and records a failing recompute as a fault of
--     that registration instead of failing the whole batch: one broken table never stops the
--     others. Transient errors (lock or statement timeouts, deadlocks) still end the batch.

ALTER TABLE syncguard.bucket ADD COLUMN generation bigint NOT NULL DEFAULT 0;

CREATE OR REPLACE FUNCTION syncguard._compute_sql(p_reg syncguard.registration) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_src  text := format('ONLY %I.%I sg_t', p_reg.schema_name, p_reg.table_name);
  v_hash text := syncguard._hash_expr(p_reg.relid, p_reg.columns, 'sg_t');
  v_key  text := syncguard._key_row(p_reg.key_columns, 'sg_t');
  v_filt text := syncguard._filter(p_reg);
  v_n    integer := p_reg.bucket_count - 1;   -- range: number of bounds
  v_rows text;
BEGIN
  CASE p_reg.scheme
    WHEN 'int' THEN
      v_rows := format('SELECT %s AS sg_h FROM %s WHERE sg_t.%I BETWEEN syncguard.int_lo(sg_cb.sg_b, %s) AND syncguard.int_hi(sg_cb.sg_b, %s)%s',
                       v_hash, v_src, p_reg.key_columns[1], p_reg.bucket_width, p_reg.bucket_width, v_filt);
    WHEN 'range' THEN
      IF v_n = 0 THEN
        v_rows := format('SELECT %s AS sg_h FROM %s WHERE sg_cb.sg_b = 0%s', v_hash, v_src, v_filt);
      ELSE
        v_rows := format(
          'SELECT %1$s AS sg_h FROM %2$s WHERE sg_cb.sg_b = 0 AND %3$s < %4$s%7$s'
          ' UNION ALL SELECT %1$s FROM %2$s WHERE sg_cb.sg_b BETWEEN 1 AND %8$s AND %3$s >= %5$s AND %3$s < %6$s%7$s'
          ' UNION ALL SELECT %1$s FROM %2$s WHERE sg_cb.sg_b = %9$s AND %3$s >= %10$s%7$s',
          v_hash, v_src, v_key,
          syncguard._bound_row(p_reg.key_columns, 'sg_ba.sg_arr[1]'),
          syncguard._bound_row(p_reg.key_columns, 'sg_ba.sg_arr[sg_cb.sg_b]'),
          syncguard._bound_row(p_reg.key_columns, 'sg_ba.sg_arr[sg_cb.sg_b + 1]'),
          v_filt, v_n - 1, v_n,
          syncguard._bound_row(p_reg.key_columns, format('sg_ba.sg_arr[%s]', v_n)));
      END IF;
      RETURN format(
        'SELECT sg_cb.sg_b, count(sg_s.sg_h), coalesce(sum(sg_s.sg_h), 0) '
        'FROM unnest($1::bigint[]) sg_cb(sg_b) CROSS JOIN (SELECT %s AS sg_arr) sg_ba '
        'LEFT JOIN LATERAL (%s) sg_s ON true GROUP BY sg_cb.sg_b',
        syncguard._bounds_literal(p_reg), v_rows);
    WHEN 'hash' THEN
      RETURN format(
        'SELECT sg_cb.sg_b, count(sg_s.sg_h), coalesce(sum(sg_s.sg_h), 0) '
        'FROM unnest($1::bigint[]) sg_cb(sg_b) LEFT JOIN ('
        'SELECT %s AS sg_b, %s AS sg_h FROM %s WHERE %s = ANY($1::bigint[])%s'
        ') sg_s ON sg_s.sg_b = sg_cb.sg_b GROUP BY sg_cb.sg_b',
        syncguard._bucket_expr(p_reg, 'sg_t'), v_hash, v_src, syncguard._bucket_expr(p_reg, 'sg_t'), v_filt);
  END CASE;
  RETURN format(
    'SELECT sg_cb.sg_b, count(sg_s.sg_h), coalesce(sum(sg_s.sg_h), 0) '
    'FROM unnest($1::bigint[]) sg_cb(sg_b) LEFT JOIN LATERAL (%s) sg_s ON true GROUP BY sg_cb.sg_b',
    v_rows);
END
$$;

CREATE OR REPLACE FUNCTION syncguard.compute_all(p_reg integer)
RETURNS TABLE (bucket bigint, row_count bigint, hash_sum numeric)
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT sg_b, count(*), sum(sg_h) FROM (SELECT %s AS sg_b, %s AS sg_h FROM ONLY %I.%I sg_t WHERE true%s) sg_s GROUP BY sg_b',
    syncguard._bucket_expr(r, 'sg_t'), syncguard._hash_expr(r.relid, r.columns, 'sg_t'),
    r.schema_name, r.table_name, syncguard._filter(r));
END
$$;

CREATE OR REPLACE FUNCTION syncguard.canonical_rows(p_reg integer, p_buckets bigint[])
RETURNS TABLE (bucket bigint, key_text text, canonical text, row_hash bigint)
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  v_text text := replace(syncguard._hash_expr(r.relid, r.columns, 'sg_t'), 'syncguard.row_hash(', '(');
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT sg_b, sg_k, sg_c, syncguard.row_hash(sg_c) FROM ('
    'SELECT %s AS sg_b, %s::text AS sg_k, %s AS sg_c FROM ONLY %I.%I sg_t WHERE true%s) sg_s '
    'WHERE sg_b = ANY($1) ORDER BY sg_b, sg_k',
    syncguard._bucket_expr(r, 'sg_t'), syncguard._key_row(r.key_columns, 'sg_t'), v_text,
    r.schema_name, r.table_name, syncguard._filter(r))
  USING p_buckets;
END
$$;

-- As in 0005, and every recompute raises the bucket's generation.
CREATE OR REPLACE FUNCTION syncguard.recompute(p_reg integer, p_buckets bigint[])
RETURNS TABLE (bucket bigint, row_count bigint)
LANGUAGE plpgsql VOLATILE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  v_claimed bigint[];
BEGIN
  INSERT INTO syncguard.bucket AS b (reg_id, bucket)
  SELECT p_reg, u.b FROM unnest(p_buckets) u(b) ORDER BY u.b ON CONFLICT DO NOTHING;

  SELECT array_agg(c.bucket) INTO v_claimed
    FROM (SELECT b.bucket FROM syncguard.bucket b
           WHERE b.reg_id = p_reg AND b.bucket = ANY(p_buckets)
           ORDER BY b.bucket FOR UPDATE SKIP LOCKED) c;
  IF v_claimed IS NULL THEN
    RETURN;
  END IF;

  DELETE FROM syncguard.dirty d WHERE d.reg_id = p_reg AND d.bucket = ANY(v_claimed);

  RETURN QUERY EXECUTE format(
    'WITH sg_u AS (UPDATE syncguard.bucket b SET row_count = c.n, hash_sum = c.s, computed_at = pg_catalog.clock_timestamp(), '
    'generation = b.generation + 1 '
    'FROM (%s) c(b, n, s) WHERE b.reg_id = %s AND b.bucket = c.b RETURNING b.bucket, b.row_count) '
    'SELECT * FROM sg_u', syncguard._compute_sql(r), p_reg)
  USING v_claimed;
END
$$;

-- As in 0005, with ONLY, and integer sweeps also recompute the catalogue's buckets in the span
-- they walked (a bucket whose rows were all deleted behind the triggers' back holds no key the
-- walk could find).
CREATE OR REPLACE FUNCTION syncguard.sweep_step(p_reg integer, p_max_buckets integer DEFAULT 100)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  s syncguard.sweep;
  v_buckets bigint[];
  v_next bigint;
  v_done integer;
  v_rows bigint;
BEGIN
  IF p_max_buckets < 1 THEN
    RAISE EXCEPTION 'p_max_buckets must be at least 1, got %', p_max_buckets USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO syncguard.sweep (reg_id, next_bucket) VALUES (p_reg, syncguard._sweep_start(r)) ON CONFLICT DO NOTHING;
  SELECT * INTO s FROM syncguard.sweep WHERE reg_id = p_reg FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('busy', true, 'done', false, 'recomputed', 0, 'rows', 0);
  END IF;
  IF s.finished_at IS NOT NULL THEN
    RETURN jsonb_build_object('done', true, 'recomputed', 0, 'rows', 0, 'nextBucket', s.next_bucket);
  END IF;

  IF r.scheme = 'int' THEN
    EXECUTE format(
      'WITH RECURSIVE sg_w(b) AS ('
      ' SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s) FROM ONLY %3$I.%4$I WHERE %1$I >= syncguard.int_lo($1, %2$s)'
      ' UNION ALL'
      ' SELECT (SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s) FROM ONLY %3$I.%4$I WHERE %1$I > syncguard.int_hi(sg_w.b, %2$s))'
      ' FROM sg_w WHERE sg_w.b IS NOT NULL AND sg_w.b < syncguard.int_bucket(9223372036854775807, %2$s))'
      ' SELECT array_agg(b) FROM (SELECT b FROM sg_w WHERE b IS NOT NULL LIMIT $2) sg_l',
      r.key_columns[1], r.bucket_width, r.schema_name, r.table_name)
    INTO v_buckets USING s.next_bucket, p_max_buckets;
    v_next := CASE WHEN v_buckets IS NULL THEN NULL ELSE v_buckets[cardinality(v_buckets)] + 1 END;
    IF cardinality(v_buckets) < p_max_buckets THEN
      v_next := NULL;   -- the walk reached the end of the table
    END IF;
    SELECT array_agg(u.b ORDER BY u.b) INTO v_buckets FROM (
      SELECT unnest(coalesce(v_buckets, '{}')) AS b
      UNION
      SELECT b.bucket FROM syncguard.bucket b
       WHERE b.reg_id = p_reg AND b.bucket >= s.next_bucket AND (v_next IS NULL OR b.bucket < v_next)) u;
  ELSE
    SELECT array_agg(g) INTO v_buckets
      FROM generate_series(s.next_bucket,
             CASE WHEN r.scheme = 'hash' THEN r.bucket_count - 1
                  ELSE least(s.next_bucket + p_max_buckets, r.bucket_count) - 1 END) g;
    v_next := s.next_bucket + coalesce(cardinality(v_buckets), 0);
    IF v_next >= r.bucket_count THEN
      v_next := NULL;
    END IF;
  END IF;

  SELECT count(*), coalesce(sum(x.row_count), 0) INTO v_done, v_rows FROM syncguard.recompute(p_reg, coalesce(v_buckets, '{}')) x;
  UPDATE syncguard.sweep SET next_bucket = coalesce(v_next, next_bucket),
         finished_at = CASE WHEN v_next IS NULL THEN clock_timestamp() END,
         first_finished_at = coalesce(first_finished_at, CASE WHEN v_next IS NULL THEN clock_timestamp() END)
   WHERE reg_id = p_reg;
  RETURN jsonb_build_object('done', v_next IS NULL, 'recomputed', v_done, 'rows', v_rows, 'nextBucket', v_next);
END
$$;

-- Records that recomputing a registration failed; only the drain (as the owner) calls it.
CREATE FUNCTION syncguard._drain_fault(p_reg integer, p_state text, p_message text) RETURNS void
LANGUAGE sql SET search_path = pg_catalog, pg_temp
AS $$ INSERT INTO syncguard.fault (reg_id, kind, sqlstate, message) VALUES (p_reg, 'drain', p_state, left(p_message, 500))
      ON CONFLICT DO NOTHING $$;

-- Errors that say nothing about the registration (resources, shutdown, connection, rollbacks,
-- lock timeouts, internal errors): the batch ends and a later drain tries again. (A statement
-- timeout is query_canceled, which WHEN OTHERS never catches.)
CREATE FUNCTION syncguard._transient(p_state text) RETURNS boolean
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT left(p_state, 2) IN ('08', '40', '53', '55', '57', '58', 'XX') $$;

-- Registrations the drain leaves alone: a fault was recorded, so their catalogue is not trusted
-- until the table is registered again.
CREATE FUNCTION syncguard._healthy_regs() RETURNS SETOF integer
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT r.reg_id FROM syncguard.registration r
       WHERE r.node_id = syncguard.node_id() AND NOT EXISTS (SELECT 1 FROM syncguard.fault f WHERE f.reg_id = r.reg_id) $$;

CREATE OR REPLACE FUNCTION syncguard.drain_batch(p_max_buckets integer) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_regs integer[];
  v_cands bigint[];
  v_reg integer;
  v_buckets bigint[];
  v_done integer := 0;
  v_rows bigint := 0;
  v_failed integer := 0;
BEGIN
  IF p_max_buckets < 1 THEN
    RAISE EXCEPTION 'p_max_buckets must be at least 1, got %', p_max_buckets USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT array_agg(c.reg_id ORDER BY c.reg_id, c.bucket), array_agg(c.bucket ORDER BY c.reg_id, c.bucket)
    INTO v_regs, v_cands
    FROM (SELECT DISTINCT d.reg_id, d.bucket
            FROM (SELECT dd.reg_id, dd.bucket FROM syncguard.dirty dd
                   WHERE dd.reg_id IN (SELECT syncguard._healthy_regs())
                   ORDER BY dd.marked_at LIMIT p_max_buckets * 4) d) c;
  IF v_regs IS NULL THEN
    RETURN jsonb_build_object('buckets', 0, 'rows', 0);
  END IF;

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
    BEGIN
      SELECT v_done + count(*), v_rows + coalesce(sum(x.row_count), 0) INTO v_done, v_rows
        FROM syncguard.recompute(v_reg, v_buckets) x;
    EXCEPTION WHEN OTHERS THEN
      IF syncguard._transient(SQLSTATE) THEN
        RAISE;
      END IF;
      PERFORM syncguard._drain_fault(v_reg, SQLSTATE, SQLERRM);
      v_failed := v_failed + 1;
    END;
  END LOOP;
  RETURN jsonb_build_object('buckets', v_done, 'rows', v_rows, 'failed', v_failed);
END
$$;

CREATE OR REPLACE FUNCTION syncguard.sweep_batch(p_max_buckets integer) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_step jsonb;
BEGIN
  FOR r IN
    SELECT g.* FROM syncguard.registration g LEFT JOIN syncguard.sweep s ON s.reg_id = g.reg_id
     WHERE g.reg_id IN (SELECT syncguard._healthy_regs()) AND (s.reg_id IS NULL OR s.finished_at IS NULL) ORDER BY g.reg_id
  LOOP
    BEGIN
      v_step := syncguard.sweep_step(r.reg_id, p_max_buckets);
    EXCEPTION WHEN OTHERS THEN
      IF syncguard._transient(SQLSTATE) THEN
        RAISE;
      END IF;
      PERFORM syncguard._drain_fault(r.reg_id, SQLSTATE, SQLERRM);
      CONTINUE;
    END;
    CONTINUE WHEN (v_step->>'busy')::boolean;   -- another drainer is sweeping this table
    RETURN v_step || jsonb_build_object('table', format('%s.%s', r.schema_name, r.table_name), 'buckets', v_step->'recomputed');
  END LOOP;
  RETURN NULL;
END
$$;

-- As in 0006, and state of registrations that no longer exist on this node (orphans) is deleted,
-- and the range bounds tables (unlogged, so emptied with the rest) are filled again.
CREATE OR REPLACE FUNCTION syncguard.check_state() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_restored boolean;
  v_regs integer[] := ARRAY(SELECT reg_id FROM syncguard.registration WHERE node_id = syncguard.node_id());
BEGIN
  INSERT INTO syncguard.node_state DEFAULT VALUES ON CONFLICT DO NOTHING;
  DELETE FROM syncguard.dirty WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.local_write WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.fault WHERE reg_id <> ALL(v_regs);
  IF EXISTS (SELECT 1 FROM syncguard.sentinel) THEN
    RETURN false;
  END IF;
  INSERT INTO syncguard.sentinel DEFAULT VALUES ON CONFLICT DO NOTHING RETURNING true INTO v_restored;
  IF v_restored THEN   -- only the session that restored the sentinel records the loss
    DELETE FROM syncguard.sweep;
    DELETE FROM syncguard.bucket;
    PERFORM syncguard._install_bounds(g) FROM syncguard.registration g WHERE g.node_id = syncguard.node_id() AND g.scheme = 'range';
    UPDATE syncguard.node_state SET state_lost_at = now(), state_lost_count = state_lost_count + 1, full_sweep_at = now()
     WHERE node_id = syncguard.node_id();
  END IF;
  RETURN coalesce(v_restored, false);
END
$$;

-- As in 0006, and: a table with a recorded fault says so (`fault`), and the node's dirty count and
-- oldest mark leave out registrations the drain skips (their marks wait for the table to be
-- registered again), so a drain that did all it could reports itself caught up.
CREATE OR REPLACE FUNCTION syncguard.status() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
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
        'lastSweepFinishedAt', (SELECT s.finished_at FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'fault', (SELECT string_agg(format('%s: %s', f.kind, f.message), '; ' ORDER BY f.kind) FROM syncguard.fault f WHERE f.reg_id = r.reg_id))
        ORDER BY r.schema_name, r.table_name) FROM syncguard.registration r WHERE r.node_id = syncguard.node_id()), '[]'::jsonb))
  FROM (SELECT 1) one LEFT JOIN syncguard.node_state n ON n.node_id = syncguard.node_id()
$$;


-- The remaining readers of user tables, as in 0004, 0006 and 0008, with ONLY.
CREATE OR REPLACE FUNCTION syncguard.sample_bounds(p_schema text, p_table text, p_keys name[], p_bucket_size bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_keys text := (SELECT string_agg(quote_ident(k), ', ' ORDER BY o) FROM unnest(p_keys) WITH ORDINALITY u(k, o));
  v_texts text := (SELECT string_agg(format('format(''%%s'', %I)', k), ', ' ORDER BY o) FROM unnest(p_keys) WITH ORDINALITY u(k, o));
  v_bounds jsonb;
BEGIN
  IF p_bucket_size < 1 THEN
    RAISE EXCEPTION 'bucket size must be at least 1, got %', p_bucket_size USING ERRCODE = 'invalid_parameter_value';
  END IF;
  EXECUTE format(
    'SELECT coalesce(jsonb_agg(jsonb_build_array(%s) ORDER BY sg_rn), ''[]'') FROM ('
    'SELECT %s, row_number() OVER (ORDER BY %s) AS sg_rn FROM ONLY %I.%I) sg_s '
    'WHERE sg_rn > 1 AND (sg_rn - 1) %% $1 = 0',
    v_texts, v_keys, v_keys, p_schema, p_table)
  INTO v_bounds USING p_bucket_size;
  RETURN v_bounds;
END
$$;

CREATE OR REPLACE FUNCTION syncguard.row_count(p_schema text, p_table text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM ONLY %I.%I', p_schema, p_table) INTO v_n;
  RETURN v_n;
END
$$;

CREATE OR REPLACE FUNCTION syncguard._sweep_progress(r syncguard.registration) RETURNS numeric
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
  EXECUTE format('SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s), syncguard.int_bucket(max(%1$I)::bigint, %2$s) FROM ONLY %3$I.%4$I',
                 r.key_columns[1], r.bucket_width, r.schema_name, r.table_name) INTO v_first, v_last;
  IF v_first IS NULL OR v_last <= v_first THEN
    RETURN 0;
  END IF;
  RETURN round(GREATEST(LEAST((s.next_bucket - v_first)::numeric / (v_last - v_first + 1), 1), 0), 4);
END
$$;

CREATE OR REPLACE FUNCTION syncguard.parity_info() RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_out jsonb := '[]';
  v_max text;
  v_seqs jsonb;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration WHERE node_id = syncguard.node_id() ORDER BY schema_name, table_name LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN
      v_out := v_out || jsonb_build_object('table', format('%s.%s', r.schema_name, r.table_name), 'exists', false);
      CONTINUE;
    END IF;
    v_max := NULL;
    IF r.scheme = 'int' THEN
      EXECUTE format('SELECT max(%I)::text FROM ONLY %I.%I', r.key_columns[1], r.schema_name, r.table_name) INTO v_max;
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object('column', a.attname, 'sequence', s.schemaname || '.' || s.sequencename,
             'lastValue', s.last_value::text)), '[]')
      INTO v_seqs
      FROM pg_attribute a
      JOIN pg_sequences s ON format('%I.%I', s.schemaname, s.sequencename) = pg_get_serial_sequence(format('%I.%I', r.schema_name, r.table_name), a.attname)
     WHERE a.attrelid = r.relid AND a.attnum > 0 AND NOT a.attisdropped;
    v_out := v_out || jsonb_build_object(
      'table', format('%s.%s', r.schema_name, r.table_name),
      'exists', true,
      'role', r.node_role,
      'hashedColumns', to_jsonb(r.columns),
      'columns', (syncguard.describe_table(r.schema_name, r.table_name, '{}'))->'columns',
      'published', CASE WHEN r.node_role = 'publisher' AND cardinality(r.publications) > 0
                        THEN (syncguard._publication_info(r.relid, r.publications)->>'published')::boolean END,
      'keyColumn', CASE WHEN r.scheme = 'int' THEN r.key_columns[1] END,
      'maxKey', v_max,
      'sequences', v_seqs);
  END LOOP;
  RETURN v_out;
END
$$;
