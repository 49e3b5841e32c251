-- syncguard node schema 0015: tables without a key (issue 11).
-- A table with no primary key or unique NOT NULL key on either side is registered with no key
-- columns and the hash scheme over the whole row: bucket = row hash mod the bucket count. A
-- bucket's (count, sum of row hashes) then compares its rows as a multiset, so duplicate rows
-- count, and a changed row is one row gone from one bucket and one row new in another. Triggers
-- mark the buckets of the old and the new row as for any key. Inspection and repair need a key
-- and refuse such a table.

-- As in 0002, and a registration without key columns hashes the whole row.
CREATE OR REPLACE FUNCTION syncguard._bucket_expr(p_reg syncguard.registration, p_alias text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
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
        RETURN format('((%s %% %s) + %s) %% %s', syncguard._hash_expr(p_reg.relid, p_reg.columns, p_alias),
                      p_reg.bucket_count, p_reg.bucket_count, p_reg.bucket_count);
      END IF;
      RETURN format('((syncguard.row_hash(%s::text) %% %s) + %s) %% %s',
                    syncguard._key_row(p_reg.key_columns, p_alias),
                    p_reg.bucket_count, p_reg.bucket_count, p_reg.bucket_count);
  END CASE;
END
$$;

-- Inspection compares rows by key: a table without one is refused with the reason (in the
-- publisher's probe function, before anything is locked or sent).
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
  IF cardinality(r.key_columns) = 0 THEN
    RAISE EXCEPTION 'table %.% has no key: verify compares it, but inspect and repair need a key to tell its rows apart', quote_ident(p_schema), quote_ident(p_table)
      USING ERRCODE = 'feature_not_supported';
  END IF;
  RETURN r;
END
$$;
