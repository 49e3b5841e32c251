-- syncguard node schema 0016: inspect and repair tables without a key.
-- A row without a key is named by its content and its occurrence: md5 of its canonical text, '#',
-- and its number among identical rows (1, 2, ...). Both sides number identical rows the same
-- way, so the (name, hash) lists of a bucket compare as multisets: a missing copy is
-- missing_on_subscriber, an extra copy extra_on_subscriber, a changed row one of each. Repair
-- inserts a missing copy (no ON CONFLICT: there is no key) and deletes one physical row per extra
-- copy, found by its content; the preconditions ("the subscriber has n copies") hold as for keys.

-- As in 0014; a row without a key is named md5(content)#occurrence, and its "key value" is the md5.
CREATE OR REPLACE FUNCTION syncguard._bucket_rows(p_reg integer, p_bucket bigint, p_keys text[])
RETURNS TABLE (key_text text, row_hash bigint, key_values text[], column_values text[])
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp SET row_security = off
AS $$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  v_canon text := replace(syncguard._hash_expr(r.relid, r.columns, 'sg_t'), 'syncguard.row_hash(', '(');
  v_keyless boolean := cardinality(r.key_columns) = 0;
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT sg_s.sg_k, syncguard.row_hash(sg_s.sg_c), sg_s.sg_kv, sg_s.sg_cv FROM ('
    'SELECT %s AS sg_k, %s AS sg_c, %s AS sg_kv, ARRAY[%s]::text[] AS sg_cv FROM %s) sg_s '
    'WHERE $1::text[] IS NULL OR sg_s.sg_k = ANY($1::text[])',
    CASE WHEN v_keyless
         THEN format('md5(%1$s) || ''#'' || row_number() OVER (PARTITION BY %1$s ORDER BY sg_t.ctid)', v_canon)
         ELSE format('%s::text', syncguard._key_row(r.key_columns, 'sg_t')) END,
    v_canon,
    CASE WHEN v_keyless THEN format('ARRAY[md5(%s)]', v_canon)
         ELSE format('ARRAY[%s]::text[]', (SELECT string_agg(format('sg_t.%I::text', k), ', ' ORDER BY o)
                                            FROM unnest(r.key_columns) WITH ORDINALITY u(k, o))) END,
    (SELECT string_agg(format('sg_t.%I::text', c), ', ' ORDER BY o) FROM unnest(r.columns) WITH ORDINALITY u(c, o)),
    syncguard._bucket_source(r, p_bucket))
  USING p_keys;
END
$$;

-- As in 0014 (0015 refused tables without a key here; they are inspected now).
CREATE OR REPLACE FUNCTION syncguard._publisher_reg(p_schema text, p_table text) RETURNS syncguard.registration
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
BEGIN
  SELECT * INTO r FROM syncguard.registration g
   WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table AND g.node_role = 'publisher';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% is not registered as a publisher table on this node', quote_ident(p_schema), quote_ident(p_table)
      USING ERRCODE = 'undefined_object';
  END IF;
  RETURN r;
END
$$;

-- The statements a repair runs on a subscriber table, by position ($1 is a text array): the
-- upsert of a full row (a plain insert for a table without a key) and the delete of one row (by
-- its key values, or by the md5 of its content for a table without a key).
CREATE FUNCTION syncguard._repair_statements(r syncguard.registration, OUT upsert text, OUT del text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tbl text := format('%I.%I', r.schema_name, r.table_name);
  v_cols text;
  v_vals text;
  v_set text;
  v_override text;
BEGIN
  SELECT string_agg(quote_ident(c), ', ' ORDER BY o),
         string_agg(format('$1[%s]::%s', o, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY o),
         string_agg(format('%I = EXCLUDED.%I', c, c), ', ' ORDER BY o) FILTER (WHERE c <> ALL(r.key_columns)),
         CASE WHEN bool_or(a.attidentity = 'a') THEN ' OVERRIDING SYSTEM VALUE' ELSE '' END
    INTO v_cols, v_vals, v_set, v_override
    FROM unnest(r.columns) WITH ORDINALITY u(c, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.c
   WHERE a.attgenerated = '';
  IF cardinality(r.key_columns) = 0 THEN
    upsert := format('INSERT INTO %s (%s)%s VALUES (%s)', v_tbl, v_cols, v_override, v_vals);
    del := format('DELETE FROM ONLY %1$s WHERE ctid = (SELECT sg_t.ctid FROM ONLY %1$s sg_t WHERE md5(%2$s) = $1[1] LIMIT 1)',
                  v_tbl, replace(syncguard._hash_expr(r.relid, r.columns, 'sg_t'), 'syncguard.row_hash(', '('));
    RETURN;
  END IF;
  upsert := format('INSERT INTO %s (%s)%s VALUES (%s) ON CONFLICT (%s) DO %s', v_tbl, v_cols, v_override, v_vals,
                   (SELECT string_agg(quote_ident(k), ', ' ORDER BY o) FROM unnest(r.key_columns) WITH ORDINALITY u(k, o)),
                   CASE WHEN v_set IS NULL THEN 'NOTHING' ELSE 'UPDATE SET ' || v_set END);
  del := format('DELETE FROM ONLY %s WHERE %s', v_tbl,
                (SELECT string_agg(format('%I = $1[%s]::%s', k, o, format_type(a.atttypid, a.atttypmod)), ' AND ' ORDER BY o)
                   FROM unnest(r.key_columns) WITH ORDINALITY u(k, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.k));
END
$$;

-- As in 0014, with its statements from _repair_statements (so tables without a key repair too).
CREATE OR REPLACE FUNCTION syncguard._repair_apply(r syncguard.registration, p syncguard.probe) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp SET row_security = off
AS $$
DECLARE
  v_bucket bigint := (p.request->>'bucket')::bigint;
  v_keys text[] := ARRAY(SELECT x->>'key' FROM jsonb_array_elements(p.request->'changes') x);
  s record := syncguard._repair_statements(r);
  v_now jsonb;
  v_after jsonb;
  v_out jsonb := '[]';
  v_applied jsonb := '{}';
  c jsonb;
  v_cur text;
BEGIN
  IF (SELECT array_agg(x ORDER BY o) FROM jsonb_array_elements_text(p.request->'columns') WITH ORDINALITY u(x, o))::name[] IS DISTINCT FROM r.columns THEN
    RETURN jsonb_build_object('error', 'the request names other columns than the subscriber registration');
  END IF;
  SELECT coalesce(jsonb_object_agg(b.key_text, b.row_hash::text), '{}') INTO v_now
    FROM syncguard._bucket_rows(r.reg_id, v_bucket, v_keys) b;
  FOR c IN SELECT x FROM jsonb_array_elements(p.request->'changes') x LOOP
    v_cur := v_now->>(c->>'key');
    IF v_cur IS NOT DISTINCT FROM c->>'pubHash' THEN
      v_out := v_out || jsonb_build_object('key', c->>'key', 'outcome', 'already_equal');
    ELSIF v_cur IS DISTINCT FROM c->>'subHash' THEN
      v_out := v_out || jsonb_build_object('key', c->>'key', 'outcome', 'changed_since_inspection');
    ELSE
      BEGIN
        IF c->>'op' = 'delete' THEN
          EXECUTE s.del USING ARRAY(SELECT jsonb_array_elements_text(c->'keyValues'));
        ELSE
          -- jsonb nulls become SQL NULLs
          EXECUTE s.upsert USING ARRAY(SELECT CASE WHEN jsonb_typeof(e) = 'null' THEN NULL ELSE e #>> '{}' END
                                         FROM jsonb_array_elements(c->'values') WITH ORDINALITY u(e, o) ORDER BY o);
        END IF;
        v_applied := v_applied || jsonb_build_object(c->>'key', c->'pubHash');
        v_out := v_out || jsonb_build_object('key', c->>'key', 'outcome', 'applied');
      EXCEPTION WHEN OTHERS THEN
        v_out := v_out || jsonb_build_object('key', c->>'key', 'outcome', 'failed', 'error', left(SQLERRM, 300));
      END;
    END IF;
  END LOOP;
  -- each applied row must now hash as the publisher's did (absent for a delete)
  SELECT coalesce(jsonb_object_agg(b.key_text, b.row_hash::text), '{}') INTO v_after
    FROM syncguard._bucket_rows(r.reg_id, v_bucket, ARRAY(SELECT jsonb_object_keys(v_applied))) b;
  v_out := (SELECT coalesce(jsonb_agg(CASE WHEN x->>'outcome' = 'applied' AND (v_after->>(x->>'key')) IS DISTINCT FROM (v_applied->>(x->>'key'))
                                            THEN x || '{"outcome": "applied_but_differs"}' ELSE x END ORDER BY o), '[]')
              FROM jsonb_array_elements(v_out) WITH ORDINALITY u(x, o));
  RETURN jsonb_build_object('changes', v_out);
END
$$;
