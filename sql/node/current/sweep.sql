-- The sweep: computes every bucket of a table from scratch (after registration, lost state, or the
-- periodic full re-sweep), in lanes that parallel workers share.

-- One sweep batch: advances the sweep of the first table whose current pass is unfinished.
-- Returns {table, buckets, rows, done} or NULL when every table is swept.
CREATE OR REPLACE FUNCTION syncguard.sweep_batch(p_max_buckets integer)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard.registration;
  v_step jsonb;
  v_busy boolean := false;
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
    IF (v_step->>'busy')::boolean THEN   -- other drainers hold every free lane of this table
      v_busy := true;
      CONTINUE;
    END IF;
    RETURN v_step || jsonb_build_object('table', syncguard._table_text(r.schema_name, r.table_name), 'buckets', v_step->'recomputed');
  END LOOP;
  IF v_busy THEN
    RETURN jsonb_build_object('busy', true, 'buckets', 0, 'rows', 0);
  END IF;
  RETURN NULL;
END $function$;

-- Advances the sweep of one table by up to p_max_buckets non-empty buckets of one free lane (a
-- hash registration does all its buckets in one step, since each step reads the whole table).
-- Returns {done, recomputed, rows, nextBucket}, or {busy} when every unfinished lane of this table
-- is being swept by another session right now.
CREATE OR REPLACE FUNCTION syncguard.sweep_step(p_reg integer, p_max_buckets integer DEFAULT 100)
RETURNS jsonb LANGUAGE plpgsql
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' AS $function$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  s syncguard.sweep;
  l syncguard.sweep_lane;
  v_buckets bigint[];
  v_next bigint;
  v_done integer;
  v_rows bigint;
BEGIN
  IF p_max_buckets < 1 THEN
    RAISE EXCEPTION 'p_max_buckets must be at least 1, got %', p_max_buckets USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO syncguard.sweep (reg_id, next_bucket) VALUES (p_reg, syncguard._sweep_start(r)) ON CONFLICT DO NOTHING;
  SELECT * INTO s FROM syncguard.sweep WHERE reg_id = p_reg;
  IF s.finished_at IS NOT NULL THEN
    RETURN jsonb_build_object('done', true, 'recomputed', 0, 'rows', 0, 'nextBucket', s.next_bucket);
  END IF;

  IF NOT EXISTS (SELECT 1 FROM syncguard.sweep_lane WHERE reg_id = p_reg AND pass = s.pass) THEN
    SELECT * INTO s FROM syncguard.sweep WHERE reg_id = p_reg FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      RETURN jsonb_build_object('busy', true, 'done', false, 'recomputed', 0, 'rows', 0);
    END IF;
    IF s.finished_at IS NOT NULL THEN
      RETURN jsonb_build_object('done', true, 'recomputed', 0, 'rows', 0, 'nextBucket', s.next_bucket);
    END IF;
    IF NOT EXISTS (SELECT 1 FROM syncguard.sweep_lane WHERE reg_id = p_reg AND pass = s.pass) THEN
      PERFORM syncguard._split_sweep(r, s);
    END IF;
  END IF;

  SELECT * INTO l FROM syncguard.sweep_lane
   WHERE reg_id = p_reg AND pass = s.pass AND NOT finished ORDER BY lane LIMIT 1 FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    IF EXISTS (SELECT 1 FROM syncguard.sweep_lane WHERE reg_id = p_reg AND pass = s.pass AND NOT finished) THEN
      RETURN jsonb_build_object('busy', true, 'done', false, 'recomputed', 0, 'rows', 0);
    END IF;
    PERFORM syncguard._finish_sweep(p_reg, s.pass);
    RETURN jsonb_build_object('done', true, 'recomputed', 0, 'rows', 0, 'nextBucket', s.next_bucket);
  END IF;

  IF r.scheme = 'int' THEN
    -- the non-empty buckets from the lane's cursor on, walking the key index, up to the lane's end
    EXECUTE format(
      'WITH RECURSIVE sg_w(b) AS ('
      ' SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s) FROM %3$s WHERE %1$I >= syncguard.int_lo($1, %2$s)'
      ' UNION ALL'
      ' SELECT (SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s) FROM %3$s WHERE %1$I > syncguard.int_hi(sg_w.b, %2$s))'
      ' FROM sg_w WHERE sg_w.b IS NOT NULL AND sg_w.b < syncguard.int_bucket(9223372036854775807, %2$s)'
      '   AND ($3::bigint IS NULL OR sg_w.b < $3::bigint - 1))'
      ' SELECT array_agg(b) FROM (SELECT b FROM sg_w WHERE b IS NOT NULL AND ($3::bigint IS NULL OR b < $3::bigint) LIMIT $2) sg_l',
      r.key_columns[1], r.bucket_width, syncguard._rel(r.schema_name, r.table_name))
    INTO v_buckets USING l.next_bucket, p_max_buckets, l.hi_bucket;
    v_next := CASE WHEN v_buckets IS NULL THEN NULL ELSE v_buckets[cardinality(v_buckets)] + 1 END;
    IF coalesce(cardinality(v_buckets), 0) < p_max_buckets OR v_next >= l.hi_bucket THEN
      v_next := NULL;   -- the walk reached the end of the lane
    END IF;
    -- and the catalogue's buckets in the same span, which may have become empty
    SELECT array_agg(u.b ORDER BY u.b) INTO v_buckets FROM (
      SELECT unnest(coalesce(v_buckets, '{}')) AS b
      UNION
      SELECT b.bucket FROM syncguard.bucket b
       WHERE b.reg_id = p_reg AND b.bucket >= l.next_bucket
         AND b.bucket < coalesce(v_next, l.hi_bucket, 9223372036854775807)) u;
  ELSE
    SELECT array_agg(g) INTO v_buckets
      FROM generate_series(l.next_bucket,
             CASE WHEN r.scheme = 'hash' THEN r.bucket_count - 1
                  ELSE least(l.next_bucket + p_max_buckets, l.hi_bucket, r.bucket_count) - 1 END) g;
    v_next := l.next_bucket + coalesce(cardinality(v_buckets), 0);
    IF v_next >= least(l.hi_bucket, r.bucket_count) THEN
      v_next := NULL;
    END IF;
  END IF;

  SELECT count(*), coalesce(sum(x.row_count), 0) INTO v_done, v_rows FROM syncguard.recompute(p_reg, coalesce(v_buckets, '{}')) x;
  UPDATE syncguard.sweep_lane SET next_bucket = coalesce(v_next, next_bucket), finished = v_next IS NULL
   WHERE reg_id = p_reg AND pass = l.pass AND lane = l.lane;
  IF v_next IS NULL AND NOT EXISTS (SELECT 1 FROM syncguard.sweep_lane
                                     WHERE reg_id = p_reg AND pass = s.pass AND NOT finished AND lane <> l.lane) THEN
    PERFORM syncguard._finish_sweep(p_reg, s.pass);
  END IF;
  RETURN jsonb_build_object('done', false, 'recomputed', v_done, 'rows', v_rows, 'nextBucket', v_next, 'lane', l.lane);
END $function$;

-- The first bucket of a registration's sweep order.
CREATE OR REPLACE FUNCTION syncguard._sweep_start(r syncguard.registration)
RETURNS bigint LANGUAGE sql IMMUTABLE
AS $function$ SELECT CASE WHEN r.scheme = 'int' THEN syncguard.int_bucket(-9223372036854775808, r.bucket_width) ELSE 0 END $function$;

-- Progress of the current pass: the share of its lanes' spans done (0 before it is split).
CREATE OR REPLACE FUNCTION syncguard._sweep_progress(r syncguard.registration)
RETURNS numeric LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp'
SET row_security TO 'off'
AS $function$
DECLARE
  s syncguard.sweep;
BEGIN
  SELECT * INTO s FROM syncguard.sweep WHERE reg_id = r.reg_id;
  IF NOT FOUND THEN
    RETURN 0;
  ELSIF s.finished_at IS NOT NULL THEN
    RETURN 1;
  END IF;
  RETURN coalesce((
    SELECT round(LEAST(sum(CASE WHEN l.finished THEN l.span_end - l.lo_bucket
                                ELSE GREATEST(LEAST(l.next_bucket, l.span_end) - l.lo_bucket, 0) END)::numeric
                       / NULLIF(sum(l.span_end - l.lo_bucket), 0), 0.9999), 4)
      FROM syncguard.sweep_lane l WHERE l.reg_id = r.reg_id AND l.pass = s.pass), 0);
END $function$;

-- Splits the current pass of a registration into lanes (the caller holds the sweep row's lock).
CREATE OR REPLACE FUNCTION syncguard._split_sweep(r syncguard.registration, s syncguard.sweep)
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp'
SET row_security TO 'off'
AS $function$
DECLARE
  v_lo bigint := s.next_bucket;
  v_hi bigint;
  v_n integer;
  v_w bigint;
BEGIN
  -- lanes of earlier passes; one a worker is still stepping through is left to the next split
  -- (waiting for it here, while holding the sweep row, could deadlock with that worker)
  DELETE FROM syncguard.sweep_lane WHERE (reg_id, pass, lane) IN (
    SELECT o.reg_id, o.pass, o.lane FROM syncguard.sweep_lane o WHERE o.reg_id = r.reg_id AND o.pass <> s.pass FOR UPDATE SKIP LOCKED);
  IF r.scheme = 'int' THEN
    EXECUTE format('SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s), syncguard.int_bucket(max(%1$I)::bigint, %2$s) + 1 FROM %3$s',
                   r.key_columns[1], r.bucket_width, syncguard._rel(r.schema_name, r.table_name)) INTO v_lo, v_hi;
    v_lo := GREATEST(coalesce(v_lo, s.next_bucket), s.next_bucket);
    v_hi := GREATEST(coalesce(v_hi, v_lo + 1), v_lo + 1);
  ELSIF r.scheme = 'range' THEN
    v_hi := GREATEST(r.bucket_count, v_lo + 1);
  ELSE
    v_hi := GREATEST(r.bucket_count, v_lo + 1);
  END IF;
  v_n := CASE WHEN r.scheme = 'hash' THEN 1 ELSE LEAST(16, GREATEST(1, (v_hi - v_lo) / 64))::integer END;
  v_w := ceil((v_hi - v_lo)::numeric / v_n)::bigint;
  INSERT INTO syncguard.sweep_lane (reg_id, pass, lane, lo_bucket, hi_bucket, span_end, next_bucket)
  SELECT r.reg_id, s.pass, i, v_lo + i * v_w,
         CASE WHEN i = v_n - 1 THEN CASE WHEN r.scheme = 'int' THEN NULL ELSE v_hi END ELSE v_lo + (i + 1) * v_w END,
         LEAST(v_lo + (i + 1) * v_w, v_hi),
         CASE WHEN i = 0 THEN s.next_bucket ELSE v_lo + i * v_w END
    FROM generate_series(0, v_n - 1) i;
END $function$;

-- Marks a pass finished (once: a later pass, or another worker that finished it, is left alone).
CREATE OR REPLACE FUNCTION syncguard._finish_sweep(p_reg integer, p_pass integer)
RETURNS void LANGUAGE sql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  UPDATE syncguard.sweep SET
         next_bucket = coalesce((SELECT max(coalesce(l.hi_bucket, l.next_bucket)) FROM syncguard.sweep_lane l
                                  WHERE l.reg_id = p_reg AND l.pass = p_pass), next_bucket),
         finished_at = clock_timestamp(),
         first_finished_at = coalesce(first_finished_at, clock_timestamp())
   WHERE reg_id = p_reg AND pass = p_pass AND finished_at IS NULL
$function$;
