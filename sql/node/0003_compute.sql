-- syncguard node schema 0003: read-only bucket computation.
-- compute_buckets() is what the drainer stores; compute_all() is the from-scratch reference that
-- tests and live (barrier) hashing compare against. Both only read the monitored table.

-- This node's registration of a table, by id; raises when unknown.
CREATE FUNCTION syncguard._reg(p_reg integer) RETURNS syncguard.registration
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
BEGIN
  SELECT * INTO r FROM syncguard.registration
   WHERE node_id = syncguard.node_id() AND reg_id = p_reg;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'syncguard registration % does not exist on this node', p_reg
      USING ERRCODE = 'undefined_object';
  END IF;
  RETURN r;
END
$$;

-- SQL that, given $1 = bigint[] of bucket ids, returns (bucket, row_count, hash_sum) for each of
-- them (0 and 0 for an empty bucket). Integer and range buckets are read through the key index,
-- one range scan per bucket; hash buckets need one pass over the table.
CREATE FUNCTION syncguard._compute_sql(p_reg syncguard.registration) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_src  text := format('%I.%I sg_t', p_reg.schema_name, p_reg.table_name);
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

-- The typed array literal of a range registration's bounds (bucket i >= 1 starts at element i).
CREATE FUNCTION syncguard._bounds_literal(p_reg syncguard.registration) RETURNS text
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_lit text;
BEGIN
  EXECUTE format(
    'SELECT array_agg(ROW(%s)::%s ORDER BY sg_o)::text FROM jsonb_array_elements($1) WITH ORDINALITY sg_e(sg_v, sg_o)',
    (SELECT string_agg(format('(sg_v->>%s)::%s', o - 1, ty), ', ' ORDER BY o)
       FROM unnest(p_reg.key_types) WITH ORDINALITY u(ty, o)),
    syncguard._key_type(p_reg.reg_id))
  INTO v_lit USING p_reg.bounds;
  RETURN format('%L::%s[]', coalesce(v_lit, '{}'), syncguard._key_type(p_reg.reg_id));
END
$$;

-- (bucket, row_count, hash_sum) of the given buckets, computed now from the table.
CREATE FUNCTION syncguard.compute_buckets(p_reg integer, p_buckets bigint[])
RETURNS TABLE (bucket bigint, row_count bigint, hash_sum numeric)
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  RETURN QUERY EXECUTE syncguard._compute_sql(syncguard._reg(p_reg)) USING p_buckets;
END
$$;

-- Every non-empty bucket of the table, from scratch, in one pass.
CREATE FUNCTION syncguard.compute_all(p_reg integer)
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
    'SELECT sg_b, count(*), sum(sg_h) FROM (SELECT %s AS sg_b, %s AS sg_h FROM %I.%I sg_t WHERE true%s) sg_s GROUP BY sg_b',
    syncguard._bucket_expr(r, 'sg_t'), syncguard._hash_expr(r.relid, r.columns, 'sg_t'),
    r.schema_name, r.table_name, syncguard._filter(r));
END
$$;

-- The canonical text and row hash of every row in the given buckets (for inspection and tests).
CREATE FUNCTION syncguard.canonical_rows(p_reg integer, p_buckets bigint[])
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
    'SELECT %s AS sg_b, %s::text AS sg_k, %s AS sg_c FROM %I.%I sg_t WHERE true%s) sg_s '
    'WHERE sg_b = ANY($1) ORDER BY sg_b, sg_k',
    syncguard._bucket_expr(r, 'sg_t'), syncguard._key_row(r.key_columns, 'sg_t'), v_text,
    r.schema_name, r.table_name, syncguard._filter(r))
  USING p_buckets;
END
$$;
