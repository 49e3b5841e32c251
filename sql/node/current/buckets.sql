-- Buckets: which bucket a row is in (range buckets over an integer or composite key, hash buckets
-- otherwise), and the computation of a bucket's row count and hash sum from the table.

-- Floor division for integer range buckets, and the clamped key bounds of a bucket. Not STRICT:
-- CASE, GREATEST and LEAST are not strict, and a STRICT SQL function with them is never inlined.
CREATE OR REPLACE FUNCTION syncguard.int_bucket(k bigint, width bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $function$ SELECT CASE WHEN k >= 0 THEN k / width ELSE (k + 1) / width - 1 END $function$;

CREATE OR REPLACE FUNCTION syncguard.int_lo(bucket bigint, width bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $function$ SELECT GREATEST(LEAST(bucket::numeric * width, 9223372036854775807), -9223372036854775808)::bigint $function$;

CREATE OR REPLACE FUNCTION syncguard.int_hi(bucket bigint, width bigint)
RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $function$ SELECT GREATEST(LEAST(bucket::numeric * width + width - 1, 9223372036854775807), -9223372036854775808)::bigint $function$;

-- ROW(alias.k1, ..., alias.kn) over the key columns.
CREATE OR REPLACE FUNCTION syncguard._key_row(p_keys name[], p_alias text)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT format('ROW(%s)', string_agg(format('%s.%I', p_alias, k), ', ' ORDER BY o))
      FROM unnest(p_keys) WITH ORDINALITY u(k, o) $function$;

-- ROW((bound).k1, ..., (bound).kn) for a composite bound value.
CREATE OR REPLACE FUNCTION syncguard._bound_row(p_keys name[], p_bound text)
RETURNS text LANGUAGE sql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT format('ROW(%s)', string_agg(format('(%s).%I', p_bound, k), ', ' ORDER BY o))
      FROM unnest(p_keys) WITH ORDINALITY u(k, o) $function$;

-- The bucket expression of a registration over a row alias.
--   int:   floor(key / width), as inline arithmetic
--   range: number of sampled lower bounds <= key (width_bucket over a typed array, in the
--          generated bucket_of_<id>() function)
--   hash:  row_hash of the key's row text, modulo bucket_count (of the whole row's text when
--          the registration has no key columns)
CREATE OR REPLACE FUNCTION syncguard._bucket_expr(p_reg syncguard.registration, p_alias text)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_key text;
BEGIN
  CASE p_reg.scheme
    WHEN 'int' THEN
      v_key := format('%s.%I::pg_catalog.int8', p_alias, p_reg.key_columns[1]);
      -- the formula of int_bucket(), with operators qualified: the subscriber's row trigger runs
      -- with the writer's search_path
      RETURN format('CASE WHEN %1$s OPERATOR(pg_catalog.>=) 0 THEN %1$s OPERATOR(pg_catalog./) %2$s '
                    'ELSE (%1$s OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog./) %2$s OPERATOR(pg_catalog.-) 1 END',
                    v_key, p_reg.bucket_width);
    WHEN 'range' THEN
      IF p_reg.bucket_count = 1 THEN
        RETURN '0::pg_catalog.int8';
      END IF;
      RETURN format('%s(%s)', syncguard._bucket_fn(p_reg.reg_id),
                    (SELECT string_agg(format('%s.%I', p_alias, k), ', ' ORDER BY o) FROM unnest(p_reg.key_columns) WITH ORDINALITY u(k, o)));
    WHEN 'hash' THEN
      IF cardinality(p_reg.key_columns) = 0 THEN
        RETURN format('((%s %% %s) + %s) %% %s', syncguard._hash_expr(p_reg, p_alias),
                      p_reg.bucket_count, p_reg.bucket_count, p_reg.bucket_count);
      END IF;
      RETURN format('((syncguard.row_hash(%s::text) %% %s) + %s) %% %s',
                    syncguard._key_row(p_reg.key_columns, p_alias),
                    p_reg.bucket_count, p_reg.bucket_count, p_reg.bucket_count);
  END CASE;
END $function$;

-- FROM source with the publisher's row filter applied (a subscriber holds every row it is sent).
CREATE OR REPLACE FUNCTION syncguard._filter(p_reg syncguard.registration)
RETURNS text LANGUAGE sql IMMUTABLE
AS $function$ SELECT CASE WHEN p_reg.node_role = 'publisher' AND p_reg.row_filter IS NOT NULL
                  THEN format(' AND (%s)', p_reg.row_filter) ELSE '' END $function$;

-- The typed array literal of a range registration's bounds (bucket i >= 1 starts at element i).
CREATE OR REPLACE FUNCTION syncguard._bounds_literal(p_reg syncguard.registration)
RETURNS text LANGUAGE plpgsql STABLE
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET search_path TO 'pg_catalog', 'pg_temp' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION syncguard._install_bounds(r syncguard.registration)
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- The rows of bucket sg_cb.sg_b of an integer- or range-bucketed registration, as a query that
-- selects p_select from the table (alias sg_t) through the key index; a range registration's
-- bounds are sg_ba.sg_arr, which _bounds_join brings in. The one place these predicates are
-- written: the sweep's compute (_compute_sql) and the probe's row count (_probe_rows) read buckets
-- this way.
CREATE OR REPLACE FUNCTION syncguard._bucket_rows_sql(p_reg syncguard.registration, p_select text)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_src  text := syncguard._rel(p_reg.schema_name, p_reg.table_name) || ' sg_t';
  v_key  text := syncguard._key_row(p_reg.key_columns, 'sg_t');
  v_filt text := syncguard._filter(p_reg);
  v_n    integer := p_reg.bucket_count - 1;   -- range: number of bounds
BEGIN
  IF p_reg.scheme = 'int' THEN
    RETURN format('SELECT %s FROM %s WHERE sg_t.%I BETWEEN syncguard.int_lo(sg_cb.sg_b, %s) AND syncguard.int_hi(sg_cb.sg_b, %s)%s',
                  p_select, v_src, p_reg.key_columns[1], p_reg.bucket_width, p_reg.bucket_width, v_filt);
  ELSIF p_reg.scheme IS DISTINCT FROM 'range' THEN
    RAISE EXCEPTION 'buckets of scheme % are not read through the key index', p_reg.scheme USING ERRCODE = 'invalid_parameter_value';
  ELSIF v_n = 0 THEN
    RETURN format('SELECT %s FROM %s WHERE sg_cb.sg_b = 0%s', p_select, v_src, v_filt);
  END IF;
  RETURN format(
    'SELECT %1$s FROM %2$s WHERE sg_cb.sg_b = 0 AND %3$s < %4$s%7$s'
    ' UNION ALL SELECT %1$s FROM %2$s WHERE sg_cb.sg_b BETWEEN 1 AND %8$s AND %3$s >= %5$s AND %3$s < %6$s%7$s'
    ' UNION ALL SELECT %1$s FROM %2$s WHERE sg_cb.sg_b = %9$s AND %3$s >= %10$s%7$s',
    p_select, v_src, v_key,
    syncguard._bound_row(p_reg.key_columns, 'sg_ba.sg_arr[1]'),
    syncguard._bound_row(p_reg.key_columns, 'sg_ba.sg_arr[sg_cb.sg_b]'),
    syncguard._bound_row(p_reg.key_columns, 'sg_ba.sg_arr[sg_cb.sg_b + 1]'),
    v_filt, v_n - 1, v_n,
    syncguard._bound_row(p_reg.key_columns, format('sg_ba.sg_arr[%s]', v_n)));
END $function$;

-- The join that brings a range registration's bounds in as sg_ba.sg_arr; nothing for the others.
CREATE OR REPLACE FUNCTION syncguard._bounds_join(p_reg syncguard.registration)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT CASE WHEN p_reg.scheme = 'range' THEN format(' CROSS JOIN (SELECT %s AS sg_arr) sg_ba', syncguard._bounds_literal(p_reg)) ELSE '' END
$function$;

-- SQL that, given $1 = bigint[] of bucket ids, returns (bucket, row_count, hash_sum) for each of
-- them (0 and 0 for an empty bucket). Integer and range buckets are read through the key index,
-- one range scan per bucket; hash buckets need one pass over the table.
-- The table is read through _rel: a partitioned table whole, any other with ONLY.
CREATE OR REPLACE FUNCTION syncguard._compute_sql(p_reg syncguard.registration)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_hash text := syncguard._hash_expr(p_reg, 'sg_t');
BEGIN
  IF p_reg.scheme = 'hash' THEN
    RETURN format(
      'SELECT sg_cb.sg_b, count(sg_s.sg_h), coalesce(sum(sg_s.sg_h), 0) '
      'FROM unnest($1::bigint[]) sg_cb(sg_b) LEFT JOIN ('
      'SELECT %s AS sg_b, %s AS sg_h FROM %s sg_t WHERE %s = ANY($1::bigint[])%s'
      ') sg_s ON sg_s.sg_b = sg_cb.sg_b GROUP BY sg_cb.sg_b',
      syncguard._bucket_expr(p_reg, 'sg_t'), v_hash, syncguard._rel(p_reg.schema_name, p_reg.table_name),
      syncguard._bucket_expr(p_reg, 'sg_t'), syncguard._filter(p_reg));
  END IF;
  RETURN format(
    'SELECT sg_cb.sg_b, count(sg_s.sg_h), coalesce(sum(sg_s.sg_h), 0) '
    'FROM unnest($1::bigint[]) sg_cb(sg_b)%s LEFT JOIN LATERAL (%s) sg_s ON true GROUP BY sg_cb.sg_b',
    syncguard._bounds_join(p_reg), syncguard._bucket_rows_sql(p_reg, v_hash || ' AS sg_h'));
END $function$;

-- (bucket, row_count, hash_sum) of the given buckets, computed now from the table.
CREATE OR REPLACE FUNCTION syncguard.compute_buckets(p_reg integer, p_buckets bigint[])
RETURNS TABLE(bucket bigint, row_count bigint, hash_sum numeric) LANGUAGE plpgsql STABLE
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' AS $function$
BEGIN
  RETURN QUERY EXECUTE syncguard._compute_sql(syncguard._reg(p_reg)) USING p_buckets;
END $function$;

-- Every non-empty bucket of the table, from scratch, in one pass.
CREATE OR REPLACE FUNCTION syncguard.compute_all(p_reg integer)
RETURNS TABLE(bucket bigint, row_count bigint, hash_sum numeric) LANGUAGE plpgsql STABLE
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' AS $function$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT sg_b, count(*), sum(sg_h) FROM (SELECT %s AS sg_b, %s AS sg_h FROM %s sg_t WHERE true%s) sg_s GROUP BY sg_b',
    syncguard._bucket_expr(r, 'sg_t'), syncguard._hash_expr(r, 'sg_t'),
    syncguard._rel(r.schema_name, r.table_name), syncguard._filter(r));
END $function$;

-- The canonical text and row hash of every row in the given buckets (for inspection and tests).
CREATE OR REPLACE FUNCTION syncguard.canonical_rows(p_reg integer, p_buckets bigint[])
RETURNS TABLE(bucket bigint, key_text text, canonical text, row_hash bigint) LANGUAGE plpgsql STABLE
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' AS $function$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  v_text text := replace(syncguard._hash_expr(r, 'sg_t'), 'syncguard.row_hash(', '(');
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT sg_b, sg_k, sg_c::text, syncguard.row_hash(sg_c) FROM ('
    'SELECT %s AS sg_b, %s::text AS sg_k, %s AS sg_c FROM %s sg_t WHERE true%s) sg_s '
    'WHERE sg_b = ANY($1) ORDER BY sg_b, sg_k',
    syncguard._bucket_expr(r, 'sg_t'), syncguard._key_row(r.key_columns, 'sg_t'), v_text,
    syncguard._rel(r.schema_name, r.table_name), syncguard._filter(r))
  USING p_buckets;
END $function$;
