-- syncguard node schema 0008: what a verification reads from each node.
-- Both functions are STABLE, so each reads one snapshot; the verifier calls them inside a
-- REPEATABLE READ transaction so that the detail it asks for later matches the sums it compared.

-- Per registration of this node: fingerprint, whether the first sweep finished, the dirty buckets
-- (with the age of their oldest mark in ms) and never-computed buckets, and sums over ranges of p_width consecutive bucket ids of the buckets
-- that are clean and computed: {range: [buckets, rows, hash_sum]}, numbers as text.
CREATE FUNCTION syncguard.verify_ranges(p_width bigint) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
      'table', format('%s.%s', r.schema_name, r.table_name),
      'fingerprint', r.fingerprint,
      'swept', s.first_finished_at IS NOT NULL,
      'dirty', (SELECT coalesce(jsonb_object_agg(x.bucket, x.age_ms), '{}') FROM (
                  SELECT d.bucket::text AS bucket, floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint AS age_ms
                    FROM syncguard.dirty d WHERE d.reg_id = r.reg_id GROUP BY d.bucket) x),
      'uncomputed', (SELECT coalesce(jsonb_agg(b.bucket::text), '[]') FROM syncguard.bucket b
                      WHERE b.reg_id = r.reg_id AND b.row_count IS NULL),
      'ranges', (SELECT coalesce(jsonb_object_agg(x.rg, jsonb_build_array(x.n::text, x.rows::text, x.s::text)), '{}')
                   FROM (SELECT syncguard.int_bucket(b.bucket, p_width) AS rg, count(*) AS n, sum(b.row_count) AS rows, sum(b.hash_sum) AS s
                           FROM syncguard.bucket b
                          WHERE b.reg_id = r.reg_id AND b.row_count IS NOT NULL
                            AND NOT EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = b.reg_id AND d.bucket = b.bucket)
                          GROUP BY 1) x))
    ORDER BY r.schema_name, r.table_name), '[]')
  FROM syncguard.registration r LEFT JOIN syncguard.sweep s ON s.reg_id = r.reg_id
  WHERE r.node_id = syncguard.node_id()
$$;

-- Bucket detail of one table: the buckets in the given ranges (p_width as for verify_ranges), or
-- the given buckets when p_ranges is NULL, as {swept, values: {bucket: [rows, hash_sum]} for the
-- clean computed ones, dirty: [...], uncomputed: [...]}. A bucket in none of them is empty (once
-- the first sweep finished).
CREATE FUNCTION syncguard.verify_buckets(p_schema text, p_table text, p_width bigint, p_ranges bigint[], p_buckets bigint[] DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  WITH r AS (
    SELECT g.reg_id FROM syncguard.registration g
     WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table
  ), wanted AS (
    SELECT b.bucket, b.row_count, b.hash_sum,
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
    'swept', EXISTS (SELECT 1 FROM syncguard.sweep s JOIN r ON r.reg_id = s.reg_id WHERE s.first_finished_at IS NOT NULL),
    'values', (SELECT coalesce(jsonb_object_agg(w.bucket::text, jsonb_build_array(w.row_count::text, w.hash_sum::text)), '{}')
                 FROM wanted w WHERE w.row_count IS NOT NULL AND NOT w.dirty),
    'dirty', (SELECT coalesce(jsonb_agg(m.bucket::text), '[]') FROM marks m),
    'uncomputed', (SELECT coalesce(jsonb_agg(w.bucket::text), '[]') FROM wanted w WHERE w.row_count IS NULL AND NOT w.dirty))
$$;

-- Local (non-replicated) writes recorded on this node's monitored tables: how many, and the most
-- recent p_limit as {table, bucket, at, role, applicationName}.
CREATE FUNCTION syncguard.local_writes(p_limit integer) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
    'count', (SELECT count(*) FROM syncguard.local_write w JOIN syncguard.registration r
               ON r.reg_id = w.reg_id AND r.node_id = syncguard.node_id()),
    'recent', (SELECT coalesce(jsonb_agg(x.o ORDER BY x.at DESC), '[]') FROM (
                 SELECT w.written_at AS at, jsonb_build_object(
                          'table', format('%s.%s', r.schema_name, r.table_name), 'bucket', w.bucket::text,
                          'at', w.written_at, 'role', w.role, 'applicationName', w.application_name) AS o
                   FROM syncguard.local_write w JOIN syncguard.registration r
                     ON r.reg_id = w.reg_id AND r.node_id = syncguard.node_id()
                  ORDER BY w.written_at DESC LIMIT p_limit) x))
$$;

-- What the parity checks need, per registration of this node: the table's columns now, whether
-- the registration's publications still publish it (publisher), the sequences behind its columns
-- with their last values, and the largest key of an integer key.
CREATE FUNCTION syncguard.parity_info() RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_out jsonb := '[]';
  v_max text;
  v_seqs jsonb;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration WHERE node_id = syncguard.node_id() ORDER BY schema_name, table_name LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN
      v_out := v_out || jsonb_build_object('table', format('%s.%s', r.schema_name, r.table_name), 'exists', false);
      CONTINUE;
    END IF;
    v_max := NULL;
    IF r.scheme = 'int' THEN
      EXECUTE format('SELECT max(%I)::text FROM %I.%I', r.key_columns[1], r.schema_name, r.table_name) INTO v_max;
    END IF;
    SELECT coalesce(jsonb_agg(jsonb_build_object('column', a.attname, 'sequence', s.schemaname || '.' || s.sequencename,
             'lastValue', s.last_value::text)), '[]')
      INTO v_seqs
      FROM pg_attribute a
      JOIN pg_sequences s ON format('%I.%I', s.schemaname, s.sequencename) = pg_get_serial_sequence(format('%I.%I', r.schema_name, r.table_name), a.attname)
     WHERE a.attrelid = r.relid AND a.attnum > 0 AND NOT a.attisdropped;
    v_out := v_out || jsonb_build_object(
      'table', format('%s.%s', r.schema_name, r.table_name),
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
END
$$;

-- Buckets of one table hashed live from the table itself, {bucket: [rows, hash_sum]}: the
-- verifier's fallback for buckets that stay dirty too long to wait for the drain.
CREATE FUNCTION syncguard.verify_live(p_schema text, p_table text, p_buckets bigint[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_object_agg(c.bucket::text, jsonb_build_array(c.row_count::text, c.hash_sum::text)), '{}')
    FROM syncguard.registration r, syncguard.compute_buckets(r.reg_id, p_buckets) c
   WHERE r.node_id = syncguard.node_id() AND r.schema_name = p_schema AND r.table_name = p_table
$$;
