-- Verification: the catalogue as verify reads it (an overview, then levels of the bucket tree, then
-- buckets), and what the subscriber reports about local writes.

-- What verify reads first about one registration, whatever else it asks: the table, its
-- fingerprint, whether the first sweep finished, the dirty buckets (with the age of their oldest
-- mark in ms), the never-computed buckets, and the buckets with recorded local writes.
CREATE OR REPLACE FUNCTION syncguard._catalogue_state(r syncguard.registration, s syncguard.sweep)
RETURNS jsonb LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT jsonb_build_object(
      'table', syncguard._table_text(r.schema_name, r.table_name),
      'fingerprint', r.fingerprint,
      'swept', s.first_finished_at IS NOT NULL,
      'dirty', (SELECT coalesce(jsonb_object_agg(x.bucket, x.age_ms), '{}') FROM (
                  SELECT d.bucket::text AS bucket, floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint AS age_ms
                    FROM syncguard.dirty d WHERE d.reg_id = r.reg_id GROUP BY d.bucket) x),
      'uncomputed', (SELECT coalesce(jsonb_agg(b.bucket::text), '[]') FROM syncguard.bucket b
                      WHERE b.reg_id = r.reg_id AND b.row_count IS NULL),
      'localWrites', (SELECT coalesce(jsonb_agg(DISTINCT w.bucket::text), '[]') FROM syncguard.local_write w WHERE w.reg_id = r.reg_id))
$function$;

CREATE OR REPLACE FUNCTION syncguard.verify_overview()
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT coalesce(jsonb_agg(syncguard._catalogue_state(r, s) || jsonb_build_object(
      'totals', (SELECT jsonb_build_array(count(*)::text, coalesce(sum(b.row_count), 0)::text, coalesce(sum(b.hash_sum), 0)::text)
                   FROM syncguard.bucket b
                  WHERE b.reg_id = r.reg_id AND b.row_count IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = b.reg_id AND d.bucket = b.bucket)),
      'lo', (SELECT least(min(x.b), (SELECT min(d.bucket) FROM syncguard.dirty d WHERE d.reg_id = r.reg_id))::text
               FROM (SELECT min(b.bucket) AS b FROM syncguard.bucket b WHERE b.reg_id = r.reg_id) x),
      'hi', (SELECT greatest(max(x.b), (SELECT max(d.bucket) FROM syncguard.dirty d WHERE d.reg_id = r.reg_id))::text
               FROM (SELECT max(b.bucket) AS b FROM syncguard.bucket b WHERE b.reg_id = r.reg_id) x))
    ORDER BY r.schema_name, r.table_name), '[]')
  FROM syncguard.registration r LEFT JOIN syncguard.sweep s ON s.reg_id = r.reg_id
  WHERE r.node_id = syncguard.node_id()
$function$;

-- The ranges of width p_width of one table's clean buckets, within the parent ranges p_parents of
-- width p_parent_width (NULL: every bucket): {range: [buckets, digest]}.
CREATE OR REPLACE FUNCTION syncguard.verify_level(p_schema text, p_table text, p_width bigint, p_parent_width bigint, p_parents bigint[])
RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_reg integer;
  v_out jsonb;
  v_lo bigint[] := ARRAY(SELECT syncguard.int_lo(p.v, p_parent_width) FROM unnest(p_parents) WITH ORDINALITY p(v, o) ORDER BY p.o);
  v_hi bigint[] := ARRAY(SELECT syncguard.int_hi(p.v, p_parent_width) FROM unnest(p_parents) WITH ORDINALITY p(v, o) ORDER BY p.o);
BEGIN
  IF p_width < 1 OR (p_parents IS NOT NULL AND (p_parent_width IS NULL OR p_parent_width < p_width)) THEN
    RAISE EXCEPTION 'verify_level needs a width of at least 1 and a parent width at least as large, got % and %', p_width, p_parent_width
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT g.reg_id INTO v_reg FROM syncguard.registration g
   WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table;
  IF v_reg IS NULL THEN
    RETURN NULL;
  END IF;
  WITH src AS (
    -- every bucket, or those of the parent ranges, each found through the catalogue's key
    SELECT b.bucket, b.row_count, b.hash_sum FROM syncguard.bucket b
     WHERE p_parents IS NULL AND b.reg_id = v_reg AND b.row_count IS NOT NULL
    UNION ALL
    -- each parent's span read through the catalogue's primary key (OFFSET 0 keeps the planner
    -- from flattening the lateral read into one scan of the whole catalogue per parent)
    SELECT b.bucket, b.row_count, b.hash_sum
      FROM unnest(v_lo, v_hi) x(lo, hi)
     CROSS JOIN LATERAL (SELECT b.bucket, b.row_count, b.hash_sum FROM syncguard.bucket b
                          WHERE b.reg_id = v_reg AND b.bucket >= x.lo AND b.bucket <= x.hi AND b.row_count IS NOT NULL
                         OFFSET 0) b
     WHERE p_parents IS NOT NULL
  ), clean AS (
    SELECT syncguard.int_bucket(s.bucket, p_width) AS rg, s.row_count, s.hash_sum FROM src s
     WHERE NOT EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = v_reg AND d.bucket = s.bucket)
  )
  SELECT coalesce(jsonb_object_agg(x.rg::text, jsonb_build_array(x.n,
           left(encode(sha256(convert_to(x.rows::text || ':' || x.total::text, 'UTF8')), 'base64'), 11))), '{}')
    INTO v_out
    FROM (SELECT c.rg, count(*) AS n, sum(c.row_count) AS rows, sum(c.hash_sum) AS total FROM clean c GROUP BY c.rg) x;
  RETURN v_out;
END $function$;

-- Per registration of this node: its _catalogue_state (fingerprint, whether the first sweep
-- finished, the dirty buckets with the age of their oldest mark in ms, the never-computed buckets,
-- the buckets with recorded local writes), and sums over ranges of p_width consecutive bucket ids
-- of the buckets that are clean and computed: {range: [buckets, rows, hash_sum]}, numbers as text.
CREATE OR REPLACE FUNCTION syncguard.verify_ranges(p_width bigint)
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT coalesce(jsonb_agg(syncguard._catalogue_state(r, s) || jsonb_build_object(
      'ranges', (SELECT coalesce(jsonb_object_agg(x.rg, jsonb_build_array(x.n::text, x.rows::text, x.s::text)), '{}')
                   FROM (SELECT syncguard.int_bucket(b.bucket, p_width) AS rg, count(*) AS n, sum(b.row_count) AS rows, sum(b.hash_sum) AS s
                           FROM syncguard.bucket b
                          WHERE b.reg_id = r.reg_id AND b.row_count IS NOT NULL
                            AND NOT EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = b.reg_id AND d.bucket = b.bucket)
                          GROUP BY 1) x))
    ORDER BY r.schema_name, r.table_name), '[]')
  FROM syncguard.registration r LEFT JOIN syncguard.sweep s ON s.reg_id = r.reg_id
  WHERE r.node_id = syncguard.node_id()
$function$;

-- Bucket detail of one table: the buckets in the given ranges (p_width as for verify_ranges), or
-- the given buckets when p_ranges is NULL, as {fingerprint, swept, values: {bucket: [rows,
-- hash_sum, generation]} for the clean computed ones, dirty: [...], uncomputed: [...]}. A bucket
-- in none of them is empty (once the first sweep finished). The generation tells verification
-- whether a bucket was recomputed between two rounds (see recompute).
CREATE OR REPLACE FUNCTION syncguard.verify_buckets(p_schema text, p_table text, p_width bigint, p_ranges bigint[], p_buckets bigint[] DEFAULT NULL::bigint[])
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  WITH r AS (
    SELECT g.reg_id, g.fingerprint FROM syncguard.registration g
     WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table
  ), wanted AS (
    SELECT b.bucket, b.row_count, b.hash_sum, b.generation,
           EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = b.reg_id AND d.bucket = b.bucket) AS dirty
      FROM syncguard.bucket b JOIN r ON r.reg_id = b.reg_id
     WHERE CASE WHEN p_ranges IS NULL THEN b.bucket = ANY(p_buckets)
                ELSE syncguard.int_bucket(b.bucket, p_width) = ANY(p_ranges) END
  ), marks AS (
    SELECT DISTINCT d.bucket FROM syncguard.dirty d JOIN r ON r.reg_id = d.reg_id
     WHERE CASE WHEN p_ranges IS NULL THEN d.bucket = ANY(p_buckets)
                ELSE syncguard.int_bucket(d.bucket, p_width) = ANY(p_ranges) END
  )
  SELECT jsonb_build_object(
    'fingerprint', (SELECT r.fingerprint FROM r),
    'swept', EXISTS (SELECT 1 FROM syncguard.sweep s JOIN r ON r.reg_id = s.reg_id WHERE s.first_finished_at IS NOT NULL),
    'values', (SELECT coalesce(jsonb_object_agg(w.bucket::text, jsonb_build_array(w.row_count::text, w.hash_sum::text, w.generation::text)), '{}')
                 FROM wanted w WHERE w.row_count IS NOT NULL AND NOT w.dirty),
    'dirty', (SELECT coalesce(jsonb_agg(m.bucket::text), '[]') FROM marks m),
    'uncomputed', (SELECT coalesce(jsonb_agg(w.bucket::text), '[]') FROM wanted w WHERE w.row_count IS NULL AND NOT w.dirty))
$function$;

-- Local (non-replicated) writes on this node's monitored tables: the true totals, and per table
-- and role (the writer's session user, which a writer cannot choose) how many, in how many
-- buckets, first and last (server time), and up to five application names. Grouping by role means
-- no amount of writes by one role can push another role's writes out of the report.
CREATE OR REPLACE FUNCTION syncguard.local_writes(p_limit integer)
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  WITH w AS (
    SELECT syncguard._table_text(r.schema_name, r.table_name) AS tbl, w.*
      FROM syncguard.local_write w JOIN syncguard.registration r ON r.reg_id = w.reg_id AND r.node_id = syncguard.node_id()
  ), g AS (
    SELECT w.tbl, w.role, count(*) AS writes, count(DISTINCT w.bucket) AS buckets, min(w.written_at) AS first_at,
           max(w.written_at) AS last_at, (array_agg(DISTINCT w.application_name))[1:5] AS apps
      FROM w GROUP BY w.tbl, w.role
  )
  SELECT jsonb_build_object(
    'count', (SELECT count(*) FROM w),
    'transactions', (SELECT count(DISTINCT xid) FROM w),
    'groups', (SELECT coalesce(jsonb_agg(jsonb_build_object(
                  'table', x.tbl, 'role', x.role, 'writes', x.writes, 'buckets', x.buckets,
                  'first', x.first_at, 'last', x.last_at, 'applicationNames', to_jsonb(x.apps)) ORDER BY x.last_at DESC), '[]')
                 FROM (SELECT * FROM g ORDER BY g.last_at DESC LIMIT p_limit) x))
$function$;

-- What the parity checks need, per registration of this node: the table's columns now, whether
-- the registration's publications still publish it (publisher), the sequences behind its columns
-- with their last values, and the largest key of an integer key.
-- Tables are named by _table_text, and read through _rel (a plain table with ONLY).
CREATE OR REPLACE FUNCTION syncguard.parity_info()
RETURNS jsonb LANGUAGE plpgsql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp'
SET row_security TO 'off'
AS $function$
DECLARE
  r syncguard.registration;
  v_out jsonb := '[]';
  v_max text;
  v_seqs jsonb;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration WHERE node_id = syncguard.node_id() ORDER BY schema_name, table_name LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN
      v_out := v_out || jsonb_build_object('table', syncguard._table_text(r.schema_name, r.table_name), 'exists', false);
      CONTINUE;
    END IF;
    v_max := NULL;
    IF r.scheme = 'int' THEN
      EXECUTE format('SELECT max(%I)::text FROM %s', r.key_columns[1], syncguard._rel(r.schema_name, r.table_name)) INTO v_max;
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object('column', a.attname, 'sequence', s.schemaname || '.' || s.sequencename,
             'lastValue', s.last_value::text)), '[]')
      INTO v_seqs
      FROM pg_attribute a
      JOIN pg_sequences s ON format('%I.%I', s.schemaname, s.sequencename) = pg_get_serial_sequence(format('%I.%I', r.schema_name, r.table_name), a.attname)
     WHERE a.attrelid = r.relid AND a.attnum > 0 AND NOT a.attisdropped;
    v_out := v_out || jsonb_build_object(
      'table', syncguard._table_text(r.schema_name, r.table_name),
      'exists', true,
      'role', r.node_role,
      'hashedColumns', to_jsonb(r.columns),
      'columns', (syncguard.describe_table(r.schema_name, r.table_name, '{}'))->'columns',
      'published', CASE WHEN r.node_role = 'publisher' AND cardinality(r.publications) > 0
                        THEN (syncguard._publication_info(r.relid, r.publications)->>'published')::boolean END,
      'keyColumn', CASE WHEN r.scheme = 'int' THEN r.key_columns[1] END,
      'maxKey', v_max,
      'sequences', v_seqs);
  END LOOP;
  RETURN v_out;
END $function$;
