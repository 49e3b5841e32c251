-- syncguard node schema 0027: inspecting a range bucket reads it through the key index only.
-- _bucket_source (0018) selected a range bucket's rows by the key index (bounds[b] <= key <
-- bounds[b+1]) AND bucket_of_<id>(key) = b. The second condition ran the generated bucket
-- function, a SECURITY DEFINER plpgsql function doing an index lookup in the bounds table, once
-- per row: ~60 us a row, so a 1,000-row bucket took ~65 ms under the probe's SHARE lock and the
-- 50 ms hold limit cancelled every inspection of it. The same condition is now stated inline as
-- record comparisons over the key type (the ordering bucket_of_<id> and the bounds table use):
-- bounds[b] <= ROW(key)::key_<id> < bounds[b+1], which is exactly "bucket_of_<id>(key) = b", with
-- no function call per row. The ROW(...) comparison over the table's columns stays in front of it,
-- so the planner still reads only the bucket's range of the key index.

-- As in 0018; a range bucket's membership is checked inline instead of by the bucket function.
CREATE OR REPLACE FUNCTION syncguard._bucket_source(r syncguard.registration, p_bucket bigint) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_src  text := syncguard._rel(r.schema_name, r.table_name) || ' sg_t';
  v_key  text := syncguard._key_row(r.key_columns, 'sg_t');
  v_typed text;
  v_n    integer := r.bucket_count - 1;
  v_pred text;
BEGIN
  IF r.scheme = 'int' THEN
    v_pred := format('sg_t.%I BETWEEN %s AND %s', r.key_columns[1], syncguard.int_lo(p_bucket, r.bucket_width),
                     syncguard.int_hi(p_bucket, r.bucket_width));
  ELSIF r.scheme = 'range' AND v_n > 0 THEN
    v_src := v_src || format(', (SELECT %s AS sg_arr) sg_ba', syncguard._bounds_literal(r));
    -- the key as the registration's key type, compared as bucket_of_<id> compares it
    v_typed := format('(%s::%s)', v_key, syncguard._key_type(r.reg_id));
    v_pred := CASE
      WHEN p_bucket <= 0 THEN format('%1$s < %2$s AND %3$s OPERATOR(pg_catalog.<) sg_ba.sg_arr[1]', v_key,
                                     syncguard._bound_row(r.key_columns, 'sg_ba.sg_arr[1]'), v_typed)
      WHEN p_bucket >= v_n THEN format('%1$s >= %2$s AND %3$s OPERATOR(pg_catalog.>=) sg_ba.sg_arr[%4$s]', v_key,
                                       syncguard._bound_row(r.key_columns, format('sg_ba.sg_arr[%s]', v_n)), v_typed, v_n)
      ELSE format('%1$s >= %2$s AND %1$s < %3$s AND %4$s OPERATOR(pg_catalog.>=) sg_ba.sg_arr[%5$s] '
                  'AND %4$s OPERATOR(pg_catalog.<) sg_ba.sg_arr[%6$s]', v_key,
                  syncguard._bound_row(r.key_columns, format('sg_ba.sg_arr[%s]', p_bucket)),
                  syncguard._bound_row(r.key_columns, format('sg_ba.sg_arr[%s]', p_bucket + 1)),
                  v_typed, p_bucket, p_bucket + 1)
    END;
    RETURN format('%s WHERE %s%s', v_src, v_pred, syncguard._filter(r));
  ELSE
    v_pred := 'true';
  END IF;
  RETURN format('%s WHERE %s AND %s = %s%s', v_src, v_pred, syncguard._bucket_expr(r, 'sg_t'), p_bucket, syncguard._filter(r));
END
$$;
