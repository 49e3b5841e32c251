-- syncguard node schema 0002: canonical row hashing and bucket expressions (hash_version 1).
-- The encoding is specified in docs/hashing.md. Every function here that renders values runs
-- under the pinned settings below, so the session's TimeZone, DateStyle, float digits or
-- bytea_output can never change a hash:
--   timezone=UTC, datestyle='ISO, YMD', intervalstyle=postgres, extra_float_digits=1,
--   bytea_output=hex, lc_monetary=C, search_path=pg_catalog, pg_temp

-- First 8 bytes of sha256 over the UTF-8 canonical text, as a signed bigint.
-- STABLE (convert_to is) and not STRICT, so the planner inlines it: declared IMMUTABLE or STRICT,
-- it would run as a SQL-function call per row, 3.4x slower (measured on 1M rows).
CREATE FUNCTION syncguard.row_hash(canonical text) RETURNS bigint
LANGUAGE sql STABLE PARALLEL SAFE
AS $$ SELECT ('x' || pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(pg_catalog.convert_to(canonical, 'UTF8')), 1, 8), 'hex'))::pg_catalog.bit(64)::bigint $$;

-- Floor division for integer range buckets, and the clamped key bounds of a bucket. Not STRICT:
-- CASE, GREATEST and LEAST are not strict, and a STRICT SQL function with them is never inlined.
CREATE FUNCTION syncguard.int_bucket(k bigint, width bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT CASE WHEN k >= 0 THEN k / width ELSE (k + 1) / width - 1 END $$;

CREATE FUNCTION syncguard.int_lo(bucket bigint, width bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT GREATEST(LEAST(bucket::numeric * width, 9223372036854775807), -9223372036854775808)::bigint $$;

CREATE FUNCTION syncguard.int_hi(bucket bigint, width bigint) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT GREATEST(LEAST(bucket::numeric * width + width - 1, 9223372036854775807), -9223372036854775808)::bigint $$;

-- The SET clause every generated function that renders values carries.
CREATE FUNCTION syncguard._pinned_settings() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'SET timezone = ''UTC'' SET datestyle = ''ISO, YMD'' SET intervalstyle = ''postgres'' '
          || 'SET extra_float_digits = 1 SET bytea_output = ''hex'' SET lc_monetary = ''C'' '
          || 'SET search_path = pg_catalog, pg_temp' $$;

-- One column as it enters the row text: money (and domains or arrays of it) as numeric, because
-- money's output depends on lc_monetary; every other type through its own output function.
CREATE FUNCTION syncguard._column_expr(p_relid oid, p_column name, p_alias text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_type oid;
  v_base oid;
  v_elem oid;
BEGIN
  SELECT a.atttypid INTO v_type FROM pg_attribute a
   WHERE a.attrelid = p_relid AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF v_type IS NULL THEN
    RAISE EXCEPTION 'column % does not exist in %', quote_ident(p_column), p_relid::regclass
      USING ERRCODE = 'undefined_column';
  END IF;
  v_base := coalesce((SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype END FROM pg_type t WHERE t.oid = v_type), v_type);
  v_elem := (SELECT t.typelem FROM pg_type t WHERE t.oid = v_base AND t.typcategory = 'A');
  IF v_base = 'money'::regtype THEN
    RETURN format('%s.%I::pg_catalog.numeric', p_alias, p_column);
  ELSIF v_elem = 'money'::regtype THEN
    RETURN format('%s.%I::pg_catalog.numeric[]', p_alias, p_column);
  END IF;
  RETURN format('%s.%I', p_alias, p_column);
END
$$;

-- The row hash expression of a registration over a row alias: row_hash(ROW(c1, ..., cn)::text).
CREATE FUNCTION syncguard._hash_expr(p_relid oid, p_columns name[], p_alias text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT format('syncguard.row_hash(ROW(%s)::text)',
                string_agg(syncguard._column_expr(p_relid, c, p_alias), ', ' ORDER BY o))
  FROM unnest(p_columns) WITH ORDINALITY u(c, o)
$$;

-- ROW(alias.k1, ..., alias.kn) over the key columns.
CREATE FUNCTION syncguard._key_row(p_keys name[], p_alias text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('ROW(%s)', string_agg(format('%s.%I', p_alias, k), ', ' ORDER BY o))
      FROM unnest(p_keys) WITH ORDINALITY u(k, o) $$;

-- ROW((bound).k1, ..., (bound).kn) for a composite bound value.
CREATE FUNCTION syncguard._bound_row(p_keys name[], p_bound text) RETURNS text
LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT format('ROW(%s)', string_agg(format('(%s).%I', p_bound, k), ', ' ORDER BY o))
      FROM unnest(p_keys) WITH ORDINALITY u(k, o) $$;

-- Names of the objects generated per registration.
CREATE FUNCTION syncguard._key_type(p_reg integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT format('syncguard.%I', 'key_' || p_reg) $$;
CREATE FUNCTION syncguard._bucket_fn(p_reg integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT format('syncguard.%I', 'bucket_of_' || p_reg) $$;
CREATE FUNCTION syncguard._mark_fn(p_reg integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT format('syncguard.%I', 'mark_' || p_reg) $$;
CREATE FUNCTION syncguard._truncate_fn(p_reg integer) RETURNS text
LANGUAGE sql IMMUTABLE AS $$ SELECT format('syncguard.%I', 'mark_truncate_' || p_reg) $$;

-- The bucket expression of a registration over a row alias.
--   int:   floor(key / width), as inline arithmetic
--   range: number of sampled lower bounds <= key (width_bucket over a typed array, in the
--          generated bucket_of_<id>() function)
--   hash:  row_hash of the key's row text, modulo bucket_count
CREATE FUNCTION syncguard._bucket_expr(p_reg syncguard.registration, p_alias text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_key text := format('%s.%I::pg_catalog.int8', p_alias, p_reg.key_columns[1]);
  v_keys text := (SELECT string_agg(format('%s.%I', p_alias, k), ', ' ORDER BY o)
                    FROM unnest(p_reg.key_columns) WITH ORDINALITY u(k, o));
BEGIN
  CASE p_reg.scheme
    WHEN 'int' THEN
      -- the formula of int_bucket(), with operators qualified: the subscriber's row trigger runs
      -- with the writer's search_path
      RETURN format('CASE WHEN %1$s OPERATOR(pg_catalog.>=) 0 THEN %1$s OPERATOR(pg_catalog./) %2$s '
                    'ELSE (%1$s OPERATOR(pg_catalog.+) 1) OPERATOR(pg_catalog./) %2$s OPERATOR(pg_catalog.-) 1 END',
                    v_key, p_reg.bucket_width);
    WHEN 'range' THEN
      IF p_reg.bucket_count = 1 THEN
        RETURN '0::pg_catalog.int8';
      END IF;
      RETURN format('%s(%s)', syncguard._bucket_fn(p_reg.reg_id), v_keys);
    WHEN 'hash' THEN
      RETURN format('((syncguard.row_hash(%s::text) %% %s) + %s) %% %s',
                    syncguard._key_row(p_reg.key_columns, p_alias),
                    p_reg.bucket_count, p_reg.bucket_count, p_reg.bucket_count);
  END CASE;
END
$$;

-- FROM source with the publisher's row filter applied (a subscriber holds every row it is sent).
CREATE FUNCTION syncguard._filter(p_reg syncguard.registration) RETURNS text
LANGUAGE sql IMMUTABLE
AS $$ SELECT CASE WHEN p_reg.node_role = 'publisher' AND p_reg.row_filter IS NOT NULL
                  THEN format(' AND (%s)', p_reg.row_filter) ELSE '' END $$;
