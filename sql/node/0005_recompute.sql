-- syncguard node schema 0005: recomputing buckets and the initial sweep.
--
-- The claim protocol that loses no dirty mark (DESIGN.md "The dirty queue must not lose marks"):
--   1. make sure each bucket has a catalogue row, and lock the rows FOR UPDATE SKIP LOCKED
--      (a bucket another session is recomputing is skipped, never recomputed twice at once);
--   2. delete the marks of the claimed buckets; a DELETE only sees committed marks, so the mark of
--      a transaction still in flight survives and causes another recompute later;
--   3. in a later statement, so with a later snapshot that sees every writer whose mark was
--      deleted, recompute and store.
-- A session that dies rolls back, and its deleted marks come back.

-- Claims, recomputes and stores the given buckets; returns those it recomputed.
CREATE FUNCTION syncguard.recompute(p_reg integer, p_buckets bigint[])
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
  -- In key order, so that two sessions adding rows for overlapping sets cannot deadlock.
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
    'WITH sg_u AS (UPDATE syncguard.bucket b SET row_count = c.n, hash_sum = c.s, computed_at = pg_catalog.clock_timestamp() '
    'FROM (%s) c(b, n, s) WHERE b.reg_id = %s AND b.bucket = c.b RETURNING b.bucket, b.row_count) '
    'SELECT * FROM sg_u', syncguard._compute_sql(r), p_reg)
  USING v_claimed;
END
$$;

-- The first bucket of a registration's sweep order.
CREATE FUNCTION syncguard._sweep_start(r syncguard.registration) RETURNS bigint
LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN r.scheme = 'int' THEN syncguard.int_bucket(-9223372036854775808, r.bucket_width) ELSE 0 END $$;

-- Advances the sweep of one table by up to p_max_buckets non-empty buckets (a hash registration
-- does all its buckets in one pass, since each pass reads the whole table). Resumes where the
-- previous step stopped; returns {done, recomputed, rows, nextBucket}, or {busy} when another
-- session is sweeping this table right now.
CREATE FUNCTION syncguard.sweep_step(p_reg integer, p_max_buckets integer DEFAULT 100)
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
    -- Walk the key index from bucket to bucket (a loose index scan), skipping empty key ranges.
    EXECUTE format(
      'WITH RECURSIVE sg_w(b) AS ('
      ' SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s) FROM %3$I.%4$I WHERE %1$I >= syncguard.int_lo($1, %2$s)'
      ' UNION ALL'
      ' SELECT (SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s) FROM %3$I.%4$I WHERE %1$I > syncguard.int_hi(sg_w.b, %2$s))'
      ' FROM sg_w WHERE sg_w.b IS NOT NULL AND sg_w.b < syncguard.int_bucket(9223372036854775807, %2$s))'
      ' SELECT array_agg(b) FROM (SELECT b FROM sg_w WHERE b IS NOT NULL LIMIT $2) sg_l',
      r.key_columns[1], r.bucket_width, r.schema_name, r.table_name)
    INTO v_buckets USING s.next_bucket, p_max_buckets;
    v_next := CASE WHEN v_buckets IS NULL THEN NULL ELSE v_buckets[cardinality(v_buckets)] + 1 END;
    IF cardinality(v_buckets) < p_max_buckets THEN
      v_next := NULL;   -- the walk reached the end of the table
    END IF;
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
