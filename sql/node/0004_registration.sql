-- syncguard node schema 0004: describing, registering and unregistering monitored tables.
-- The coordinator (CLI or Lambda) calls describe_table() on both nodes, decides the key, bucket
-- scheme and column list in its pure core, samples range bounds on the publisher, and then calls
-- register_table() with the identical configuration on both nodes. register_table() re-checks
-- everything against this node's catalogue, so a wrong configuration changes nothing.

-- Columns, key candidates and publication membership of a table, as jsonb.
CREATE FUNCTION syncguard.describe_table(p_schema text, p_table text, p_publications text[] DEFAULT '{}')
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

  -- The primary key, else the narrowest non-partial unique index over NOT NULL plain columns.
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
    'key', v_key,
    'columns', coalesce(v_cols, '[]'::jsonb),
    'publication', v_pub);
END
$$;

-- How the given publications publish a table: whether at all, which columns (NULL = all) and the
-- row filter that applies (NULL = none). Filters of several publications are OR-ed, as PostgreSQL
-- does; a publication without a filter or column list publishes every row or column.
CREATE FUNCTION syncguard._publication_info(p_relid oid, p_publications text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_found boolean;
  v_cols jsonb := NULL;
  v_filter text := NULL;
  v_schema name;
  v_table name;
BEGIN
  SELECT n.nspname, c.relname INTO v_schema, v_table
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = p_relid;
  SELECT count(*) > 0 INTO v_found FROM pg_publication_tables
   WHERE pubname = ANY(p_publications) AND schemaname = v_schema AND tablename = v_table;
  -- Column lists and row filters exist from PostgreSQL 15 (plpgsql plans this only when it runs).
  IF v_found AND current_setting('server_version_num')::integer >= 150000 THEN
    SELECT CASE WHEN bool_or(pt.rowfilter IS NULL) THEN NULL
                ELSE string_agg('(' || pt.rowfilter || ')', ' OR ' ORDER BY pt.pubname) END,
           CASE WHEN bool_or(pt.attnames IS NULL) THEN NULL
                ELSE (SELECT jsonb_agg(DISTINCT x ORDER BY x) FROM pg_publication_tables p2, unnest(p2.attnames) x
                       WHERE p2.pubname = ANY(p_publications) AND p2.schemaname = v_schema AND p2.tablename = v_table) END
      INTO v_filter, v_cols
      FROM pg_publication_tables pt
     WHERE pt.pubname = ANY(p_publications) AND pt.schemaname = v_schema AND pt.tablename = v_table;
  END IF;
  RETURN jsonb_build_object('published', v_found, 'columns', v_cols, 'rowFilter', v_filter);
END
$$;

-- Split points for range buckets: every p_bucket_size-th key in key order, rendered as text under
-- the pinned settings, so the subscriber can store them verbatim and cast them back identically.
CREATE FUNCTION syncguard.sample_bounds(p_schema text, p_table text, p_keys name[], p_bucket_size bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
AS $$
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
    'SELECT %s, row_number() OVER (ORDER BY %s) AS sg_rn FROM %I.%I) sg_s '
    'WHERE sg_rn > 1 AND (sg_rn - 1) %% $1 = 0',
    v_texts, v_keys, v_keys, p_schema, p_table)
  INTO v_bounds USING p_bucket_size;
  RETURN v_bounds;
END
$$;

-- Creates the per-registration objects: the key type and bucket function (range scheme) and the
-- dirty-marking trigger function, then attaches the triggers ENABLE ALWAYS, so they fire for the
-- subscription's apply worker and under session_replication_role = replica as well.
--   publisher:  statement triggers with transition tables (one per event) plus TRUNCATE;
--   subscriber: row triggers (statement triggers never fire for applied changes) plus TRUNCATE.
-- Trigger functions only compute a bucket number and insert into an unlogged table with ON CONFLICT
-- DO NOTHING, naming everything fully qualified, so they have nothing that can raise: an error
-- there would stop replication on a subscriber. See the subscriber branch for why its row trigger
-- is not SECURITY DEFINER.
CREATE FUNCTION syncguard._install_triggers(r syncguard.registration) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tbl text := format('%I.%I', r.schema_name, r.table_name);
  v_fn text := syncguard._mark_fn(r.reg_id);
  v_memo text := 'syncguard.mark_' || r.reg_id;
  v_truncate text := format(
    'INSERT INTO syncguard.dirty (reg_id, bucket, xid) SELECT b.reg_id, b.bucket, pg_catalog.pg_current_xact_id() '
    'FROM syncguard.bucket b WHERE b.reg_id = %s ON CONFLICT DO NOTHING', r.reg_id);
  v_body text;
  v_mark text;
  v_definer boolean := true;
BEGIN
  IF r.scheme = 'range' THEN
    EXECUTE format('CREATE TYPE %s AS (%s)', syncguard._key_type(r.reg_id),
      (SELECT string_agg(format('%I %s%s', k, ty,
                CASE WHEN a.attcollation <> 0 AND a.attcollation <> ty_.typcollation
                     THEN (SELECT format(' COLLATE %I.%I', cn.nspname, co.collname) FROM pg_collation co
                             JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
                     ELSE '' END), ', ' ORDER BY o)
         FROM unnest(r.key_columns, r.key_types) WITH ORDINALITY u(k, ty, o)
         JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = k
         JOIN pg_type ty_ ON ty_.oid = a.atttypid));
    IF r.bucket_count > 1 THEN
      EXECUTE format('CREATE FUNCTION %s(%s) RETURNS bigint LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
        syncguard._bucket_fn(r.reg_id),
        (SELECT string_agg(ty, ', ' ORDER BY o) FROM unnest(r.key_types) WITH ORDINALITY u(ty, o)),
        format('SELECT pg_catalog.width_bucket(ROW(%s)::%s, %s)::bigint',
               (SELECT string_agg('$' || o, ', ' ORDER BY o) FROM unnest(r.key_types) WITH ORDINALITY u(ty, o)),
               syncguard._key_type(r.reg_id), syncguard._bounds_literal(r)));
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s(%s) TO PUBLIC', syncguard._bucket_fn(r.reg_id),
        (SELECT string_agg(ty, ', ' ORDER BY o) FROM unnest(r.key_types) WITH ORDINALITY u(ty, o)));
    END IF;
  END IF;

  IF r.node_role = 'publisher' THEN
    v_body := format($f$
BEGIN
  IF TG_OP = 'INSERT' THEN
    INSERT INTO syncguard.dirty (reg_id, bucket, xid)
    SELECT DISTINCT %1$s, %2$s, pg_catalog.pg_current_xact_id() FROM sg_new ON CONFLICT DO NOTHING;
  ELSIF TG_OP = 'UPDATE' THEN
    INSERT INTO syncguard.dirty (reg_id, bucket, xid)
    SELECT %1$s, sg_b, pg_catalog.pg_current_xact_id()
      FROM (SELECT %3$s AS sg_b FROM sg_old UNION SELECT %2$s FROM sg_new) sg_u ON CONFLICT DO NOTHING;
  ELSIF TG_OP = 'DELETE' THEN
    INSERT INTO syncguard.dirty (reg_id, bucket, xid)
    SELECT DISTINCT %1$s, %3$s, pg_catalog.pg_current_xact_id() FROM sg_old ON CONFLICT DO NOTHING;
  ELSE
    %4$s;
  END IF;
  RETURN NULL;
END$f$, r.reg_id, syncguard._bucket_expr(r, 'sg_new'), syncguard._bucket_expr(r, 'sg_old'), v_truncate);
  ELSE
    -- The subscriber's row trigger runs for every applied row, and a PL/pgSQL call there costs
    -- more than applying the row; SECURITY DEFINER with a SET clause doubles that (measured:
    -- docs/performance.md). So for integer and range buckets it is a plain invoker function with
    -- no SET clause and only qualified names; anyone may insert dirty marks (at worst, extra
    -- recompute work) and nothing else. Without a SET clause it can also keep a memo of the last
    -- bucket it marked in a transaction-local setting (a function with SET clauses reverts every
    -- setting changed inside it), so consecutive rows of one transaction in the same bucket (a
    -- replicated bulk change) skip the insert. Hash buckets render the key as text, which depends
    -- on session settings, so they keep the pinned SECURITY DEFINER function and no memo.
    IF r.scheme = 'hash' THEN
      v_body := format($f$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    %4$s;
    RETURN NULL;
  END IF;
  IF TG_OP <> 'INSERT' THEN
    INSERT INTO syncguard.dirty (reg_id, bucket, xid) VALUES (%1$s, %3$s, pg_catalog.pg_current_xact_id()) ON CONFLICT DO NOTHING;
  END IF;
  IF TG_OP <> 'DELETE' THEN
    INSERT INTO syncguard.dirty (reg_id, bucket, xid) VALUES (%1$s, %2$s, pg_catalog.pg_current_xact_id()) ON CONFLICT DO NOTHING;
  END IF;
  IF pg_catalog.current_setting('session_replication_role') <> 'replica' THEN
    INSERT INTO syncguard.local_write (reg_id, bucket, xid, role, application_name)
    SELECT %1$s, b, pg_catalog.pg_current_xact_id(), session_user, pg_catalog.current_setting('application_name')
      FROM (SELECT CASE WHEN TG_OP <> 'INSERT' THEN %3$s END UNION SELECT CASE WHEN TG_OP <> 'DELETE' THEN %2$s END) u(b)
     WHERE b IS NOT NULL
    ON CONFLICT DO NOTHING;
  END IF;
  RETURN NULL;
END$f$, r.reg_id, syncguard._bucket_expr(r, 'NEW'), syncguard._bucket_expr(r, 'OLD'), v_truncate);
    ELSE
      v_definer := false;
      v_mark := $f$
    sg_m := (%1$s)::pg_catalog.text;
    IF pg_catalog.current_setting(%2$L, true) IS DISTINCT FROM sg_m THEN
      INSERT INTO syncguard.dirty (reg_id, bucket, xid) VALUES (%3$s, sg_m::pg_catalog.int8, pg_catalog.pg_current_xact_id()) ON CONFLICT DO NOTHING;
      IF pg_catalog.current_setting('session_replication_role') OPERATOR(pg_catalog.<>) 'replica' THEN
        INSERT INTO syncguard.local_write (reg_id, bucket, xid, role, application_name)
        VALUES (%3$s, sg_m::pg_catalog.int8, pg_catalog.pg_current_xact_id(), session_user, pg_catalog.current_setting('application_name'))
        ON CONFLICT DO NOTHING;
      END IF;
      PERFORM pg_catalog.set_config(%2$L, sg_m, true);
    END IF;$f$;
      v_body := format($f$
DECLARE
  sg_m pg_catalog.text;
BEGIN
  IF TG_OP OPERATOR(pg_catalog.<>) 'INSERT' THEN%s
  END IF;
  IF TG_OP OPERATOR(pg_catalog.<>) 'DELETE' THEN%s
  END IF;
  RETURN NULL;
END$f$, format(v_mark, syncguard._bucket_expr(r, 'OLD'), v_memo, r.reg_id),
        format(v_mark, syncguard._bucket_expr(r, 'NEW'), v_memo, r.reg_id));
    END IF;
  END IF;

  IF v_definer THEN
    EXECUTE format('CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER %s AS %L',
                   v_fn, syncguard._pinned_settings(), v_body);
  ELSE
    EXECUTE format('CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql AS %L', v_fn, v_body);
    -- TRUNCATE reads the catalogue, which only the owner may: a separate definer function.
    EXECUTE format('CREATE FUNCTION %s() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER %s AS %L',
                   syncguard._truncate_fn(r.reg_id), syncguard._pinned_settings(),
                   format('BEGIN %s; RETURN NULL; END', v_truncate));
    EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', syncguard._truncate_fn(r.reg_id));
  END IF;
  EXECUTE format('REVOKE ALL ON FUNCTION %s() FROM PUBLIC', v_fn);

  IF r.node_role = 'publisher' THEN
    EXECUTE format('CREATE TRIGGER syncguard_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS sg_new FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('CREATE TRIGGER syncguard_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS sg_old NEW TABLE AS sg_new FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('CREATE TRIGGER syncguard_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS sg_old FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER syncguard_insert, ENABLE ALWAYS TRIGGER syncguard_update, ENABLE ALWAYS TRIGGER syncguard_delete', v_tbl);
  ELSE
    EXECUTE format('CREATE TRIGGER syncguard_insert AFTER INSERT ON %s FOR EACH ROW EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('CREATE TRIGGER syncguard_update AFTER UPDATE ON %s FOR EACH ROW EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('CREATE TRIGGER syncguard_delete AFTER DELETE ON %s FOR EACH ROW EXECUTE FUNCTION %s()', v_tbl, v_fn);
    EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER syncguard_insert, ENABLE ALWAYS TRIGGER syncguard_update, ENABLE ALWAYS TRIGGER syncguard_delete', v_tbl);
  END IF;
  EXECUTE format('CREATE TRIGGER syncguard_truncate AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()',
                 v_tbl, CASE WHEN v_definer THEN v_fn ELSE syncguard._truncate_fn(r.reg_id) END);
  EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER syncguard_truncate', v_tbl);
END
$$;

-- Registers a table on this node from a configuration decided by the coordinator (identical on
-- both nodes). Returns the stored registration. Re-registering with the same fingerprint is a
-- no-op; with a different one it is refused.
CREATE FUNCTION syncguard.register_table(p_config jsonb, p_role text) RETURNS jsonb
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_desc jsonb;
  v_existing syncguard.registration;
  v_pub jsonb;
  r syncguard.registration;
  v_col record;
BEGIN
  IF p_role NOT IN ('publisher', 'subscriber') THEN
    RAISE EXCEPTION 'node role must be publisher or subscriber, got %', p_role USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_desc := syncguard.describe_table(p_config->>'schema', p_config->>'table', '{}');
  IF v_desc IS NULL THEN
    RAISE EXCEPTION 'table %.% does not exist on this node', quote_ident(p_config->>'schema'), quote_ident(p_config->>'table')
      USING ERRCODE = 'undefined_table';
  END IF;

  SELECT * INTO v_existing FROM syncguard.registration
   WHERE node_id = syncguard.node_id() AND schema_name = p_config->>'schema' AND table_name = p_config->>'table';
  IF FOUND THEN
    IF v_existing.fingerprint = p_config->>'fingerprint' AND v_existing.node_role = p_role THEN
      RETURN to_jsonb(v_existing);
    END IF;
    RAISE EXCEPTION 'table %.% is already registered with fingerprint % (given %); unregister it first',
      quote_ident(v_existing.schema_name), quote_ident(v_existing.table_name), v_existing.fingerprint, p_config->>'fingerprint'
      USING ERRCODE = 'duplicate_object';
  END IF;

  -- The key must be this table's key, with the same types.
  IF v_desc->'key'->'columns' IS DISTINCT FROM p_config->'keyColumns' THEN
    RAISE EXCEPTION 'key of %.% on this node is %, the registration expects %',
      quote_ident(p_config->>'schema'), quote_ident(p_config->>'table'), coalesce(v_desc->'key'->>'columns', 'none'), p_config->>'keyColumns'
      USING ERRCODE = 'invalid_table_definition';
  END IF;
  -- Every hashed and key column must exist with the same type and must not be generated.
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
      RAISE EXCEPTION 'column % of type % is not a plain column of %.% on this node',
        quote_ident(v_col.name), v_col.type, quote_ident(p_config->>'schema'), quote_ident(p_config->>'table')
        USING ERRCODE = 'undefined_column';
    END IF;
  END LOOP;

  IF v_desc->>'relkind' <> 'r' THEN
    RAISE EXCEPTION '%.% is not a plain table (relkind %); partitioned tables and views are not supported yet',
      quote_ident(p_config->>'schema'), quote_ident(p_config->>'table'), v_desc->>'relkind'
      USING ERRCODE = 'wrong_object_type';
  END IF;

  IF p_role = 'publisher' AND jsonb_array_length(coalesce(p_config->'publications', '[]')) > 0 THEN
    v_pub := syncguard._publication_info((v_desc->>'relid')::oid,
               ARRAY(SELECT jsonb_array_elements_text(p_config->'publications')));
    IF NOT (v_pub->>'published')::boolean THEN
      RAISE EXCEPTION 'table %.% is not in publication(s) %', quote_ident(p_config->>'schema'),
        quote_ident(p_config->>'table'), p_config->>'publications' USING ERRCODE = 'undefined_object';
    END IF;
  END IF;

  INSERT INTO syncguard.registration (relid, schema_name, table_name, node_role, key_columns, key_types,
      scheme, bucket_width, bucket_count, bounds, columns, column_types, publications, row_filter,
      hash_version, fingerprint)
  VALUES ((v_desc->>'relid')::oid, p_config->>'schema', p_config->>'table', p_role,
      ARRAY(SELECT jsonb_array_elements_text(p_config->'keyColumns')),
      ARRAY(SELECT jsonb_array_elements_text(p_config->'keyTypes')),
      p_config->>'scheme', (p_config->>'bucketWidth')::bigint, (p_config->>'bucketCount')::integer,
      CASE WHEN p_config->>'scheme' = 'range' THEN coalesce(p_config->'bounds', '[]') END,
      ARRAY(SELECT jsonb_array_elements_text(p_config->'columns')),
      ARRAY(SELECT jsonb_array_elements_text(p_config->'columnTypes')),
      ARRAY(SELECT jsonb_array_elements_text(coalesce(p_config->'publications', '[]'))),
      v_pub->>'rowFilter', (p_config->>'hashVersion')::integer, p_config->>'fingerprint')
  RETURNING * INTO r;

  IF r.scheme = 'range' AND r.bucket_count <> jsonb_array_length(r.bounds) + 1 THEN
    RAISE EXCEPTION 'range registration has % bounds but bucket count %', jsonb_array_length(r.bounds), r.bucket_count
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  PERFORM syncguard._install_triggers(r);
  RETURN to_jsonb(r);
END
$$;

-- This node's registrations.
CREATE VIEW syncguard.registrations AS
  SELECT * FROM syncguard.registration WHERE node_id = syncguard.node_id();

-- Removes a registration: its triggers, generated objects and state. Returns false when the table
-- was not registered on this node.
CREATE FUNCTION syncguard.unregister_table(p_schema text, p_table text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_tbl text;
  v_trigger text;
BEGIN
  SELECT * INTO r FROM syncguard.registration
   WHERE node_id = syncguard.node_id() AND schema_name = p_schema AND table_name = p_table;
  IF NOT FOUND THEN
    RETURN false;
  END IF;
  v_tbl := format('%I.%I', r.schema_name, r.table_name);
  IF EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN
    FOREACH v_trigger IN ARRAY ARRAY['syncguard_insert', 'syncguard_update', 'syncguard_delete', 'syncguard_truncate'] LOOP
      EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_trigger, v_tbl);
    END LOOP;
  END IF;
  EXECUTE format('DROP FUNCTION IF EXISTS %s()', syncguard._mark_fn(r.reg_id));
  EXECUTE format('DROP FUNCTION IF EXISTS %s()', syncguard._truncate_fn(r.reg_id));
  IF r.scheme = 'range' THEN
    EXECUTE format('DROP TYPE IF EXISTS %s CASCADE', syncguard._key_type(r.reg_id));
  END IF;
  DELETE FROM syncguard.dirty WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.local_write WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.bucket WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.sweep WHERE reg_id = r.reg_id;
  DELETE FROM syncguard.registration WHERE node_id = r.node_id AND reg_id = r.reg_id;
  RETURN true;
END
$$;

-- Gives this node a new identity; for a node cloned physically from its peer, which would
-- otherwise share the peer's node_id. Rows keyed by the old identity move to the new one.
CREATE FUNCTION syncguard.reidentify() RETURNS uuid
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_old uuid := syncguard.node_id();
  v_new uuid := gen_random_uuid();
BEGIN
  EXECUTE format('CREATE OR REPLACE FUNCTION syncguard.node_id() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
                 format('SELECT %L::uuid', v_new));
  UPDATE syncguard.migration SET node_id = v_new WHERE node_id = v_old;
  UPDATE syncguard.registration SET node_id = v_new WHERE node_id = v_old;
  RETURN v_new;
END
$$;

-- Exact row count of a table (the hash scheme sizes its modulus from it).
CREATE FUNCTION syncguard.row_count(p_schema text, p_table text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n bigint;
BEGIN
  EXECUTE format('SELECT count(*) FROM %I.%I', p_schema, p_table) INTO v_n;
  RETURN v_n;
END
$$;
