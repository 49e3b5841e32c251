-- syncguard node schema 0011: registrations that know when they no longer hold.
--   - describe_table() says whether a table takes part in inheritance or partitioning; such tables
--     are refused (statement triggers on a leaf do not fire for statements on its parent).
--   - A registration keeps the key columns' collations (a key that sorts differently on the two
--     nodes puts rows into different range buckets) and the table's columns at registration, so
--     verification can tell a column added since then.
--   - health() lists, per registration, everything that makes its catalogue untrustworthy: the
--     table dropped or replaced, a trigger missing, disabled or demoted from ALWAYS, statement
--     triggers on a table that now receives replicated changes, key or hashed columns changed, a
--     recorded fault. Verification reports such a table as not comparable, with the fix.

ALTER TABLE syncguard.registration ADD COLUMN key_collations text[];
ALTER TABLE syncguard.registration ADD COLUMN table_columns name[];

-- Whether a table is a partition, an inheritance child, or has children or partitions.
CREATE FUNCTION syncguard._inheritance(p_relid oid) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN c.relkind = 'p' THEN 'partitioned'
              WHEN c.relispartition THEN 'partition'
              WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = p_relid) THEN 'child'
              WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = p_relid) THEN 'parent'
              ELSE 'none' END
    FROM pg_class c WHERE c.oid = p_relid
$$;

-- The collation name of each column (NULL for types without collation), for key comparisons.
CREATE FUNCTION syncguard._collations(p_relid oid, p_columns name[]) RETURNS text[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT array_agg((SELECT co.collname::text FROM pg_collation co WHERE co.oid = a.attcollation) ORDER BY u.o)
    FROM unnest(p_columns) WITH ORDINALITY u(c, o)
    LEFT JOIN pg_attribute a ON a.attrelid = p_relid AND a.attname = u.c AND a.attnum > 0 AND NOT a.attisdropped
$$;

CREATE OR REPLACE FUNCTION syncguard.describe_table(p_schema text, p_table text, p_publications text[] DEFAULT '{}')
RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_relid oid;
  v_kind "char";
  v_key jsonb;
  v_cols jsonb;
  v_pub jsonb := NULL;
BEGIN
  SELECT c.oid, c.relkind INTO v_relid, v_kind
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
   WHERE n.nspname = p_schema AND c.relname = p_table;
  IF v_relid IS NULL THEN
    RETURN NULL;
  END IF;

  SELECT jsonb_build_object(
           'kind', CASE WHEN i.indisprimary THEN 'primary' ELSE 'unique' END,
           'columns', (SELECT jsonb_agg(a.attname ORDER BY k.o) FROM unnest(i.indkey) WITH ORDINALITY k(attnum, o)
                         JOIN pg_attribute a ON a.attrelid = v_relid AND a.attnum = k.attnum))
    INTO v_key
    FROM pg_index i
   WHERE i.indrelid = v_relid AND i.indisunique AND i.indisvalid AND i.indpred IS NULL
     AND i.indexprs IS NULL
     AND NOT EXISTS (SELECT 1 FROM unnest(i.indkey) k(attnum)
                       JOIN pg_attribute a ON a.attrelid = v_relid AND a.attnum = k.attnum
                      WHERE NOT a.attnotnull)
   ORDER BY i.indisprimary DESC, i.indnatts, i.indexrelid
   LIMIT 1;

  SELECT jsonb_agg(jsonb_build_object(
           'name', a.attname,
           'type', format_type(a.atttypid, a.atttypmod),
           'baseType', format_type(coalesce(nullif(t.typbasetype, 0), a.atttypid), NULL),
           'collation', CASE WHEN a.attcollation <> 0 THEN (SELECT co.collname FROM pg_collation co WHERE co.oid = a.attcollation) END,
           'generated', a.attgenerated <> '',
           'notNull', a.attnotnull) ORDER BY a.attnum)
    INTO v_cols
    FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
   WHERE a.attrelid = v_relid AND a.attnum > 0 AND NOT a.attisdropped;

  IF cardinality(p_publications) > 0 THEN
    v_pub := syncguard._publication_info(v_relid, p_publications);
  END IF;

  RETURN jsonb_build_object(
    'relid', v_relid,
    'schema', p_schema,
    'table', p_table,
    'relkind', v_kind,
    'inheritance', syncguard._inheritance(v_relid),
    'key', v_key,
    'columns', coalesce(v_cols, '[]'::jsonb),
    'publication', v_pub);
END
$$;

-- As in 0004, and: tables in an inheritance or partition tree are refused; the key columns'
-- collations must be the configured ones; the table's columns are kept; registering a table that
-- is registered with another configuration says so.
CREATE OR REPLACE FUNCTION syncguard.register_table(p_config jsonb, p_role text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_desc jsonb;
  v_existing syncguard.registration;
  v_pub jsonb;
  r syncguard.registration;
  v_col record;
  v_name text := format('%I.%I', p_config->>'schema', p_config->>'table');
BEGIN
  IF p_role NOT IN ('publisher', 'subscriber') THEN
    RAISE EXCEPTION 'node role must be publisher or subscriber, got %', p_role USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_desc := syncguard.describe_table(p_config->>'schema', p_config->>'table', '{}');
  IF v_desc IS NULL THEN
    RAISE EXCEPTION 'table % does not exist on this node', v_name USING ERRCODE = 'undefined_table';
  END IF;

  SELECT * INTO v_existing FROM syncguard.registration
   WHERE node_id = syncguard.node_id() AND schema_name = p_config->>'schema' AND table_name = p_config->>'table';
  IF FOUND THEN
    IF v_existing.fingerprint = p_config->>'fingerprint' AND v_existing.node_role = p_role THEN
      RETURN to_jsonb(v_existing);
    END IF;
    RAISE EXCEPTION 'table % is already registered on this node as % with fingerprint % (given: % %); run syncguard unregister first to change it',
      v_name, v_existing.node_role, v_existing.fingerprint, p_role, p_config->>'fingerprint'
      USING ERRCODE = 'duplicate_object';
  END IF;

  IF v_desc->>'relkind' <> 'r' OR v_desc->>'inheritance' <> 'none' THEN
    RAISE EXCEPTION '% is % on this node; partitioned tables, partitions, inheritance parents and children, views and foreign tables are not supported yet',
      v_name, CASE WHEN v_desc->>'inheritance' <> 'none' THEN 'in an inheritance or partition tree (' || (v_desc->>'inheritance') || ')'
                   ELSE 'not a plain table (relkind ' || (v_desc->>'relkind') || ')' END
      USING ERRCODE = 'wrong_object_type';
  END IF;
  IF v_desc->'key'->'columns' IS DISTINCT FROM p_config->'keyColumns' THEN
    RAISE EXCEPTION 'key of % on this node is %, the registration expects %',
      v_name, coalesce(v_desc->'key'->>'columns', 'none'), p_config->>'keyColumns'
      USING ERRCODE = 'invalid_table_definition';
  END IF;
  IF p_config ? 'keyCollations' AND to_jsonb(syncguard._collations((v_desc->>'relid')::oid,
       ARRAY(SELECT jsonb_array_elements_text(p_config->'keyColumns'))::name[])) IS DISTINCT FROM p_config->'keyCollations' THEN
    RAISE EXCEPTION 'key collations of % on this node are %, the registration expects %', v_name,
      to_jsonb(syncguard._collations((v_desc->>'relid')::oid, ARRAY(SELECT jsonb_array_elements_text(p_config->'keyColumns'))::name[])),
      p_config->'keyCollations' USING ERRCODE = 'invalid_table_definition';
  END IF;
  FOR v_col IN
    SELECT c.name, c.type FROM jsonb_to_recordset(
      (SELECT jsonb_agg(jsonb_build_object('name', n, 'type', t)) FROM
         (SELECT jsonb_array_elements_text(p_config->'columns') n, jsonb_array_elements_text(p_config->'columnTypes') t
          UNION ALL
          SELECT jsonb_array_elements_text(p_config->'keyColumns'), jsonb_array_elements_text(p_config->'keyTypes')) x))
      AS c(name text, type text)
  LOOP
    IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_desc->'columns') d
                    WHERE d->>'name' = v_col.name AND d->>'type' = v_col.type AND NOT (d->>'generated')::boolean) THEN
      RAISE EXCEPTION 'column % of type % is not a plain column of % on this node', quote_ident(v_col.name), v_col.type, v_name
        USING ERRCODE = 'undefined_column';
    END IF;
  END LOOP;

  IF p_role = 'publisher' AND jsonb_array_length(coalesce(p_config->'publications', '[]')) > 0 THEN
    v_pub := syncguard._publication_info((v_desc->>'relid')::oid,
               ARRAY(SELECT jsonb_array_elements_text(p_config->'publications')));
    IF NOT (v_pub->>'published')::boolean THEN
      RAISE EXCEPTION 'table % is not in publication(s) %', v_name, p_config->>'publications' USING ERRCODE = 'undefined_object';
    END IF;
  END IF;

  INSERT INTO syncguard.registration (relid, schema_name, table_name, node_role, key_columns, key_types,
      scheme, bucket_width, bucket_count, bounds, columns, column_types, publications, row_filter,
      hash_version, fingerprint, key_collations, table_columns)
  VALUES ((v_desc->>'relid')::oid, p_config->>'schema', p_config->>'table', p_role,
      ARRAY(SELECT jsonb_array_elements_text(p_config->'keyColumns')),
      ARRAY(SELECT jsonb_array_elements_text(p_config->'keyTypes')),
      p_config->>'scheme', (p_config->>'bucketWidth')::bigint, (p_config->>'bucketCount')::integer,
      CASE WHEN p_config->>'scheme' = 'range' THEN coalesce(p_config->'bounds', '[]') END,
      ARRAY(SELECT jsonb_array_elements_text(p_config->'columns')),
      ARRAY(SELECT jsonb_array_elements_text(p_config->'columnTypes')),
      ARRAY(SELECT jsonb_array_elements_text(coalesce(p_config->'publications', '[]'))),
      v_pub->>'rowFilter', (p_config->>'hashVersion')::integer, p_config->>'fingerprint',
      syncguard._collations((v_desc->>'relid')::oid, ARRAY(SELECT jsonb_array_elements_text(p_config->'keyColumns'))::name[]),
      ARRAY(SELECT d->>'name' FROM jsonb_array_elements(v_desc->'columns') d)::name[])
  RETURNING * INTO r;

  IF r.scheme = 'range' AND r.bucket_count <> jsonb_array_length(r.bounds) + 1 THEN
    RAISE EXCEPTION 'range registration has % bounds but bucket count %', jsonb_array_length(r.bounds), r.bucket_count
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM syncguard._install_triggers(r);
  RETURN to_jsonb(r);
END
$$;

-- Everything that makes one registration's catalogue untrustworthy, as messages that say what
-- happened and what to do; empty when the registration holds.
CREATE FUNCTION syncguard._problems(r syncguard.registration) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_name text := format('%I.%I', r.schema_name, r.table_name);
  v_now oid := to_regclass(v_name);
  v_out text[] := '{}';
  v_row boolean;
  v_t record;
  v_f record;
  v_c record;
  v_fix text := format('; re-register it: syncguard unregister --table %s, then syncguard register --table %s', v_name, v_name);
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN
    RETURN ARRAY[CASE WHEN v_now IS NULL THEN format('the table was dropped on this node%s', v_fix)
                      ELSE format('the table was dropped on this node and %s is a new table without syncguard triggers%s', v_name, v_fix) END];
  END IF;
  IF v_now IS DISTINCT FROM r.relid THEN
    v_out := v_out || format('the registered table is now named %s (renamed), and %s %s%s', r.relid::regclass, v_name,
                             CASE WHEN v_now IS NULL THEN 'does not exist' ELSE 'is another table' END, v_fix);
    RETURN v_out;
  END IF;
  IF syncguard._inheritance(r.relid) <> 'none' THEN
    v_out := v_out || format('the table is now in an inheritance or partition tree (%s), which syncguard does not support yet',
                             syncguard._inheritance(r.relid));
  END IF;
  v_row := syncguard._row_triggers(r);
  FOR v_t IN
    SELECT n.name, t.tgenabled, t.tgfoid, (t.tgtype::integer & 1) = 1 AS is_row
      FROM unnest(ARRAY['syncguard_insert', 'syncguard_update', 'syncguard_delete', 'syncguard_truncate']) n(name)
      LEFT JOIN pg_trigger t ON t.tgrelid = r.relid AND t.tgname = n.name
  LOOP
    IF v_t.tgenabled IS NULL THEN
      v_out := v_out || format('trigger %s is missing, so changes are not tracked%s', v_t.name, v_fix);
    ELSIF v_t.tgenabled <> 'A' THEN
      v_out := v_out || format('trigger %s is %s, not ENABLE ALWAYS, so %s changes are not tracked (ALTER TABLE ... ENABLE TRIGGER ALL and pg_restore --disable-triggers do this); fix: ALTER TABLE %s ENABLE ALWAYS TRIGGER %s, then syncguard drain --full-resweep on this node',
                               v_t.name, CASE v_t.tgenabled WHEN 'D' THEN 'disabled' WHEN 'O' THEN 'enabled for local writes only' ELSE 'enabled for replicated changes only' END,
                               CASE v_t.tgenabled WHEN 'D' THEN 'all' WHEN 'O' THEN 'replicated' ELSE 'local' END, v_name, v_t.name);
    ELSIF v_t.name <> 'syncguard_truncate' AND v_t.is_row <> v_row THEN
      v_out := v_out || format('the table %s replicated changes on this node, and its triggers are %s-level%s',
                               CASE WHEN v_row THEN 'now receives' ELSE 'no longer receives' END,
                               CASE WHEN v_t.is_row THEN 'row' ELSE 'statement' END, v_fix);
      EXIT;
    END IF;
  END LOOP;
  FOR v_c IN
    SELECT u.c, u.ty, u.is_key, format_type(a.atttypid, a.atttypmod) AS now_type
      FROM (SELECT k, t, true FROM unnest(r.key_columns, r.key_types) x(k, t)
            UNION ALL SELECT k, t, false FROM unnest(r.columns, r.column_types) x(k, t) WHERE k <> ALL(r.key_columns)) u(c, ty, is_key)
      LEFT JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.c AND a.attnum > 0 AND NOT a.attisdropped
  LOOP
    IF v_c.now_type IS NULL THEN
      v_out := v_out || format('%s column %I no longer exists (dropped or renamed)%s', CASE WHEN v_c.is_key THEN 'key' ELSE 'hashed' END, v_c.c, v_fix);
    ELSIF v_c.now_type <> v_c.ty THEN
      v_out := v_out || format('%s column %I is now %s, registered as %s%s', CASE WHEN v_c.is_key THEN 'key' ELSE 'hashed' END,
                               v_c.c, v_c.now_type, v_c.ty, v_fix);
    END IF;
  END LOOP;
  IF r.key_collations IS NOT NULL AND syncguard._collations(r.relid, r.key_columns) IS DISTINCT FROM r.key_collations THEN
    v_out := v_out || format('the key collations are now %s, registered as %s%s', syncguard._collations(r.relid, r.key_columns), r.key_collations, v_fix);
  END IF;
  FOR v_f IN SELECT * FROM syncguard.fault f WHERE f.reg_id = r.reg_id ORDER BY f.kind LOOP
    v_out := v_out || format('%s since %s: %s (SQLSTATE %s)%s',
                             CASE WHEN v_f.kind = 'trigger' THEN 'a trigger could not mark changes' ELSE 'the drain could not recompute buckets' END,
                             v_f.at, v_f.message, v_f.sqlstate, v_fix);
  END LOOP;
  RETURN v_out;
END
$$;

-- Per registration of this node: its role, problems, and the table's columns now and at
-- registration (so the verifier can tell columns added on both sides).
CREATE FUNCTION syncguard.health() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
      'table', format('%s.%s', r.schema_name, r.table_name),
      'regId', r.reg_id,
      'role', r.node_role,
      'problems', to_jsonb(syncguard._problems(r)),
      'columnsAtRegistration', to_jsonb(r.table_columns),
      'columnsNow', (SELECT coalesce(jsonb_agg(a.attname ORDER BY a.attnum), '[]') FROM pg_attribute a
                      WHERE a.attrelid = r.relid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''))
    ORDER BY r.schema_name, r.table_name), '[]')
  FROM syncguard.registration r WHERE r.node_id = syncguard.node_id()
$$;

-- As in 0008, plus the buckets with recorded local writes.
CREATE OR REPLACE FUNCTION syncguard.verify_ranges(p_width bigint) RETURNS jsonb
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
      'localWrites', (SELECT coalesce(jsonb_agg(DISTINCT w.bucket::text), '[]') FROM syncguard.local_write w WHERE w.reg_id = r.reg_id),
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

-- As in 0008, plus the registration's fingerprint and each clean bucket's generation
-- (values: {bucket: [rows, hash_sum, generation]}).
CREATE OR REPLACE FUNCTION syncguard.verify_buckets(p_schema text, p_table text, p_width bigint, p_ranges bigint[], p_buckets bigint[] DEFAULT NULL)
RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
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
$$;

-- Local (non-replicated) writes on this node's monitored tables: the true totals, and per table
-- and role (the writer's session user, which a writer cannot choose) how many, in how many
-- buckets, first and last (server time), and up to five application names. Grouping by role means
-- no amount of writes by one role can push another role's writes out of the report.
CREATE OR REPLACE FUNCTION syncguard.local_writes(p_limit integer) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  WITH w AS (
    SELECT format('%s.%s', r.schema_name, r.table_name) AS tbl, w.*
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
$$;
