-- Partitioned tables: the leaves a registration covers, and what a drain does when partitions are
-- attached, detached or overlap.

-- The leaf partitions of a partitioned table, in oid order ('{}' when it has none); NULL for any
-- other table.
CREATE OR REPLACE FUNCTION syncguard._leaves(p_relid oid)
RETURNS oid[] LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT CASE WHEN (SELECT c.relkind FROM pg_class c WHERE c.oid = p_relid) = 'p'
              THEN ARRAY(SELECT t.relid::oid FROM pg_partition_tree(p_relid) t
                          WHERE t.isleaf AND t.relid::oid <> p_relid ORDER BY 1) END
$function$;

-- Every partitioned registration of this node whose leaves changed since the last check, or
-- whose partitions were detached and attached again (same leaves, another _leaf_sig): new leaves
-- get their triggers, leaves gone lose ours, then the catalogue is rebuilt (a new first sweep,
-- which also counts what was written to a new leaf before it had triggers; until it ends
-- verification reports the table's coverage as incomplete), and the change is recorded. A trigger
-- that cannot be created is a fault of the registration, with the reason. A registration without
-- a signature yet just takes it. Returns the number of registrations that changed.
-- The leaves and signature compared are those the catalogue was built with, kept in the unlogged
-- catalogue_sig (_as_built, _set_built): a drain writes no table a publication replicates.
CREATE OR REPLACE FUNCTION syncguard._check_partitions()
RETURNS integer LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard.registration;
  v_now oid[];
  v_sig text;
  v_again text[];
  v_n integer := 0;
BEGIN
  FOR r IN SELECT b.* FROM syncguard.registration g CROSS JOIN LATERAL syncguard._as_built(g) b
            WHERE g.node_id = syncguard.node_id() AND g.partitioning = 'root'
              AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.relid AND c.relkind = 'p') LOOP
    v_now := syncguard._leaves(r.relid);
    v_sig := syncguard._leaf_sig(r.relid);
    IF v_now = r.leaves AND r.leaf_sig IS NULL THEN
      r.leaf_sig := v_sig;
      PERFORM syncguard._set_built(r);
      CONTINUE;
    END IF;
    CONTINUE WHEN v_now = r.leaves AND v_sig = r.leaf_sig;
    -- members still there whose pg_inherits row is new: detached and attached again
    v_again := ARRAY(SELECT x.oid::regclass::text
                       FROM (SELECT split_part(e, ':', 1)::oid AS oid, split_part(e, ':', 2) AS xmin
                               FROM unnest(string_to_array(v_sig, ',')) e) x
                       JOIN (SELECT split_part(e, ':', 1)::oid AS oid, split_part(e, ':', 2) AS xmin
                               FROM unnest(string_to_array(coalesce(r.leaf_sig, ''), ',')) e WHERE e <> '') o
                         ON o.oid = x.oid AND o.xmin <> x.xmin
                      ORDER BY 1);
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
            ARRAY(SELECT x::regclass::text FROM unnest(v_now) x WHERE x <> ALL(r.leaves) ORDER BY 1)
              || ARRAY(SELECT a || ' (detached and attached again)' FROM unnest(v_again) a),
            ARRAY(SELECT x::regclass::text FROM unnest(r.leaves) x
                   WHERE x <> ALL(v_now) AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x)
                  UNION ALL
                  SELECT format('(dropped, oid %s)', x) FROM unnest(r.leaves) x
                   WHERE x <> ALL(v_now) AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = x)))
    ON CONFLICT (reg_id) DO UPDATE SET at = clock_timestamp(), added = EXCLUDED.added, removed = EXCLUDED.removed;
    r.leaves := v_now;
    r.leaf_sig := v_sig;
    PERFORM syncguard._set_built(r);
    DELETE FROM syncguard.dirty WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.bucket WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.sweep WHERE reg_id = r.reg_id;
    v_n := v_n + 1;
  END LOOP;
  -- rows rewritten without triggers are looked for here too: check_state() calls this on every drain
  RETURN v_n + syncguard._check_rewrites();
END $function$;

-- Registering a partition whose ancestor is registered, or a table with a registered partition,
-- would track and verify the same rows twice: refused.
CREATE OR REPLACE FUNCTION syncguard._check_partition_overlap(p_relid oid, p_name text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- For status: a partitioned registration's leaves now, and its last partition change.
CREATE OR REPLACE FUNCTION syncguard._partition_status(r syncguard.registration)
RETURNS jsonb LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT CASE WHEN r.partitioning = 'root' THEN jsonb_build_object(
           'leaves', cardinality(syncguard._leaves(r.relid)),
           'lastChange', (SELECT jsonb_build_object('at', pc.at, 'added', to_jsonb(pc.added), 'removed', to_jsonb(pc.removed))
                            FROM syncguard.partition_change pc WHERE pc.reg_id = r.reg_id))
         WHEN r.partitioning = 'leaf' THEN jsonb_build_object('partitionOf',
           (SELECT a.relid::regclass::text FROM pg_partition_ancestors(r.relid) a WHERE a.relid::oid <> r.relid LIMIT 1))
         END
$function$;

-- What makes a partitioned registration's catalogue untrustworthy now: leaves changed since the
-- last drain, a leaf without its triggers or with one not ENABLE ALWAYS.
-- The leaves compared are those the catalogue was built with (_as_built).
CREATE OR REPLACE FUNCTION syncguard._partition_problems(r syncguard.registration, p_fix text)
RETURNS text[] LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_now oid[];
  v_out text[] := '{}';
  v_t record;
BEGIN
  IF r.partitioning IS DISTINCT FROM 'root' THEN
    RETURN v_out;
  END IF;
  r := syncguard._as_built(r);
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
END $function$;
