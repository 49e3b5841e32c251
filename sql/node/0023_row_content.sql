-- syncguard node schema 0023: row_values() also sends the registration's canonical row expression.
-- A plan's SQL preview names a row of a table without a key by the md5 of its canonical form. The
-- preview wrote that form itself as ROW(...)::text, which is version 1's rendering only (and not
-- exact for money); version 2 hashes record_send() bytes. The node now sends the expression it
-- uses (over the alias sg_t), as _bucket_rows and _repair_statements build it, so there is one
-- definition. As in 0014, with 'content' added.
CREATE OR REPLACE FUNCTION syncguard.row_values(p_schema text, p_table text, p_bucket bigint, p_keys text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
BEGIN
  SELECT * INTO r FROM syncguard.registration g WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% is not registered on this node', quote_ident(p_schema), quote_ident(p_table) USING ERRCODE = 'undefined_object';
  END IF;
  RETURN jsonb_build_object('columns', to_jsonb(r.columns), 'keyColumns', to_jsonb(r.key_columns),
    'identityAlways', (SELECT coalesce(jsonb_agg(a.attname), '[]') FROM pg_attribute a
                        WHERE a.attrelid = r.relid AND a.attidentity = 'a' AND a.attname = ANY(r.columns)),
    'generated', (SELECT coalesce(jsonb_agg(a.attname), '[]') FROM pg_attribute a
                   WHERE a.attrelid = r.relid AND a.attgenerated <> '' AND a.attname = ANY(r.columns)),
    'content', replace(syncguard._hash_expr(r, 'sg_t'), 'syncguard.row_hash(', '('),
    'rows', (SELECT coalesce(jsonb_object_agg(b.key_text, jsonb_build_object('hash', b.row_hash::text, 'keyValues', to_jsonb(b.key_values),
                                                                        'values', to_jsonb(b.column_values))), '{}')
               FROM syncguard._bucket_rows(r.reg_id, p_bucket, p_keys) b));
END
$$;
