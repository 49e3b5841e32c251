-- Inspection: the rows of a diverging bucket, read on the publisher inside a probe and on the
-- subscriber at the same position, with the snapshot each side saw (docs/repair.md).

-- Publisher: the inspection probe of one bucket. In a READ COMMITTED transaction with a short
-- lock_timeout; commit right after. Returns {id, rows: {key: hash}, lockWaitMs, computeMs}.
-- Refused for a bucket above the probe's row cap, and while syncguard.probe has code syncguard did
-- not add (_probe_lock: it would run as the installer on the probe's insert).
CREATE OR REPLACE FUNCTION syncguard.probe_rows(p_schema text, p_table text, p_bucket bigint, p_target uuid, p_subscription text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard.registration := syncguard._publisher_reg(p_schema, p_table);
  v_t0 timestamptz := clock_timestamp();
  v_t1 timestamptz;
  v_rows jsonb;
  v_id bigint;
BEGIN
  PERFORM syncguard._require_read_committed('a probe');
  IF syncguard._probe_rows(r, ARRAY[p_bucket]) > (syncguard._probe_caps()->>'maxRows')::bigint THEN
    RAISE EXCEPTION 'bucket % holds more than % rows; inspect it in smaller buckets', p_bucket, syncguard._probe_caps()->>'maxRows'
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  v_t1 := syncguard._probe_lock(p_schema, p_table);
  v_rows := syncguard._row_list(r.reg_id, p_bucket);
  v_id := syncguard._send_probe(p_target, 'rows', r, jsonb_build_object('subscription', p_subscription, 'bucket', p_bucket));
  RETURN jsonb_build_object('id', v_id, 'rows', v_rows,
                            'lockWaitMs', syncguard._ms(v_t0, v_t1),
                            'computeMs', syncguard._ms(v_t1, clock_timestamp()));
END $function$;

-- Either side: the full rows of some keys of one bucket, for the diff a user asked for:
-- {columns: [...], keyColumns, identityAlways: [...], generated: [...], content, rows: {key: {hash,
-- keyValues: [...], values: [...]}}}. Values are returned, never logged. content is the
-- registration's canonical row expression (over the alias sg_t), as _bucket_rows and
-- _repair_statements build it: a plan's SQL preview names a row of a table without a key by the md5
-- of that form, and writing it itself as ROW(...)::text would be version 1's rendering only (and
-- not exact for money; version 2 hashes record_send() bytes), so there is one definition.
CREATE OR REPLACE FUNCTION syncguard.row_values(p_schema text, p_table text, p_bucket bigint, p_keys text[])
RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- {key: hash} of one bucket.
CREATE OR REPLACE FUNCTION syncguard._row_list(p_reg integer, p_bucket bigint)
RETURNS jsonb LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT coalesce(jsonb_object_agg(b.key_text, b.row_hash::text), '{}') FROM syncguard._bucket_rows(p_reg, p_bucket, NULL) b $function$;

-- The rows of one bucket (or only the given keys of it): key text, row hash, the key columns'
-- values and the registration's columns' values as text, under the pinned settings.
-- A row without a key is named md5(content)#occurrence, and its "key value" is the md5.
CREATE OR REPLACE FUNCTION syncguard._bucket_rows(p_reg integer, p_bucket bigint, p_keys text[])
RETURNS TABLE(key_text text, row_hash bigint, key_values text[], column_values text[]) LANGUAGE plpgsql STABLE
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' AS $function$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  v_canon text := replace(syncguard._hash_expr(r, 'sg_t'), 'syncguard.row_hash(', '(');
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
END $function$;

-- The FROM clause and predicate that read one bucket of a registration through its key index
-- (integer and range buckets; a hash bucket needs a full scan).
-- A range bucket's membership is stated inline, as record comparisons over the key type
-- (bounds[b] <= ROW(key)::key_<id> < bounds[b+1], exactly "bucket_of_<id>(key) = b"): calling the
-- bucket function, an index lookup in the bounds table, cost ~60 us a row under the probe's SHARE
-- lock (a 1,000-row bucket outlasted the 50 ms hold limit). The ROW(...) comparison over the
-- table's columns stays in front, so the planner still reads only the bucket's range of the key
-- index.
CREATE OR REPLACE FUNCTION syncguard._bucket_source(r syncguard.registration, p_bucket bigint)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- The publisher's registration of a table, or an error.
-- A table without a key is accepted too: its rows are named by their content (_bucket_rows).
CREATE OR REPLACE FUNCTION syncguard._publisher_reg(p_schema text, p_table text)
RETURNS syncguard.registration LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- The fields of a record's text as record_out writes it ('(1,"a b",)': '1', 'a b', NULL), or
-- NULL when the text is not of that form.
CREATE OR REPLACE FUNCTION syncguard._record_fields(p text)
RETURNS text[] LANGUAGE plpgsql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_in text;
  v_out text[] := '{}';
  m text[];
BEGIN
  IF p IS NULL OR length(p) < 2 OR left(p, 1) <> '(' OR right(p, 1) <> ')' THEN
    RETURN NULL;
  END IF;
  v_in := substr(p, 2, length(p) - 2) || ',';
  IF v_in !~ '^(("([^"\\]|""|\\.)*"|[^,"\\()]*),)+$' THEN
    RETURN NULL;
  END IF;
  FOR m IN SELECT regexp_matches(v_in, '("(?:[^"\\]|""|\\.)*"|[^,"\\()]*),', 'g') LOOP
    v_out := v_out || CASE WHEN m[1] = '' THEN NULL
                           WHEN left(m[1], 1) = '"'
                             THEN regexp_replace(replace(substr(m[1], 2, length(m[1]) - 2), '""', '"'), '\\(.)', '\1', 'g')
                           ELSE m[1] END;
  END LOOP;
  RETURN v_out;
END $function$;

-- How long an inspection is kept: longer than a plan may live (the CLI allows 30 days).
CREATE OR REPLACE FUNCTION syncguard._inspection_keep()
RETURNS interval LANGUAGE sql IMMUTABLE
AS $function$ SELECT interval '31 days' $function$;
