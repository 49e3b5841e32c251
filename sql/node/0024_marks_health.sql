-- syncguard node schema 0024: what escaped marking or comparison (issue 17 items 3-7, 14).
--
-- Item 3. Hash version 2 casts a domain column to its base type by the base type's name
-- (0020 _column_expr_v2: format('%s::%s', col, base::regtype)). For char(n) and bit(n) that name is
-- `character` / `bit`, which PostgreSQL reads as char(1) / bit(1): 'USD' hashes as 'U' and B'0010'
-- as B'0'. Measured on 15 and 18, a domain over each sized type cast to its unsized name:
--   char(3) 'USD' -> 'U', bit(4) '0010' -> '0', char(3)[] '{USD,EUR}' -> '{U,E}' (truncated);
--   varchar(5), numeric(10,3), varbit(6), time(2), timetz(1), timestamp(1), timestamptz(1),
--   interval(1), interval day to second(2): unchanged (the unsized type is unbounded).
-- Version 2's hashes must not change (that is a new hash version), so such a registration is never
-- made (registration picks version 1 and says why, and refuses --hash-version 2) and an existing
-- one is a health problem: verify does not compare it, and status names the command that moves it.

-- Hashed columns of a table whose type is a domain (at any depth) over character or bit, or over
-- an array of them: version 2 reads them back truncated. [{column, type, base}], base as declared
-- by the innermost domain (e.g. character(3)).
CREATE FUNCTION syncguard._v2_truncated(p_relid oid, p_columns name[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE cols AS (
    SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a
     WHERE a.attrelid = p_relid AND a.attname = ANY(p_columns) AND a.attnum > 0 AND NOT a.attisdropped
  ), d(attname, oid, base, typmod) AS (
    SELECT c.attname, t.oid, t.typbasetype, t.typtypmod FROM cols c JOIN pg_type t ON t.oid = c.atttypid WHERE t.typtype = 'd'
    UNION ALL
    SELECT d.attname, t.oid, t.typbasetype, t.typtypmod FROM d JOIN pg_type t ON t.oid = d.base WHERE t.typtype = 'd'
  )
  SELECT coalesce(jsonb_agg(jsonb_build_object('column', c.attname, 'type', format_type(c.atttypid, c.atttypmod),
                                               'base', format_type(d.base, d.typmod)) ORDER BY c.attname), '[]')
    FROM cols c JOIN d ON d.attname = c.attname
   WHERE d.base IN ('bpchar'::regtype, 'bit'::regtype, '_bpchar'::regtype, '_bit'::regtype)
$$;

-- For registration (the owner): the columns of schema.table among p_columns that version 2 would
-- truncate; '[]' when none or when the table does not exist.
CREATE FUNCTION syncguard.v2_truncated_columns(p_schema text, p_table text, p_columns text[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(syncguard._v2_truncated(to_regclass(format('%I.%I', p_schema, p_table)), p_columns::name[]), '[]')
$$;

-- The problem of a version 2 registration with such a column, or NULL.
CREATE FUNCTION syncguard._v2_problem(r syncguard.registration) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
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
END
$$;

-- The problems this migration adds to health (items 3, 5, 6, 7); each item appends its own below.
CREATE FUNCTION syncguard._more_problems(r syncguard.registration) RETURNS text[]
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_out text[] := '{}';
  v_p text;
BEGIN
  v_p := syncguard._v2_problem(r);
  IF v_p IS NOT NULL THEN
    v_out := v_out || v_p;
  END IF;
  RETURN v_out;
END
$$;

-- As in 0018, and the problems of this migration (_more_problems).
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
  v_out := v_out || syncguard._more_problems(r);
  RETURN v_out;
END
$$;


-- As in 0018, and each table's hash version problem (item 3), which status shows with its fix.
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
        'hashProblem', syncguard._v2_problem(r),
        'fault', (SELECT string_agg(format('%s: %s', f.kind, f.message), '; ' ORDER BY f.kind) FROM syncguard.fault f WHERE f.reg_id = r.reg_id))
        ORDER BY r.schema_name, r.table_name) FROM syncguard.registration r WHERE r.node_id = syncguard.node_id()), '[]'::jsonb))
  FROM (SELECT 1) one LEFT JOIN syncguard.node_state n ON n.node_id = syncguard.node_id()
$$;
