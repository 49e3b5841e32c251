-- syncguard node schema 0018: partitioned tables.
-- A partitioned table is registered at its root (any level of the tree may be: its rows are those
-- of all its leaves), or a partition on its own; not both a partition and one of its ancestors.
--   - Readers read a partitioned table whole and a plain one with ONLY (_rel): FROM ONLY on a
--     partitioned table reads nothing, and DELETE FROM ONLY on it deletes nothing.
--   - On a publisher, changes are tracked by statement triggers with transition tables on the root
--     AND on every leaf: a statement that names the root fires the root's triggers only (its
--     transition tables hold the rows of every partition), one that names a partition fires that
--     partition's only. Row triggers on the root would do with fewer objects, but cost 2.5x on bulk
--     inserts (bench). On a subscriber (and a cascade), where only row triggers fire for applied
--     changes, the root's row triggers are cloned by PostgreSQL to every partition, present and
--     future, with the root's ENABLE ALWAYS (PostgreSQL 13 to 18, measured). A TRUNCATE of one
--     partition fires no trigger of the root, so each leaf has its own syncguard_truncate.
--   - A partition attached, created, detached or dropped changes the table's rows without any
--     trigger firing, and a new leaf lacks its own triggers until it gets them. The registration
--     keeps its leaves; every drain compares them (_check_partitions, from check_state), gives new
--     leaves their triggers, and then rebuilds that registration's catalogue with a new first sweep
--     (so writes to a new leaf before it had triggers are counted), and records the change for
--     status. Until a drain has run, health reports the change and verification does not compare
--     the table.
--   - A partition registered on its own gets row triggers too: statements on its root reach it
--     without firing its statement triggers.
--   - Publications may publish a partitioned table as its root (publish_via_partition_root) or as
--     its leaves: either counts as publishing it.

-- This migration redefines functions that earlier migrations altered (0012: SECURITY DEFINER,
-- row_security = off); CREATE OR REPLACE resets what it does not repeat. Their security and
-- settings are noted here and checked at the end.
SELECT set_config('syncguard.before_0018', (SELECT jsonb_object_agg(p.oid::text, jsonb_build_array(p.prosecdef, to_jsonb(coalesce(p.proconfig, '{}'))))
                                              FROM pg_proc p WHERE p.pronamespace = 'syncguard'::regnamespace)::text, true);

ALTER TABLE syncguard.registration ADD COLUMN partitioning text CHECK (partitioning IN ('root', 'leaf'));
ALTER TABLE syncguard.registration ADD COLUMN leaves oid[];

-- The last change of a partitioned registration's leaves seen on this node.
CREATE UNLOGGED TABLE syncguard.partition_change (
  reg_id   integer PRIMARY KEY,
  at       timestamptz NOT NULL DEFAULT clock_timestamp(),
  added    text[] NOT NULL,
  removed  text[] NOT NULL
);
REVOKE ALL ON syncguard.partition_change FROM PUBLIC;

-- How readers name a registered table: a partitioned table whole, any other with ONLY (a
-- registered table never silently includes inheritance children).
CREATE FUNCTION syncguard._rel(p_schema text, p_table text) RETURNS text
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(format('%I.%I', p_schema, p_table))) = 'p'
              THEN '' ELSE 'ONLY ' END || format('%I.%I', p_schema, p_table)
$$;

-- The leaf partitions of a partitioned table, in oid order ('{}' when it has none); NULL for any
-- other table.
CREATE FUNCTION syncguard._leaves(p_relid oid) RETURNS oid[]
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN (SELECT c.relkind FROM pg_class c WHERE c.oid = p_relid) = 'p'
              THEN ARRAY(SELECT t.relid::oid FROM pg_partition_tree(p_relid) t
                          WHERE t.isleaf AND t.relid::oid <> p_relid ORDER BY 1) END
$$;

-- As in 0009, and: a partition registered on its own is tracked by row triggers (statements on its
-- root reach it without firing its statement triggers), and a partitioned table is a cascade when
-- a subscription replicates it as its root or as any of its leaves.
CREATE OR REPLACE FUNCTION syncguard._row_triggers(r syncguard.registration) RETURNS boolean
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT r.node_role = 'subscriber' OR r.partitioning IS NOT DISTINCT FROM 'leaf'
      OR EXISTS (SELECT 1 FROM pg_subscription_rel sr
                  WHERE sr.srrelid = r.relid OR sr.srrelid = ANY(coalesce(syncguard._leaves(r.relid), '{}')))
$$;

-- Registering a partition whose ancestor is registered, or a table with a registered partition,
-- would track and verify the same rows twice: refused.
CREATE FUNCTION syncguard._check_partition_overlap(p_relid oid, p_name text) RETURNS void
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_other text;
BEGIN
  SELECT format('%I.%I', g.schema_name, g.table_name) INTO v_other
    FROM syncguard.registration g JOIN pg_partition_ancestors(p_relid) a ON a.relid = g.relid
   WHERE g.node_id = syncguard.node_id() AND a.relid::oid <> p_relid LIMIT 1;
  IF v_other IS NOT NULL THEN
    RAISE EXCEPTION '% is a partition of %, which is registered: its rows are verified there', p_name, v_other
      USING ERRCODE = 'duplicate_object';
  END IF;
  SELECT format('%I.%I', g.schema_name, g.table_name) INTO v_other
    FROM syncguard.registration g JOIN pg_partition_tree(p_relid) t ON t.relid = g.relid
   WHERE g.node_id = syncguard.node_id() AND t.relid::oid <> p_relid LIMIT 1;
  IF v_other IS NOT NULL THEN
    RAISE EXCEPTION 'partition % of % is registered on its own; run syncguard unregister --table % first, then register %',
      v_other, p_name, v_other, p_name USING ERRCODE = 'duplicate_object';
  END IF;
  SELECT t.relid::regclass::text INTO v_other FROM pg_partition_tree(p_relid) t JOIN pg_class c ON c.oid = t.relid
   WHERE t.isleaf AND c.relkind <> 'r' LIMIT 1;
  IF v_other IS NOT NULL THEN
    RAISE EXCEPTION 'partition % of % is not a plain table (a foreign table?), which syncguard cannot track', v_other, p_name
      USING ERRCODE = 'wrong_object_type';
  END IF;
END
$$;

-- Gives every leaf of a partitioned registration the triggers it lacks: its TRUNCATE trigger, and
-- on a publisher its statement triggers (row triggers are the root's clones).
CREATE FUNCTION syncguard._install_leaf_triggers(r syncguard.registration) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_leaf oid;
  v_row boolean := syncguard._row_triggers(r);
  v_fn text := syncguard._mark_fn(r.reg_id);
  v_t record;
BEGIN
  FOREACH v_leaf IN ARRAY coalesce(syncguard._leaves(r.relid), '{}') LOOP
    FOR v_t IN
      SELECT n.name, n.ddl FROM (VALUES
        ('syncguard_truncate', format('AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_leaf::regclass, syncguard._truncate_fn(r.reg_id))),
        ('syncguard_insert', format('AFTER INSERT ON %s REFERENCING NEW TABLE AS sg_new FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_leaf::regclass, v_fn)),
        ('syncguard_update', format('AFTER UPDATE ON %s REFERENCING OLD TABLE AS sg_old NEW TABLE AS sg_new FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_leaf::regclass, v_fn)),
        ('syncguard_delete', format('AFTER DELETE ON %s REFERENCING OLD TABLE AS sg_old FOR EACH STATEMENT EXECUTE FUNCTION %s()', v_leaf::regclass, v_fn))) n(name, ddl)
       WHERE (n.name = 'syncguard_truncate' OR NOT v_row)
         AND NOT EXISTS (SELECT 1 FROM pg_trigger t WHERE t.tgrelid = v_leaf AND t.tgname = n.name)
    LOOP
      EXECUTE format('CREATE TRIGGER %I %s', v_t.name, v_t.ddl);
      EXECUTE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %I', v_leaf::regclass, v_t.name);
    END LOOP;
  END LOOP;
END
$$;

-- Drops the triggers that call a registration's trigger functions from tables other than its own
-- (a leaf's TRUNCATE trigger; the triggers a partition kept when it was detached), except from
-- p_keep. Clones go with their parent trigger and are left alone.
CREATE FUNCTION syncguard._drop_triggers_elsewhere(r syncguard.registration, p_keep oid[]) RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_t record;
BEGIN
  FOR v_t IN
    SELECT t.tgrelid::regclass AS tbl, t.tgname FROM pg_trigger t
     WHERE t.tgfoid IN (to_regprocedure(syncguard._mark_fn(r.reg_id) || '()'), to_regprocedure(syncguard._truncate_fn(r.reg_id) || '()'))
       AND t.tgrelid <> r.relid AND t.tgparentid = 0 AND t.tgrelid <> ALL(coalesce(p_keep, '{}'))
  LOOP
    EXECUTE format('DROP TRIGGER IF EXISTS %I ON %s', v_t.tgname, v_t.tbl);
  END LOOP;
END
$$;

-- Every partitioned registration of this node whose leaves changed since the last check: new
-- leaves get their triggers, leaves gone lose ours, then the catalogue is rebuilt (a new first
-- sweep, which also counts what was written to a new leaf before it had triggers; until it ends
-- verification reports the table's coverage as incomplete), and the change is recorded. A trigger that cannot be created is a fault of the registration, with the reason.
-- Returns the number of registrations that changed.
CREATE FUNCTION syncguard._check_partitions() RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_now oid[];
  v_n integer := 0;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration g
            WHERE g.node_id = syncguard.node_id() AND g.partitioning = 'root'
              AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.relid AND c.relkind = 'p') LOOP
    v_now := syncguard._leaves(r.relid);
    CONTINUE WHEN v_now = r.leaves;
    BEGIN
      PERFORM syncguard._install_leaf_triggers(r);
      PERFORM syncguard._drop_triggers_elsewhere(r, v_now);
    EXCEPTION WHEN OTHERS THEN
      IF syncguard._transient(SQLSTATE) THEN
        RAISE;
      END IF;
      INSERT INTO syncguard.fault (reg_id, kind, sqlstate, message)
      VALUES (r.reg_id, 'trigger', SQLSTATE, left(format('cannot give a new partition of %I.%I its triggers: %s',
                                                        r.schema_name, r.table_name, SQLERRM), 500))
      ON CONFLICT DO NOTHING;
    END;
    INSERT INTO syncguard.partition_change AS pc (reg_id, added, removed)
    VALUES (r.reg_id,
            ARRAY(SELECT x::regclass::text FROM unnest(v_now) x WHERE x <> ALL(r.leaves) ORDER BY 1),
            ARRAY(SELECT x::regclass::text FROM unnest(r.leaves) x
                   WHERE x <> ALL(v_now) AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x)
                  UNION ALL
                  SELECT format('(dropped, oid %s)', x) FROM unnest(r.leaves) x
                   WHERE x <> ALL(v_now) AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x)))
    ON CONFLICT (reg_id) DO UPDATE SET at = clock_timestamp(), added = EXCLUDED.added, removed = EXCLUDED.removed;
    UPDATE syncguard.registration SET leaves = v_now WHERE node_id = r.node_id AND reg_id = r.reg_id;
    DELETE FROM syncguard.dirty WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.bucket WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.sweep WHERE reg_id = r.reg_id;
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END
$$;

-- What makes a partitioned registration's catalogue untrustworthy now: leaves changed since the
-- last drain, a leaf without its triggers or with one not ENABLE ALWAYS.
CREATE FUNCTION syncguard._partition_problems(r syncguard.registration, p_fix text) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_now oid[];
  v_out text[] := '{}';
  v_t record;
BEGIN
  IF r.partitioning IS DISTINCT FROM 'root' THEN
    RETURN v_out;
  END IF;
  v_now := syncguard._leaves(r.relid);
  IF v_now IS NULL THEN
    RETURN ARRAY['the table is no longer partitioned' || p_fix];
  END IF;
  IF v_now IS DISTINCT FROM r.leaves THEN
    v_out := v_out || format('partitions were attached, created, detached or dropped since the last drain (now %s, were %s); the next drain on this node rebuilds the table''s catalogue',
                             cardinality(v_now), cardinality(r.leaves));
  END IF;
  FOR v_t IN
    SELECT l AS leaf, n.name, t.tgenabled
      FROM unnest(v_now) l CROSS JOIN unnest(ARRAY['syncguard_insert', 'syncguard_update', 'syncguard_delete', 'syncguard_truncate']) n(name)
      LEFT JOIN pg_trigger t ON t.tgrelid = l AND t.tgname = n.name
     WHERE (t.tgenabled IS NULL AND l = ANY(r.leaves)) OR t.tgenabled <> 'A'
     ORDER BY 1, 2 LIMIT 3
  LOOP
    v_out := v_out || format('trigger %s on partition %s is %s, so its changes are not tracked; fix: %s, then syncguard drain --full-resweep on this node',
                             v_t.name, v_t.leaf::regclass,
                             CASE WHEN v_t.tgenabled IS NULL THEN 'missing' WHEN v_t.tgenabled = 'D' THEN 'disabled' ELSE 'not ENABLE ALWAYS' END,
                             CASE WHEN v_t.tgenabled IS NULL THEN 're-register the table' ELSE format('ALTER TABLE %s ENABLE ALWAYS TRIGGER %s', v_t.leaf::regclass, v_t.name) END);
  END LOOP;
  RETURN v_out;
END
$$;

-- For status: a partitioned registration's leaves now, and its last partition change.
CREATE FUNCTION syncguard._partition_status(r syncguard.registration) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT CASE WHEN r.partitioning = 'root' THEN jsonb_build_object(
           'leaves', cardinality(syncguard._leaves(r.relid)),
           'lastChange', (SELECT jsonb_build_object('at', pc.at, 'added', to_jsonb(pc.added), 'removed', to_jsonb(pc.removed))
                            FROM syncguard.partition_change pc WHERE pc.reg_id = r.reg_id))
         WHEN r.partitioning = 'leaf' THEN jsonb_build_object('partitionOf',
           (SELECT a.relid::regclass::text FROM pg_partition_ancestors(r.relid) a WHERE a.relid::oid <> r.relid LIMIT 1))
         END
$$;

-- As in 0004, and a partitioned table counts as published when the publications carry it as its
-- root or as its leaves (publish_via_partition_root on or off), and a partition when they carry
-- it or an ancestor. Row filters and column lists are those of the entries that carry it.
CREATE OR REPLACE FUNCTION syncguard._publication_info(p_relid oid, p_publications text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_found boolean;
  v_cols jsonb := NULL;
  v_filter text := NULL;
  v_rels oid[] := ARRAY(SELECT t.relid::oid FROM pg_partition_tree(p_relid) t
                        UNION SELECT a.relid::oid FROM pg_partition_ancestors(p_relid) a
                        UNION SELECT p_relid);
BEGIN
  SELECT count(*) > 0 INTO v_found FROM pg_publication_tables pt
   WHERE pt.pubname = ANY(p_publications) AND (pt.schemaname, pt.tablename) IN (SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(v_rels));
  -- Column lists and row filters exist from PostgreSQL 15 (plpgsql plans this only when it runs).
  IF v_found AND current_setting('server_version_num')::integer >= 150000 THEN
    WITH e AS (
      SELECT pt.pubname, pt.rowfilter, pt.attnames FROM pg_publication_tables pt
       WHERE pt.pubname = ANY(p_publications) AND (pt.schemaname, pt.tablename) IN (SELECT n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = ANY(v_rels))
    )
    SELECT CASE WHEN bool_or(e.rowfilter IS NULL) THEN NULL
                ELSE (SELECT string_agg('(' || f.rowfilter || ')', ' OR ' ORDER BY f.first)
                        FROM (SELECT e2.rowfilter, min(e2.pubname) AS first FROM e e2 GROUP BY e2.rowfilter) f) END,
           CASE WHEN bool_or(e.attnames IS NULL) THEN NULL
                ELSE (SELECT jsonb_agg(DISTINCT x ORDER BY x) FROM e e3, unnest(e3.attnames) x) END
      INTO v_filter, v_cols
      FROM e;
  END IF;
  RETURN jsonb_build_object('published', v_found, 'columns', v_cols, 'rowFilter', v_filter);
END
$$;
-- As in 0011, and: a partitioned table (its whole tree) or a partition on its own may be
-- registered, but not both a partition and one of its ancestors; every leaf gets its TRUNCATE
-- trigger, and the registration keeps its leaves.
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
END
$$;

-- As in 0009, and the triggers of partitions (a leaf's TRUNCATE trigger, and triggers left on a
-- partition detached since) go too.
CREATE OR REPLACE FUNCTION syncguard.unregister_table(p_schema text, p_table text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
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
END
$$;

-- As in 0010, and partitioned registrations adopt partitions attached, created, detached or
-- dropped since the last check (_check_partitions).
CREATE OR REPLACE FUNCTION syncguard.check_state() RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
SECURITY DEFINER
AS $$
DECLARE
  v_restored boolean;
  v_regs integer[] := ARRAY(SELECT reg_id FROM syncguard.registration WHERE node_id = syncguard.node_id());
BEGIN
  INSERT INTO syncguard.node_state DEFAULT VALUES ON CONFLICT DO NOTHING;
  DELETE FROM syncguard.dirty WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.local_write WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.fault WHERE reg_id <> ALL(v_regs);
  PERFORM syncguard._check_partitions();
  IF EXISTS (SELECT 1 FROM syncguard.sentinel) THEN
    RETURN false;
  END IF;
  INSERT INTO syncguard.sentinel DEFAULT VALUES ON CONFLICT DO NOTHING RETURNING true INTO v_restored;
  IF v_restored THEN   -- only the session that restored the sentinel records the loss
    DELETE FROM syncguard.sweep;
    DELETE FROM syncguard.bucket;
    PERFORM syncguard._install_bounds(g) FROM syncguard.registration g WHERE g.node_id = syncguard.node_id() AND g.scheme = 'range';
    UPDATE syncguard.node_state SET state_lost_at = now(), state_lost_count = state_lost_count + 1, full_sweep_at = now()
     WHERE node_id = syncguard.node_id();
  END IF;
  RETURN coalesce(v_restored, false);
END
$$;

-- As in 0011, and partitions are checked (_partition_problems) instead of refused.
CREATE OR REPLACE FUNCTION syncguard._problems(r syncguard.registration) RETURNS text[]
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
  IF syncguard._inheritance(r.relid) IN ('parent', 'child') THEN
    v_out := v_out || format('the table is now in an inheritance tree (%s), which syncguard does not support',
                             syncguard._inheritance(r.relid));
  END IF;
  v_out := v_out || syncguard._partition_problems(r, v_fix);
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

-- As in 0010 (with 0017's table names), and a partitioned table's leaves and its last partition
-- change.
CREATE OR REPLACE FUNCTION syncguard.status() RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
SECURITY DEFINER
AS $$
  SELECT jsonb_build_object(
    'nodeId', syncguard.node_id(),
    'stateIntact', EXISTS (SELECT 1 FROM syncguard.sentinel),
    'stateLostAt', n.state_lost_at,
    'stateLostCount', coalesce(n.state_lost_count, 0),
    'lastFullSweepAt', n.full_sweep_at,
    'remainingDirty', (SELECT count(*) FROM (SELECT DISTINCT d.reg_id, d.bucket FROM syncguard.dirty d
                         WHERE d.reg_id IN (SELECT syncguard._healthy_regs())) x),
    'oldestDirtyAgeMs', (SELECT floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint
                           FROM syncguard.dirty d WHERE d.reg_id IN (SELECT syncguard._healthy_regs())),
    'tables', coalesce((SELECT jsonb_agg(jsonb_build_object(
        'table', syncguard._table_text(r.schema_name, r.table_name),
        'role', r.node_role,
        'scheme', r.scheme,
        'fingerprint', r.fingerprint,
        'buckets', (SELECT count(*) FROM syncguard.bucket b WHERE b.reg_id = r.reg_id AND b.row_count IS NOT NULL),
        'rows', (SELECT coalesce(sum(b.row_count), 0) FROM syncguard.bucket b WHERE b.reg_id = r.reg_id),
        'dirtyBuckets', (SELECT count(DISTINCT d.bucket) FROM syncguard.dirty d WHERE d.reg_id = r.reg_id),
        'oldestDirtyAgeMs', (SELECT floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint
                               FROM syncguard.dirty d WHERE d.reg_id = r.reg_id),
        'sweepProgress', syncguard._sweep_progress(r),
        'sweepPass', (SELECT s.pass FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'firstSweepFinishedAt', (SELECT s.first_finished_at FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'lastSweepFinishedAt', (SELECT s.finished_at FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'partitions', syncguard._partition_status(r),
        'fault', (SELECT string_agg(format('%s: %s', f.kind, f.message), '; ' ORDER BY f.kind) FROM syncguard.fault f WHERE f.reg_id = r.reg_id))
        ORDER BY r.schema_name, r.table_name) FROM syncguard.registration r WHERE r.node_id = syncguard.node_id()), '[]'::jsonb))
  FROM (SELECT 1) one LEFT JOIN syncguard.node_state n ON n.node_id = syncguard.node_id()
$$;
-- The readers of user tables, as last defined (0010, 0013, 0014, 0016), reading through _rel.

-- As in 0010, reading the table through _rel.
CREATE OR REPLACE FUNCTION syncguard._compute_sql(p_reg syncguard.registration) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_src  text := syncguard._rel(p_reg.schema_name, p_reg.table_name) || ' sg_t';
  v_hash text := syncguard._hash_expr(p_reg.relid, p_reg.columns, 'sg_t');
  v_key  text := syncguard._key_row(p_reg.key_columns, 'sg_t');
  v_filt text := syncguard._filter(p_reg);
  v_n    integer := p_reg.bucket_count - 1;   -- range: number of bounds
  v_rows text;
BEGIN
  CASE p_reg.scheme
    WHEN 'int' THEN
      v_rows := format('SELECT %s AS sg_h FROM %s WHERE sg_t.%I BETWEEN syncguard.int_lo(sg_cb.sg_b, %s) AND syncguard.int_hi(sg_cb.sg_b, %s)%s',
                       v_hash, v_src, p_reg.key_columns[1], p_reg.bucket_width, p_reg.bucket_width, v_filt);
    WHEN 'range' THEN
      IF v_n = 0 THEN
        v_rows := format('SELECT %s AS sg_h FROM %s WHERE sg_cb.sg_b = 0%s', v_hash, v_src, v_filt);
      ELSE
        v_rows := format(
          'SELECT %1$s AS sg_h FROM %2$s WHERE sg_cb.sg_b = 0 AND %3$s < %4$s%7$s'
          ' UNION ALL SELECT %1$s FROM %2$s WHERE sg_cb.sg_b BETWEEN 1 AND %8$s AND %3$s >= %5$s AND %3$s < %6$s%7$s'
          ' UNION ALL SELECT %1$s FROM %2$s WHERE sg_cb.sg_b = %9$s AND %3$s >= %10$s%7$s',
          v_hash, v_src, v_key,
          syncguard._bound_row(p_reg.key_columns, 'sg_ba.sg_arr[1]'),
          syncguard._bound_row(p_reg.key_columns, 'sg_ba.sg_arr[sg_cb.sg_b]'),
          syncguard._bound_row(p_reg.key_columns, 'sg_ba.sg_arr[sg_cb.sg_b + 1]'),
          v_filt, v_n - 1, v_n,
          syncguard._bound_row(p_reg.key_columns, format('sg_ba.sg_arr[%s]', v_n)));
      END IF;
      RETURN format(
        'SELECT sg_cb.sg_b, count(sg_s.sg_h), coalesce(sum(sg_s.sg_h), 0) '
        'FROM unnest($1::bigint[]) sg_cb(sg_b) CROSS JOIN (SELECT %s AS sg_arr) sg_ba '
        'LEFT JOIN LATERAL (%s) sg_s ON true GROUP BY sg_cb.sg_b',
        syncguard._bounds_literal(p_reg), v_rows);
    WHEN 'hash' THEN
      RETURN format(
        'SELECT sg_cb.sg_b, count(sg_s.sg_h), coalesce(sum(sg_s.sg_h), 0) '
        'FROM unnest($1::bigint[]) sg_cb(sg_b) LEFT JOIN ('
        'SELECT %s AS sg_b, %s AS sg_h FROM %s WHERE %s = ANY($1::bigint[])%s'
        ') sg_s ON sg_s.sg_b = sg_cb.sg_b GROUP BY sg_cb.sg_b',
        syncguard._bucket_expr(p_reg, 'sg_t'), v_hash, v_src, syncguard._bucket_expr(p_reg, 'sg_t'), v_filt);
  END CASE;
  RETURN format(
    'SELECT sg_cb.sg_b, count(sg_s.sg_h), coalesce(sum(sg_s.sg_h), 0) '
    'FROM unnest($1::bigint[]) sg_cb(sg_b) LEFT JOIN LATERAL (%s) sg_s ON true GROUP BY sg_cb.sg_b',
    v_rows);
END
$$;


CREATE OR REPLACE FUNCTION syncguard.compute_all(p_reg integer)
RETURNS TABLE (bucket bigint, row_count bigint, hash_sum numeric)
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT sg_b, count(*), sum(sg_h) FROM (SELECT %s AS sg_b, %s AS sg_h FROM %s sg_t WHERE true%s) sg_s GROUP BY sg_b',
    syncguard._bucket_expr(r, 'sg_t'), syncguard._hash_expr(r.relid, r.columns, 'sg_t'),
    syncguard._rel(r.schema_name, r.table_name), syncguard._filter(r));
END
$$;


CREATE OR REPLACE FUNCTION syncguard.canonical_rows(p_reg integer, p_buckets bigint[])
RETURNS TABLE (bucket bigint, key_text text, canonical text, row_hash bigint)
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  v_text text := replace(syncguard._hash_expr(r.relid, r.columns, 'sg_t'), 'syncguard.row_hash(', '(');
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT sg_b, sg_k, sg_c, syncguard.row_hash(sg_c) FROM ('
    'SELECT %s AS sg_b, %s::text AS sg_k, %s AS sg_c FROM %s sg_t WHERE true%s) sg_s '
    'WHERE sg_b = ANY($1) ORDER BY sg_b, sg_k',
    syncguard._bucket_expr(r, 'sg_t'), syncguard._key_row(r.key_columns, 'sg_t'), v_text,
    syncguard._rel(r.schema_name, r.table_name), syncguard._filter(r))
  USING p_buckets;
END
$$;


CREATE OR REPLACE FUNCTION syncguard.sweep_step(p_reg integer, p_max_buckets integer DEFAULT 100)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  s syncguard.sweep;
  v_buckets bigint[];
  v_next bigint;
  v_done integer;
  v_rows bigint;
BEGIN
  IF p_max_buckets < 1 THEN
    RAISE EXCEPTION 'p_max_buckets must be at least 1, got %', p_max_buckets USING ERRCODE = 'invalid_parameter_value';
  END IF;
  INSERT INTO syncguard.sweep (reg_id, next_bucket) VALUES (p_reg, syncguard._sweep_start(r)) ON CONFLICT DO NOTHING;
  SELECT * INTO s FROM syncguard.sweep WHERE reg_id = p_reg FOR UPDATE SKIP LOCKED;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('busy', true, 'done', false, 'recomputed', 0, 'rows', 0);
  END IF;
  IF s.finished_at IS NOT NULL THEN
    RETURN jsonb_build_object('done', true, 'recomputed', 0, 'rows', 0, 'nextBucket', s.next_bucket);
  END IF;

  IF r.scheme = 'int' THEN
    EXECUTE format(
      'WITH RECURSIVE sg_w(b) AS ('
      ' SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s) FROM %3$s WHERE %1$I >= syncguard.int_lo($1, %2$s)'
      ' UNION ALL'
      ' SELECT (SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s) FROM %3$s WHERE %1$I > syncguard.int_hi(sg_w.b, %2$s))'
      ' FROM sg_w WHERE sg_w.b IS NOT NULL AND sg_w.b < syncguard.int_bucket(9223372036854775807, %2$s))'
      ' SELECT array_agg(b) FROM (SELECT b FROM sg_w WHERE b IS NOT NULL LIMIT $2) sg_l',
      r.key_columns[1], r.bucket_width, syncguard._rel(r.schema_name, r.table_name))
    INTO v_buckets USING s.next_bucket, p_max_buckets;
    v_next := CASE WHEN v_buckets IS NULL THEN NULL ELSE v_buckets[cardinality(v_buckets)] + 1 END;
    IF cardinality(v_buckets) < p_max_buckets THEN
      v_next := NULL;   -- the walk reached the end of the table
    END IF;
    SELECT array_agg(u.b ORDER BY u.b) INTO v_buckets FROM (
      SELECT unnest(coalesce(v_buckets, '{}')) AS b
      UNION
      SELECT b.bucket FROM syncguard.bucket b
       WHERE b.reg_id = p_reg AND b.bucket >= s.next_bucket AND (v_next IS NULL OR b.bucket < v_next)) u;
  ELSE
    SELECT array_agg(g) INTO v_buckets
      FROM generate_series(s.next_bucket,
             CASE WHEN r.scheme = 'hash' THEN r.bucket_count - 1
                  ELSE least(s.next_bucket + p_max_buckets, r.bucket_count) - 1 END) g;
    v_next := s.next_bucket + coalesce(cardinality(v_buckets), 0);
    IF v_next >= r.bucket_count THEN
      v_next := NULL;
    END IF;
  END IF;

  SELECT count(*), coalesce(sum(x.row_count), 0) INTO v_done, v_rows FROM syncguard.recompute(p_reg, coalesce(v_buckets, '{}')) x;
  UPDATE syncguard.sweep SET next_bucket = coalesce(v_next, next_bucket),
         finished_at = CASE WHEN v_next IS NULL THEN clock_timestamp() END,
         first_finished_at = coalesce(first_finished_at, CASE WHEN v_next IS NULL THEN clock_timestamp() END)
   WHERE reg_id = p_reg;
  RETURN jsonb_build_object('done', v_next IS NULL, 'recomputed', v_done, 'rows', v_rows, 'nextBucket', v_next);
END
$$;


CREATE OR REPLACE FUNCTION syncguard.sample_bounds(p_schema text, p_table text, p_keys name[], p_bucket_size bigint)
RETURNS jsonb
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp
SET row_security = off
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
    'SELECT %s, row_number() OVER (ORDER BY %s) AS sg_rn FROM %s) sg_s '
    'WHERE sg_rn > 1 AND (sg_rn - 1) %% $1 = 0',
    v_texts, v_keys, v_keys, syncguard._rel(p_schema, p_table))
  INTO v_bounds USING p_bucket_size;
  RETURN v_bounds;
END
$$;


CREATE OR REPLACE FUNCTION syncguard.row_count(p_schema text, p_table text) RETURNS bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  v_n bigint;
BEGIN
  EXECUTE 'SELECT count(*) FROM ' || syncguard._rel(p_schema, p_table) INTO v_n;
  RETURN v_n;
END
$$;


CREATE OR REPLACE FUNCTION syncguard._sweep_progress(r syncguard.registration) RETURNS numeric
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SET row_security = off
AS $$
DECLARE
  s syncguard.sweep;
  v_first bigint;
  v_last bigint;
BEGIN
  SELECT * INTO s FROM syncguard.sweep WHERE reg_id = r.reg_id;
  IF NOT FOUND THEN
    RETURN 0;
  ELSIF s.finished_at IS NOT NULL THEN
    RETURN 1;
  ELSIF r.scheme <> 'int' THEN
    RETURN round(s.next_bucket::numeric / r.bucket_count, 4);
  END IF;
  EXECUTE format('SELECT syncguard.int_bucket(min(%1$I)::bigint, %2$s), syncguard.int_bucket(max(%1$I)::bigint, %2$s) FROM %3$s',
                 r.key_columns[1], r.bucket_width, syncguard._rel(r.schema_name, r.table_name)) INTO v_first, v_last;
  IF v_first IS NULL OR v_last <= v_first THEN
    RETURN 0;
  END IF;
  RETURN round(GREATEST(LEAST((s.next_bucket - v_first)::numeric / (v_last - v_first + 1), 1), 0), 4);
END
$$;

-- As in 0010 (with 0017's table names).
CREATE OR REPLACE FUNCTION syncguard.parity_info() RETURNS jsonb
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
SECURITY DEFINER SET row_security = off
AS $$
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
END
$$;

-- As in 0013 and 0014: a partitioned table is locked with all its partitions.
CREATE OR REPLACE FUNCTION syncguard.probe_buckets(p_schema text, p_table text, p_buckets bigint[], p_target uuid, p_subscription text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_caps jsonb := syncguard._probe_caps();
  v_t0 timestamptz := clock_timestamp();
  v_t1 timestamptz;
  v_values jsonb;
  v_id bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'a probe needs a READ COMMITTED transaction (it must see what committed before its lock), got %',
      current_setting('transaction_isolation') USING ERRCODE = 'invalid_transaction_state';
  END IF;
  SELECT * INTO r FROM syncguard.registration g
   WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table AND g.node_role = 'publisher';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% is not registered as a publisher table on this node', quote_ident(p_schema), quote_ident(p_table)
      USING ERRCODE = 'undefined_object';
  END IF;
  IF cardinality(p_buckets) IS NULL OR cardinality(p_buckets) > (v_caps->>'maxBuckets')::int THEN
    RAISE EXCEPTION 'a probe asks for 1 to % buckets, this one for %', v_caps->>'maxBuckets', coalesce(cardinality(p_buckets), 0)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF syncguard._probe_rows(r, p_buckets) > (v_caps->>'maxRows')::bigint THEN
    RAISE EXCEPTION 'a probe of these buckets would read about % rows, more than the cap of %', syncguard._probe_rows(r, p_buckets), v_caps->>'maxRows'
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  EXECUTE format('LOCK TABLE %s IN SHARE MODE', syncguard._rel(p_schema, p_table));
  v_t1 := clock_timestamp();
  -- a new snapshot, taken after the lock: every writer that held the table has committed
  v_values := syncguard._probe_values(r.reg_id, p_buckets);
  INSERT INTO syncguard.probe (origin, id, target, kind, schema_name, table_name, fingerprint, request)
  VALUES (syncguard.node_id(), nextval('syncguard.probe_id_seq'), p_target, 'buckets', p_schema, p_table, r.fingerprint,
          jsonb_build_object('subscription', p_subscription, 'buckets', to_jsonb(p_buckets), 'values', v_values))
  RETURNING id INTO v_id;
  RETURN jsonb_build_object('id', v_id, 'values', v_values,
                            'lockWaitMs', round(extract(epoch FROM v_t1 - v_t0)::numeric * 1000, 3),
                            'computeMs', round(extract(epoch FROM clock_timestamp() - v_t1)::numeric * 1000, 3));
END
$$;


CREATE OR REPLACE FUNCTION syncguard._bucket_source(r syncguard.registration, p_bucket bigint) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_src  text := syncguard._rel(r.schema_name, r.table_name) || ' sg_t';
  v_key  text := syncguard._key_row(r.key_columns, 'sg_t');
  v_n    integer := r.bucket_count - 1;
  v_pred text;
BEGIN
  IF r.scheme = 'int' THEN
    v_pred := format('sg_t.%I BETWEEN %s AND %s', r.key_columns[1], syncguard.int_lo(p_bucket, r.bucket_width),
                     syncguard.int_hi(p_bucket, r.bucket_width));
  ELSIF r.scheme = 'range' AND v_n > 0 THEN
    v_src := v_src || format(', (SELECT %s AS sg_arr) sg_ba', syncguard._bounds_literal(r));
    v_pred := CASE
      WHEN p_bucket <= 0 THEN format('%s < %s', v_key, syncguard._bound_row(r.key_columns, 'sg_ba.sg_arr[1]'))
      WHEN p_bucket >= v_n THEN format('%s >= %s', v_key, syncguard._bound_row(r.key_columns, format('sg_ba.sg_arr[%s]', v_n)))
      ELSE format('%1$s >= %2$s AND %1$s < %3$s', v_key,
                  syncguard._bound_row(r.key_columns, format('sg_ba.sg_arr[%s]', p_bucket)),
                  syncguard._bound_row(r.key_columns, format('sg_ba.sg_arr[%s]', p_bucket + 1)))
    END;
  ELSE
    v_pred := 'true';
  END IF;
  RETURN format('%s WHERE %s AND %s = %s%s', v_src, v_pred, syncguard._bucket_expr(r, 'sg_t'), p_bucket, syncguard._filter(r));
END
$$;


CREATE OR REPLACE FUNCTION syncguard.probe_rows(p_schema text, p_table text, p_bucket bigint, p_target uuid, p_subscription text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration := syncguard._publisher_reg(p_schema, p_table);
  v_t0 timestamptz := clock_timestamp();
  v_t1 timestamptz;
  v_rows jsonb;
  v_id bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'a probe needs a READ COMMITTED transaction' USING ERRCODE = 'invalid_transaction_state';
  END IF;
  IF syncguard._probe_rows(r, ARRAY[p_bucket]) > (syncguard._probe_caps()->>'maxRows')::bigint THEN
    RAISE EXCEPTION 'bucket % holds more than % rows; inspect it in smaller buckets', p_bucket, syncguard._probe_caps()->>'maxRows'
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  EXECUTE format('LOCK TABLE %s IN SHARE MODE', syncguard._rel(p_schema, p_table));
  v_t1 := clock_timestamp();
  v_rows := syncguard._row_list(r.reg_id, p_bucket);
  INSERT INTO syncguard.probe (origin, id, target, kind, schema_name, table_name, fingerprint, request)
  VALUES (syncguard.node_id(), nextval('syncguard.probe_id_seq'), p_target, 'rows', p_schema, p_table, r.fingerprint,
          jsonb_build_object('subscription', p_subscription, 'bucket', p_bucket))
  RETURNING id INTO v_id;
  RETURN jsonb_build_object('id', v_id, 'rows', v_rows,
                            'lockWaitMs', round(extract(epoch FROM v_t1 - v_t0)::numeric * 1000, 3),
                            'computeMs', round(extract(epoch FROM clock_timestamp() - v_t1)::numeric * 1000, 3));
END
$$;


CREATE OR REPLACE FUNCTION syncguard.repair_request(p_schema text, p_table text, p_bucket bigint, p_changes jsonb, p_plan text,
                                         p_target uuid, p_subscription text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration := syncguard._publisher_reg(p_schema, p_table);
  v_t0 timestamptz := clock_timestamp();
  v_t1 timestamptz;
  v_send jsonb := '[]';
  v_skip jsonb := '[]';
  v_id bigint;
  c jsonb;
  v_now jsonb;
  v_row jsonb;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'a repair needs a READ COMMITTED transaction' USING ERRCODE = 'invalid_transaction_state';
  END IF;
  IF jsonb_array_length(p_changes) > 10000 THEN
    RAISE EXCEPTION 'a repair request carries at most 10000 changes, got %', jsonb_array_length(p_changes)
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  EXECUTE format('LOCK TABLE %s IN SHARE MODE', syncguard._rel(p_schema, p_table));
  v_t1 := clock_timestamp();
  -- the publisher's rows of the planned keys, now that no writer can change them
  SELECT coalesce(jsonb_object_agg(b.key_text, jsonb_build_object('hash', b.row_hash::text, 'keyValues', to_jsonb(b.key_values),
                                                                   'values', to_jsonb(b.column_values))), '{}')
    INTO v_now
    FROM syncguard._bucket_rows(r.reg_id, p_bucket, ARRAY(SELECT x->>'key' FROM jsonb_array_elements(p_changes) x)) b;
  FOR c IN SELECT x FROM jsonb_array_elements(p_changes) x LOOP
    v_row := v_now->(c->>'key');
    IF (v_row->>'hash') IS DISTINCT FROM (c->>'pubHash') THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'publisher_changed');
    ELSIF c->>'op' = 'upsert' THEN
      v_send := v_send || (c || jsonb_build_object('keyValues', v_row->'keyValues', 'values', v_row->'values'));
    ELSE
      v_send := v_send || c;   -- a delete carries the subscriber row's key values from the plan
    END IF;
  END LOOP;
  IF jsonb_array_length(v_send) > 0 THEN
    INSERT INTO syncguard.probe (origin, id, target, kind, schema_name, table_name, fingerprint, request)
    VALUES (syncguard.node_id(), nextval('syncguard.probe_id_seq'), p_target, 'repair', p_schema, p_table, r.fingerprint,
            jsonb_build_object('subscription', p_subscription, 'bucket', p_bucket, 'plan', p_plan, 'columns', to_jsonb(r.columns),
                               'changes', v_send))
    RETURNING id INTO v_id;
  END IF;
  RETURN jsonb_build_object('id', v_id, 'sent', jsonb_array_length(v_send), 'skipped', v_skip,
                            'lockWaitMs', round(extract(epoch FROM v_t1 - v_t0)::numeric * 1000, 3),
                            'holdMs', round(extract(epoch FROM clock_timestamp() - v_t1)::numeric * 1000, 3));
END
$$;

-- As in 0016; a row of a partitioned table without a key is named by its partition (tableoid) and ctid.
CREATE OR REPLACE FUNCTION syncguard._repair_statements(r syncguard.registration, OUT upsert text, OUT del text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_tbl text := format('%I.%I', r.schema_name, r.table_name);
  v_rel text := syncguard._rel(r.schema_name, r.table_name);
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
    del := format('DELETE FROM %1$s WHERE (tableoid, ctid) = (SELECT sg_t.tableoid, sg_t.ctid FROM %1$s sg_t WHERE md5(%2$s) = $1[1] LIMIT 1)',
                  v_rel, replace(syncguard._hash_expr(r.relid, r.columns, 'sg_t'), 'syncguard.row_hash(', '('));
    RETURN;
  END IF;
  upsert := format('INSERT INTO %s (%s)%s VALUES (%s) ON CONFLICT (%s) DO %s', v_tbl, v_cols, v_override, v_vals,
                   (SELECT string_agg(quote_ident(k), ', ' ORDER BY o) FROM unnest(r.key_columns) WITH ORDINALITY u(k, o)),
                   CASE WHEN v_set IS NULL THEN 'NOTHING' ELSE 'UPDATE SET ' || v_set END);
  del := format('DELETE FROM %s WHERE %s', v_rel,
                (SELECT string_agg(format('%I = $1[%s]::%s', k, o, format_type(a.atttypid, a.atttypmod)), ' AND ' ORDER BY o)
                   FROM unnest(r.key_columns) WITH ORDINALITY u(k, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.k));
END
$$;

-- Every function redefined here kept its security and settings.
DO $$
DECLARE
  v_changed text;
BEGIN
  SELECT string_agg(p.oid::regprocedure::text, ', ') INTO v_changed
    FROM jsonb_each(current_setting('syncguard.before_0018')::jsonb) b(oid, v) JOIN pg_proc p ON p.oid = b.oid::oid
   WHERE p.prosecdef IS DISTINCT FROM (b.v->>0)::boolean
      OR NOT (to_jsonb(coalesce(p.proconfig, '{}')) @> (b.v->1));
  IF v_changed IS NOT NULL THEN
    RAISE EXCEPTION 'migration 0018 changed the security or settings of %', v_changed;
  END IF;
END
$$;
