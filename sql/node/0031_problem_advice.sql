-- syncguard node schema 0031: health advice that names the table as it is now.
-- _problems (0025) told a renamed table to be registered again under its old name (which then
-- does not exist, or is another table), a dropped one to be registered again at all (register
-- refuses a table that does not exist), and said of a disabled trigger "so all changes are not
-- tracked" (none is). Now: a renamed table is unregistered under its old name and registered
-- under its new one, a dropped table's registration is removed, and a disabled or half-enabled
-- trigger says which changes it does not track.

-- As in 0025, with those three texts.
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
END
$$;
