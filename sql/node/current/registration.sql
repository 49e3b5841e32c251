-- Registration: what a table's registration holds (key, columns, bucketing, fingerprint), its
-- checks, and the sampling a range-bucketed registration starts from.

-- Registers a table on this node from a configuration decided by the coordinator (identical on
-- both nodes). Returns the stored registration. Re-registering with the same fingerprint is a
-- no-op; with a different one it is refused.
-- A partitioned table (its whole tree) or a partition on its own may be registered, but not both
-- a partition and one of its ancestors, and no table in an inheritance tree; every leaf gets its
-- TRUNCATE trigger, and the registration keeps its leaves. The key columns' collations must be the
-- configured ones, and the table's columns are kept (so the verifier can tell columns added on
-- both sides).
CREATE OR REPLACE FUNCTION syncguard.register_table(p_config jsonb, p_role text)
RETURNS jsonb LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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

  IF v_desc->>'relkind' NOT IN ('r', 'p') OR v_desc->>'inheritance' IN ('parent', 'child') THEN
    RAISE EXCEPTION '% is % on this node; inheritance parents and children, views and foreign tables are not supported (partitioned tables and partitions are)',
      v_name, CASE WHEN v_desc->>'inheritance' IN ('parent', 'child') THEN 'in an inheritance tree (' || (v_desc->>'inheritance') || ')'
                   ELSE 'not a plain table (relkind ' || (v_desc->>'relkind') || ')' END
      USING ERRCODE = 'wrong_object_type';
  END IF;
  PERFORM syncguard._check_partition_overlap((v_desc->>'relid')::oid, v_name);
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
      hash_version, fingerprint, key_collations, table_columns, partitioning, leaves)
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
      ARRAY(SELECT d->>'name' FROM jsonb_array_elements(v_desc->'columns') d)::name[],
      CASE v_desc->>'inheritance' WHEN 'partitioned' THEN 'root' WHEN 'partition' THEN 'leaf' END,
      syncguard._leaves((v_desc->>'relid')::oid))
  RETURNING * INTO r;

  IF r.scheme = 'range' AND r.bucket_count <> jsonb_array_length(r.bounds) + 1 THEN
    RAISE EXCEPTION 'range registration has % bounds but bucket count %', jsonb_array_length(r.bounds), r.bucket_count
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM syncguard._install_triggers(r);
  PERFORM syncguard._install_leaf_triggers(r);
  RETURN to_jsonb(r);
END $function$;

-- Removes a registration: its triggers, generated objects and state. Returns false when the table
-- was not registered on this node.
-- The triggers of partitions (a leaf's TRUNCATE trigger, and triggers left on a partition detached
-- since) go too, and so do a range registration's bounds table and key type.
CREATE OR REPLACE FUNCTION syncguard.unregister_table(p_schema text, p_table text)
RETURNS boolean LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard.registration;
  v_trigger text;
BEGIN
  SELECT * INTO r FROM syncguard.registration
   WHERE node_id = syncguard.node_id() AND schema_name = p_schema AND table_name = p_table;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN   -- under its current name, if renamed
    FOREACH v_trigger IN ARRAY ARRAY['syncguard_insert', 'syncguard_update', 'syncguard_delete', 'syncguard_truncate'] LOOP
      EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_trigger, r.relid::regclass);
    END LOOP;
  END IF;
  PERFORM syncguard._drop_triggers_elsewhere(r, NULL);
  EXECUTE format('DROP FUNCTION IF EXISTS %s()', syncguard._mark_fn(r.reg_id));
  EXECUTE format('DROP FUNCTION IF EXISTS %s()', syncguard._truncate_fn(r.reg_id));
  IF r.scheme = 'range' THEN
    EXECUTE format('DROP TABLE IF EXISTS %s', syncguard._bounds_table(r.reg_id));
    EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', syncguard._key_type(r.reg_id));
  END IF;
  DELETE FROM syncguard.dirty WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.local_write WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.fault WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.bucket WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.sweep WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.partition_change WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.registration WHERE node_id = r.node_id AND reg_id = r.reg_id;
  RETURN true;
END $function$;

-- Columns, key candidates and publication membership of a table, as jsonb.
CREATE OR REPLACE FUNCTION syncguard.describe_table(p_schema text, p_table text, p_publications text[] DEFAULT '{}'::text[])
RETURNS jsonb LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- How the given publications publish a table: whether at all, which columns (NULL = all) and the
-- row filter that applies (NULL = none). Filters of several publications are OR-ed, as PostgreSQL
-- does; a publication without a filter or column list publishes every row or column.
-- A partitioned table counts as published when the publications carry it as its root or as its
-- leaves (publish_via_partition_root on or off), a partition when they carry it or an ancestor.
-- Each leaf has the row filter of the entries that carry it; when the leaves' filters differ, or
-- some leaf is not published, the row filter is a CASE over tableoid.
CREATE OR REPLACE FUNCTION syncguard._publication_info(p_relid oid, p_publications text[])
RETURNS jsonb LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_found boolean;
  v_cols jsonb := NULL;
  v_filter text := NULL;
  v_rels oid[] := ARRAY(SELECT t.relid::oid FROM pg_partition_tree(p_relid) t
                        UNION SELECT a.relid::oid FROM pg_partition_ancestors(p_relid) a
                        UNION SELECT p_relid);
  v_leaves oid[] := coalesce(syncguard._leaves(p_relid), ARRAY[p_relid]);
  v_per jsonb;
BEGIN
  SELECT count(*) > 0 INTO v_found FROM pg_publication_tables pt
   WHERE pt.pubname = ANY(p_publications) AND (pt.schemaname, pt.tablename) IN (SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(v_rels));
  -- Column lists and row filters exist from PostgreSQL 15 (plpgsql plans this only when it runs).
  IF v_found AND current_setting('server_version_num')::integer >= 150000 THEN
    WITH e AS (
      SELECT pt.pubname, pt.rowfilter, pt.attnames FROM pg_publication_tables pt
       WHERE pt.pubname = ANY(p_publications) AND (pt.schemaname, pt.tablename) IN (SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(v_rels))
    )
    SELECT CASE WHEN bool_or(e.attnames IS NULL) THEN NULL
                ELSE (SELECT jsonb_agg(DISTINCT x ORDER BY x) FROM e e3, unnest(e3.attnames) x) END
      INTO v_cols
      FROM e;
    -- per leaf (a plain table or a partition: itself): the entries that carry it, as itself or
    -- as an ancestor (publish_via_partition_root), OR-ed as for a plain table
    SELECT coalesce(jsonb_agg(jsonb_build_object('leaf', x.leaf, 'published', x.published, 'filter', x.filter) ORDER BY x.leaf), '[]')
      INTO v_per
      FROM (SELECT l.leaf, count(e.pubname) > 0 AS published,
                   CASE WHEN count(e.pubname) = 0 THEN 'false'
                        WHEN bool_or(e.rowfilter IS NULL) THEN NULL
                        ELSE (SELECT string_agg('(' || f.rowfilter || ')', ' OR ' ORDER BY f.first)
                                FROM (SELECT e2.rowfilter, min(e2.pubname) AS first
                                        FROM pg_publication_tables e2 JOIN pg_namespace n2 ON n2.nspname = e2.schemaname
                                        JOIN pg_class c2 ON c2.relnamespace = n2.oid AND c2.relname = e2.tablename
                                       WHERE e2.pubname = ANY(p_publications)
                                         AND (c2.oid = l.leaf OR c2.oid IN (SELECT a.relid FROM pg_partition_ancestors(l.leaf) a))
                                       GROUP BY e2.rowfilter) f) END AS filter
              FROM unnest(v_leaves) l(leaf)
              LEFT JOIN (SELECT pt.pubname, pt.rowfilter, c.oid AS relid FROM pg_publication_tables pt
                           JOIN pg_namespace n ON n.nspname = pt.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = pt.tablename
                          WHERE pt.pubname = ANY(p_publications)) e
                ON e.relid = l.leaf OR e.relid IN (SELECT a.relid FROM pg_partition_ancestors(l.leaf) a)
             GROUP BY l.leaf) x;
    IF NOT EXISTS (SELECT 1 FROM jsonb_array_elements(v_per) f WHERE NOT (f->>'published')::boolean)
       AND (SELECT count(DISTINCT coalesce(f->>'filter', chr(1))) FROM jsonb_array_elements(v_per) f) <= 1 THEN
      v_filter := v_per->0->>'filter';
    ELSE
      SELECT format('CASE sg_t.tableoid %s ELSE false END',
                    string_agg(format('WHEN %s::pg_catalog.oid THEN (%s)', f->>'leaf', coalesce(f->>'filter', 'true')), ' ' ORDER BY (f->>'leaf')::oid))
        INTO v_filter FROM jsonb_array_elements(v_per) f WHERE (f->>'published')::boolean;
    END IF;
  END IF;
  RETURN jsonb_build_object('published', v_found, 'columns', v_cols, 'rowFilter', v_filter);
END $function$;

-- Exact row count of a table (the hash scheme sizes its modulus from it).
CREATE OR REPLACE FUNCTION syncguard.row_count(p_schema text, p_table text)
RETURNS bigint LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp'
SET row_security TO 'off'
AS $function$
DECLARE
  v_n bigint;
BEGIN
  EXECUTE 'SELECT count(*) FROM ' || syncguard._rel(p_schema, p_table) INTO v_n;
  RETURN v_n;
END $function$;

-- Split points for range buckets: every p_bucket_size-th key in key order (the first key of each
-- bucket but the first), rendered as text under the pinned settings, so the subscriber can store
-- them verbatim and cast them back identically. The table is read through _rel (a partitioned
-- table whole, any other with ONLY).
CREATE OR REPLACE FUNCTION syncguard.sample_bounds(p_schema text, p_table text, p_keys name[], p_bucket_size bigint)
RETURNS jsonb LANGUAGE plpgsql STABLE
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' AS $function$
DECLARE
  v_keys text := (SELECT string_agg(quote_ident(k), ', ' ORDER BY o) FROM unnest(p_keys) WITH ORDINALITY u(k, o));
  v_texts text := (SELECT string_agg(format('format(''%%s'', %I)', k), ', ' ORDER BY o) FROM unnest(p_keys) WITH ORDINALITY u(k, o));
  v_bounds jsonb;
BEGIN
  IF p_bucket_size < 1 THEN
    RAISE EXCEPTION 'bucket size must be at least 1, got %', p_bucket_size USING ERRCODE = 'invalid_parameter_value';
  END IF;
  EXECUTE format(
    'SELECT coalesce(jsonb_agg(jsonb_build_array(%s) ORDER BY sg_rn), ''[]'') FROM ('
    'SELECT %s, row_number() OVER (ORDER BY %s) AS sg_rn FROM %s) sg_s '
    'WHERE sg_rn > 1 AND (sg_rn - 1) %% $1 = 0',
    v_texts, v_keys, v_keys, syncguard._rel(p_schema, p_table))
  INTO v_bounds USING p_bucket_size;
  RETURN v_bounds;
END $function$;

-- Gives this node a new identity; for a node cloned physically from its peer, which would
-- otherwise share the peer's node_id. Rows keyed by the old identity move to the new one.
CREATE OR REPLACE FUNCTION syncguard.reidentify()
RETURNS uuid LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_old uuid := syncguard.node_id();
  v_new uuid := gen_random_uuid();
BEGIN
  EXECUTE format('CREATE OR REPLACE FUNCTION syncguard.node_id() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
                 format('SELECT %L::uuid', v_new));
  UPDATE syncguard.migration SET node_id = v_new WHERE node_id = v_old;
  UPDATE syncguard.registration SET node_id = v_new WHERE node_id = v_old;
  RETURN v_new;
END $function$;

CREATE OR REPLACE FUNCTION syncguard._content_sig(r syncguard.registration)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  WITH RECURSIVE cols AS (
    SELECT a.attname, a.xmin::text AS x, a.atttypid FROM pg_attribute a
     WHERE a.attrelid = r.relid AND a.attname = ANY(r.columns) AND a.attnum > 0 AND NOT a.attisdropped
  ), ty(oid) AS (
    SELECT c.atttypid FROM cols c
    UNION
    SELECT u.o FROM ty JOIN pg_type t ON t.oid = ty.oid
      CROSS JOIN LATERAL (VALUES (t.typbasetype), (t.typelem)) u(o) WHERE u.o <> 0
  )
  SELECT coalesce((SELECT string_agg(format('%s:%s', c.attname, c.x), ',' ORDER BY c.attname) FROM cols c), '')
         || '|' || coalesce((SELECT string_agg(format('%s=%s', e.enumtypid, e.labels), ';' ORDER BY e.enumtypid)
                               FROM (SELECT en.enumtypid, string_agg(en.enumlabel, ',' ORDER BY en.enumsortorder) AS labels
                                       FROM pg_enum en WHERE en.enumtypid IN (SELECT oid FROM ty) GROUP BY en.enumtypid) e), '')
$function$;

-- A registration with the leaves and signatures its catalogue was built against.
CREATE OR REPLACE FUNCTION syncguard._as_built(r syncguard.registration)
RETURNS syncguard.registration LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  s syncguard.catalogue_sig;
BEGIN
  SELECT * INTO s FROM syncguard.catalogue_sig c WHERE c.reg_id = r.reg_id;
  IF FOUND THEN
    r.leaves := s.leaves;
    r.leaf_sig := s.leaf_sig;
    r.content_sig := s.content_sig;
  END IF;
  RETURN r;
END $function$;

-- Records what a registration's catalogue is built against now (r: as built, with the new values).
CREATE OR REPLACE FUNCTION syncguard._set_built(r syncguard.registration)
RETURNS void LANGUAGE sql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  INSERT INTO syncguard.catalogue_sig (reg_id, leaves, leaf_sig, content_sig)
  VALUES (r.reg_id, r.leaves, r.leaf_sig, r.content_sig)
  ON CONFLICT (reg_id) DO UPDATE SET leaves = EXCLUDED.leaves, leaf_sig = EXCLUDED.leaf_sig, content_sig = EXCLUDED.content_sig
$function$;

-- This node's registrations: every column of syncguard.registration (the * is expanded again at
-- each install, so a column a migration adds appears here too).
CREATE OR REPLACE VIEW syncguard.registrations AS
  SELECT * FROM syncguard.registration WHERE node_id = syncguard.node_id();
