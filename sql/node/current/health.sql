-- Health: what is wrong with a registration (renamed or dropped tables, demoted triggers, row
-- filters, rewrites, hash version 2's truncated columns) and what to do about each.

-- Per registration of this node: its role, problems, and the table's columns now and at
-- registration (so the verifier can tell columns added on both sides).
CREATE OR REPLACE FUNCTION syncguard.health()
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
      'table', syncguard._table_text(r.schema_name, r.table_name),
      'regId', r.reg_id,
      'role', r.node_role,
      'problems', to_jsonb(syncguard._problems(r)),
      'columnsAtRegistration', to_jsonb(r.table_columns),
      'columnsNow', (SELECT coalesce(jsonb_agg(a.attname ORDER BY a.attnum), '[]') FROM pg_attribute a
                      WHERE a.attrelid = r.relid AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = ''))
    ORDER BY r.schema_name, r.table_name), '[]')
  FROM syncguard.registration r WHERE r.node_id = syncguard.node_id()
$function$;

-- Everything that makes one registration's catalogue untrustworthy, as messages that say what
-- happened and what to do; empty when the registration holds.
-- A renamed table is told to register under its new name (its old name no longer exists, or is
-- another table), a dropped one to remove its registration (register refuses a table that does
-- not exist), and a disabled or half-enabled trigger says which changes it does not track.
CREATE OR REPLACE FUNCTION syncguard._problems(r syncguard.registration)
RETURNS text[] LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_name text := format('%I.%I', r.schema_name, r.table_name);
  v_now oid := to_regclass(v_name);
  v_out text[] := '{}';
  v_row boolean;
  v_t record;
  v_f record;
  v_c record;
  v_renamed record;
  v_fix text := format('; re-register it: syncguard unregister --table %s, then syncguard register --table %s', v_name, v_name);
BEGIN
  SELECT n.nspname, c.relname INTO v_renamed FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = r.relid;
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE oid = r.relid) THEN
    RETURN ARRAY[CASE WHEN v_now IS NULL
                      THEN format('the table was dropped on this node; its registration is left over: remove it with syncguard unregister --table %s', v_name)
                      ELSE format('the table was dropped on this node and %s is a new table without syncguard triggers%s', v_name, v_fix) END];
  END IF;
  IF v_now IS DISTINCT FROM r.relid THEN
    v_out := v_out || format('the registered table %s was renamed to %s%s; register it under its new name: syncguard unregister --table %s, then syncguard register --table %s',
                             v_name, syncguard._table_text(v_renamed.nspname, v_renamed.relname),
                             CASE WHEN v_now IS NULL THEN '' ELSE format(', and %s is now another table', v_name) END,
                             v_name, syncguard._table_text(v_renamed.nspname, v_renamed.relname));
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
      v_out := v_out || format('trigger %s is %s, not ENABLE ALWAYS, so it %s (ALTER TABLE ... ENABLE TRIGGER ALL and pg_restore --disable-triggers do this); fix: ALTER TABLE %s ENABLE ALWAYS TRIGGER %s, then syncguard drain --full-resweep on this node',
                               v_t.name, CASE v_t.tgenabled WHEN 'D' THEN 'disabled' WHEN 'O' THEN 'enabled for local writes only' ELSE 'enabled for replicated changes only' END,
                               CASE v_t.tgenabled WHEN 'D' THEN 'tracks no changes at all, neither local writes nor replicated changes'
                                                 WHEN 'O' THEN 'does not track replicated changes' ELSE 'does not track local writes' END, v_name, v_t.name);
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
  v_out := v_out || syncguard._more_problems(r);
  RETURN v_out;
END $function$;

-- The problems that have a function of their own: hash version 2's truncated columns, partitions
-- detached and attached again, a changed row filter, rows rewritten without triggers (_problems
-- above calls it).
CREATE OR REPLACE FUNCTION syncguard._more_problems(r syncguard.registration)
RETURNS text[] LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_out text[] := '{}';
  v_p text;
BEGIN
  FOREACH v_p IN ARRAY ARRAY[syncguard._v2_problem(r), syncguard._leaf_sig_problem(r), syncguard._row_filter_problem(r), syncguard._rewrite_problem(r)] LOOP
    IF v_p IS NOT NULL THEN
      v_out := v_out || v_p;
    END IF;
  END LOOP;
  RETURN v_out;
END $function$;

-- Whether a table is a partition, an inheritance child, or has children or partitions.
CREATE OR REPLACE FUNCTION syncguard._inheritance(p_relid oid)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT CASE WHEN c.relkind = 'p' THEN 'partitioned'
              WHEN c.relispartition THEN 'partition'
              WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = p_relid) THEN 'child'
              WHEN EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhparent = p_relid) THEN 'parent'
              ELSE 'none' END
    FROM pg_class c WHERE c.oid = p_relid
$function$;

-- The problem of a version 2 registration with such a column, or NULL.
CREATE OR REPLACE FUNCTION syncguard._v2_problem(r syncguard.registration)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_cols jsonb;
BEGIN
  IF r.hash_version IS DISTINCT FROM 2 OR NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relid) THEN
    RETURN NULL;
  END IF;
  v_cols := syncguard._v2_truncated(r.relid, r.columns);
  IF jsonb_array_length(v_cols) = 0 THEN
    RETURN NULL;
  END IF;
  RETURN format('hash version 2 reads %s back truncated to its first character or bit, so a change after it is not seen '
                'and the table is not compared; move it to hash version 1: syncguard register --table %s --refresh --hash-version 1',
                (SELECT string_agg(format('column %I (%s, a domain over %s)', x->>'column', x->>'type', x->>'base'), ', ' ORDER BY x->>'column')
                   FROM jsonb_array_elements(v_cols) x),
                syncguard._table_text(r.schema_name, r.table_name));
END $function$;

-- For health: on the publisher, the row filter its publications apply now, when it is not the
-- registered one.
CREATE OR REPLACE FUNCTION syncguard._row_filter_problem(r syncguard.registration)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_pub jsonb;
  v_now text;
BEGIN
  IF r.node_role <> 'publisher' OR cardinality(r.publications) = 0 OR NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = r.relid) THEN
    RETURN NULL;
  END IF;
  v_pub := syncguard._publication_info(r.relid, r.publications);
  IF NOT (v_pub->>'published')::boolean THEN
    RETURN NULL;   -- reported by the parity checks
  END IF;
  v_now := v_pub->>'rowFilter';
  IF v_now IS NOT DISTINCT FROM r.row_filter THEN
    RETURN NULL;
  END IF;
  RETURN format('the publications'' row filter changed since registration (now %s, registered %s): the publisher would hash other rows than it publishes, so the table is not compared; re-register it: syncguard register --table %s --refresh',
                coalesce(v_now, 'none'), coalesce(r.row_filter, 'none'), syncguard._table_text(r.schema_name, r.table_name));
END $function$;

-- For health: rows may have been rewritten without firing a trigger (ALTER COLUMN ... TYPE ...
-- USING on a hashed column, ALTER TYPE ... RENAME VALUE of an enum it holds): the content
-- signature (_content_sig) differs from the one the catalogue was built with (_as_built).
CREATE OR REPLACE FUNCTION syncguard._rewrite_problem(r syncguard.registration)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT 'rows may have been rewritten without triggers since the last drain (ALTER COLUMN ... TYPE ... USING on a hashed column, or ALTER TYPE ... RENAME VALUE of an enum it holds); the next drain on this node rebuilds the table''s catalogue'
    FROM syncguard._as_built(r) b
   WHERE b.content_sig IS NOT NULL AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = b.relid)
     AND syncguard._content_sig(b) <> b.content_sig
$function$;

-- Every registration of this node whose content signature changed: its catalogue is rebuilt
-- (recorded like a partition change, for status). A registration without one takes it.
-- The signature compared is the one the catalogue was built with, kept in the unlogged
-- catalogue_sig (_as_built, _set_built): a drain writes no table a publication replicates.
CREATE OR REPLACE FUNCTION syncguard._check_rewrites()
RETURNS integer LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard.registration;
  v_sig text;
  v_old text;
  v_n integer := 0;
BEGIN
  FOR r IN SELECT b.* FROM syncguard.registration g CROSS JOIN LATERAL syncguard._as_built(g) b
            WHERE g.node_id = syncguard.node_id() AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = g.relid) LOOP
    v_sig := syncguard._content_sig(r);
    CONTINUE WHEN v_sig = r.content_sig;
    v_old := r.content_sig;
    r.content_sig := v_sig;
    PERFORM syncguard._set_built(r);
    CONTINUE WHEN v_old IS NULL;
    INSERT INTO syncguard.partition_change AS pc (reg_id, added, removed)
    VALUES (r.reg_id, ARRAY['(rows rewritten without triggers: a hashed column altered or an enum value renamed)'], '{}')
    ON CONFLICT (reg_id) DO UPDATE SET at = clock_timestamp(), added = EXCLUDED.added, removed = EXCLUDED.removed;
    DELETE FROM syncguard.dirty WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.bucket WHERE reg_id = r.reg_id;
    DELETE FROM syncguard.sweep WHERE reg_id = r.reg_id;
    v_n := v_n + 1;
  END LOOP;
  RETURN v_n;
END $function$;

CREATE OR REPLACE FUNCTION syncguard._leaf_sig(p_relid oid)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT coalesce(string_agg(format('%s:%s', i.inhrelid, i.xmin), ',' ORDER BY i.inhrelid), '')
    FROM pg_partition_tree(p_relid) t JOIN pg_inherits i ON i.inhrelid = t.relid
   WHERE t.relid::oid <> p_relid
$function$;

-- For health: the signature changed with the same leaves (the leaf change itself is reported by
-- _partition_problems). A DETACH and ATTACH give the partition a new pg_inherits row, so the
-- signature (_leaf_sig) changes; it is compared with the one the catalogue was built with (_as_built).
CREATE OR REPLACE FUNCTION syncguard._leaf_sig_problem(r syncguard.registration)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT 'a partition was detached and attached again since the last drain; the next drain on this node rebuilds the table''s catalogue'
    FROM syncguard._as_built(r) b
   WHERE b.partitioning = 'root' AND b.leaf_sig IS NOT NULL
     AND EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = b.relid AND c.relkind = 'p')
     AND syncguard._leaves(b.relid) = b.leaves AND syncguard._leaf_sig(b.relid) <> b.leaf_sig
$function$;
