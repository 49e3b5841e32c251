-- syncguard node schema 0022: the publisher's statement trigger without a settings save and restore.
-- Its function was SECURITY DEFINER with the seven pinned settings (0009), so every write
-- statement on a monitored table saved, set and restored TimeZone, DateStyle, search_path and the
-- rest around a few lines that render no text: integer and range buckets are arithmetic and typed
-- comparisons. Like the subscriber's row trigger for those schemes, it now runs as the owner with
-- no SET clause, and every operator in it is qualified (TG_OP OPERATOR(pg_catalog.=) ...), so the
-- writer's search_path cannot lend it an operator. Hash buckets render the key as text and keep the
-- pinned settings. docs/performance.md has what the settings cost per statement.

-- New registrations: _install_triggers() as in 0009 with those two changes.
DO $$
DECLARE
  v_def text := pg_get_functiondef('syncguard._install_triggers(syncguard.registration)'::regprocedure);
  v_new text;
BEGIN
  v_new := replace(replace(replace(v_def,
    '    v_pinned := true;', '    v_pinned := r.scheme = ''hash'';'),
    '    IF TG_OP = ''INSERT'' THEN', '    IF TG_OP OPERATOR(pg_catalog.=) ''INSERT'' THEN'),
    '    ELSIF TG_OP = ''UPDATE'' THEN', '    ELSIF TG_OP OPERATOR(pg_catalog.=) ''UPDATE'' THEN');
  v_new := replace(v_new, '  -- every trigger function runs as the owner; only the apply path''s int/range row trigger goes
  -- without the pinned settings (it renders no text, and names and operators are qualified)',
                          '  -- every trigger function runs as the owner; only those of hash buckets pin the settings (the
  -- others render no text, and their names and operators are qualified: 0022)');
  IF v_new = v_def OR strpos(v_new, 'v_pinned := r.scheme = ''hash'';') = 0
     OR strpos(v_new, 'IF TG_OP = ''INSERT'' THEN') > 0 OR strpos(v_new, 'ELSIF TG_OP = ''UPDATE'' THEN') > 0 THEN
    RAISE EXCEPTION 'migration 0022 could not rewrite _install_triggers()';
  END IF;
  EXECUTE v_new;
END
$$;

-- Existing registrations: their statement trigger functions, in place (the triggers on the table
-- and its partitions keep calling them).
DO $$
DECLARE
  r syncguard.registration;
  v_fn regprocedure;
  v_def text;
BEGIN
  FOR r IN SELECT * FROM syncguard.registration WHERE node_id = syncguard.node_id() AND scheme <> 'hash' ORDER BY reg_id LOOP
    v_fn := to_regprocedure(syncguard._mark_fn(r.reg_id) || '()');
    CONTINUE WHEN v_fn IS NULL;
    SELECT pg_get_functiondef(v_fn) INTO v_def;
    CONTINUE WHEN strpos(v_def, 'sg_new') = 0;   -- a row trigger's function
    EXECUTE format('ALTER FUNCTION %s RESET ALL', v_fn);
    v_def := replace(replace(pg_get_functiondef(v_fn),
      '    IF TG_OP = ''INSERT'' THEN', '    IF TG_OP OPERATOR(pg_catalog.=) ''INSERT'' THEN'),
      '    ELSIF TG_OP = ''UPDATE'' THEN', '    ELSIF TG_OP OPERATOR(pg_catalog.=) ''UPDATE'' THEN');
    EXECUTE v_def;
  END LOOP;
END
$$;

-- No statement trigger function of an integer or range registration pins a setting, and none
-- compares TG_OP with an unqualified operator.
DO $$
BEGIN
  IF EXISTS (SELECT 1 FROM syncguard.registration r JOIN pg_proc p ON p.oid = to_regprocedure(syncguard._mark_fn(r.reg_id) || '()')
              WHERE r.node_id = syncguard.node_id() AND r.scheme <> 'hash' AND strpos(p.prosrc, 'sg_new') > 0
                AND (strpos(p.prosrc, 'TG_OP = ') > 0 OR p.proconfig IS NOT NULL)) THEN
    RAISE EXCEPTION 'migration 0022 left a statement trigger function with pinned settings or an unqualified operator';
  END IF;
END
$$;
