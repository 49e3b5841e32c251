-- What a repair runs and with whose rights: the statements a repair applies, the privileges it
-- needs, and the user code (triggers, defaults, index expressions) it would run, which is refused
-- rather than run with syncguard's rights.

-- Publisher: the ids of this node's repair requests of a plan on a table, oldest first. A run
-- killed after it sent a plan's repair request leaves the plan `applying`. The request is on the
-- publisher (this node's probe of kind 'repair' naming the plan, kept an hour) and its answer on
-- the subscriber, so a later run recovers the outcome from there.
CREATE OR REPLACE FUNCTION syncguard.repair_requests(p_schema text, p_table text, p_plan text)
RETURNS bigint[] LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT coalesce(array_agg(p.id ORDER BY p.id), '{}') FROM syncguard.probe p
   WHERE p.origin = syncguard.node_id() AND p.kind = 'repair' AND p.schema_name = p_schema AND p.table_name = p_table
     AND p.request->>'plan' = p_plan
$function$;

-- Subscriber: whether the syncguard owner may write repairs to the table (checked before a plan
-- is made and before it is sent; the trigger would otherwise report every change as failed).
CREATE OR REPLACE FUNCTION syncguard.repair_privileges(p_schema text, p_table text)
RETURNS text[] LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT coalesce(array_agg(x.p ORDER BY x.o), '{}') FROM unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) WITH ORDINALITY x(p, o)
   WHERE to_regclass(format('%I.%I', p_schema, p_table)) IS NOT NULL
     AND NOT has_table_privilege(format('%I.%I', p_schema, p_table), x.p)
$function$;

-- The code a repair would run with syncguard's rights. The repair's DML runs inside the
-- probe trigger, as the owner of syncguard's functions, and the publisher's repair_request reads
-- the rows as that owner too; user code either sets off runs with those rights (it could delete
-- syncguard.local_write rows or forge probe answers). Listed, on the table and its partitions:
--   ENABLE ALWAYS / REPLICA triggers (those fire under session_replication_role = replica), also
--   the clones a partitioned table's trigger makes on its partitions (tgisinternal, tgparentid <> 0),
--   and rules;
--   every non-built-in function or operator (oid >= 16384) that a generated column, a CHECK, an
--   index expression or predicate, or a constraint of a domain anywhere in a column's type (over
--   domains, array elements, composite attributes, range subtypes) calls;
--   the DEFAULT of a column the repair's INSERT leaves out (not registered, or generated), its own
--   or its domain's: a default of a column the repair always writes never runs, so it is not listed
--   (an extension's uuid_generate_v4() there is fine);
--   a user-defined cast (castfunc not built in) from text to a column's type or from the type to
--   text (the repair writes $1[i]::type, the readers col::text), and a type anywhere in a column's
--   type whose input or output function is not built in and not an extension's (the I/O
--   conversion path when there is no cast, and record_in / array_in / range_in of nested types).
-- A relation that belongs to syncguard's owner is not listed: its code already runs with those
-- rights. Empty: nothing runs. Granted to repair roles (_role_functions); SECURITY DEFINER: it reads
-- the registration's columns (which defaults a repair leaves out), and it reads only catalogs.
CREATE OR REPLACE FUNCTION syncguard.repair_user_code(p_schema text, p_table text)
RETURNS text[] LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  WITH me AS (SELECT p.proowner AS o FROM pg_proc p WHERE p.oid = 'syncguard._probe_apply()'::regprocedure),
  reg AS (
    SELECT g.columns FROM syncguard.registration g
     WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table
  ),
  rel AS (
    SELECT c.oid, c.relname, n.nspname
      FROM (SELECT to_regclass(format('%I.%I', p_schema, p_table)) AS relid
            UNION SELECT t.relid FROM pg_partition_tree(to_regclass(format('%I.%I', p_schema, p_table))) t) t
      JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relowner <> (SELECT o FROM me)
  ),
  -- user functions and operators an object depends on (oid >= 16384: not built in)
  calls AS (
    SELECT d.classid, d.objid, string_agg(DISTINCT CASE WHEN d.refclassid = 'pg_proc'::regclass THEN d.refobjid::regprocedure::text
                                                        ELSE 'operator ' || d.refobjid::regoperator::text END, ', ') AS fns
      FROM pg_depend d
     WHERE d.refclassid IN ('pg_proc'::regclass, 'pg_operator'::regclass) AND d.refobjid >= 16384
       AND d.classid IN ('pg_attrdef'::regclass, 'pg_constraint'::regclass, 'pg_class'::regclass, 'pg_type'::regclass)
     GROUP BY d.classid, d.objid
  ),
  cols AS (
    SELECT a.attrelid AS rel, a.attname AS col, a.atttypid AS typ, a.attnum, a.attgenerated,
           a.attgenerated <> '' OR (EXISTS (SELECT 1 FROM reg) AND NOT EXISTS (SELECT 1 FROM reg g WHERE a.attname = ANY(g.columns))) AS left_out
      FROM pg_attribute a WHERE a.attrelid IN (SELECT oid FROM rel) AND a.attnum > 0 AND NOT a.attisdropped
  ),
  -- every type inside a column's type: over domains, array elements, composite attributes, range
  -- subtypes and a multirange's range (depth bounded against cycles)
  nested AS (
    WITH RECURSIVE nt(rel, col, typ, depth) AS (
      SELECT c.rel, c.col, c.typ, 0 FROM cols c
      UNION
      SELECT nt.rel, nt.col, x.typ, nt.depth + 1
        FROM nt JOIN pg_type t ON t.oid = nt.typ
        CROSS JOIN LATERAL (
          SELECT t.typbasetype AS typ WHERE t.typtype = 'd'
          UNION ALL SELECT t.typelem WHERE t.typelem <> 0 AND t.typcategory = 'A'
          UNION ALL SELECT a.atttypid FROM pg_attribute a WHERE t.typtype = 'c' AND a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped
          UNION ALL SELECT rg.rngsubtype FROM pg_range rg WHERE t.typtype = 'r' AND rg.rngtypid = t.oid
          -- a multirange's range (PostgreSQL 14+; read through to_jsonb so that the function also builds on 13)
          UNION ALL SELECT rg.rngtypid FROM pg_range rg WHERE t.typtype = 'm' AND (to_jsonb(rg) ->> 'rngmultitypid')::oid = t.oid
        ) x
       WHERE nt.depth < 20
    )
    SELECT DISTINCT rel, col, typ FROM nt
  ),
  -- the column's type and the domains it is over (the type a cast from or to text names)
  chain AS (
    WITH RECURSIVE ch(rel, col, typ, left_out, has_default, depth) AS (
      SELECT c.rel, c.col, c.typ, c.left_out AND c.attgenerated = '',
             EXISTS (SELECT 1 FROM pg_attrdef ad WHERE ad.adrelid = c.rel AND ad.adnum = c.attnum), 0
        FROM cols c
      UNION ALL
      SELECT ch.rel, ch.col, t.typbasetype, ch.left_out, ch.has_default OR t.typdefaultbin IS NOT NULL, ch.depth + 1
        FROM ch JOIN pg_type t ON t.oid = ch.typ WHERE t.typtype = 'd' AND ch.depth < 20
    )
    SELECT * FROM ch
  ),
  found AS (
    SELECT format('trigger %I on %I.%I (ENABLE %s) runs %s', tg.tgname, r.nspname, r.relname,
                  CASE tg.tgenabled WHEN 'A' THEN 'ALWAYS' ELSE 'REPLICA' END, tg.tgfoid::regprocedure) AS what
      FROM pg_trigger tg JOIN rel r ON r.oid = tg.tgrelid JOIN pg_proc f ON f.oid = tg.tgfoid
     WHERE (NOT tg.tgisinternal OR tg.tgparentid <> 0) AND tg.tgenabled IN ('A', 'R') AND f.pronamespace <> 'syncguard'::regnamespace
    UNION ALL
    SELECT format('rule %I on %I.%I (ENABLE %s)', rw.rulename, r.nspname, r.relname, CASE rw.ev_enabled WHEN 'A' THEN 'ALWAYS' ELSE 'REPLICA' END)
      FROM pg_rewrite rw JOIN rel r ON r.oid = rw.ev_class
     WHERE rw.ev_enabled IN ('A', 'R') AND rw.rulename <> '_RETURN'
    UNION ALL
    SELECT format('%s of column %I of %I.%I calls %s', CASE WHEN c.attgenerated <> '' THEN 'generated expression' ELSE 'default' END,
                  c.col, r.nspname, r.relname, k.fns)
      FROM pg_attrdef ad JOIN rel r ON r.oid = ad.adrelid
      JOIN cols c ON c.rel = ad.adrelid AND c.attnum = ad.adnum AND c.left_out
      JOIN calls k ON k.classid = 'pg_attrdef'::regclass AND k.objid = ad.oid
    UNION ALL
    -- a domain's default is used for a left-out column only when nothing closer has one
    -- (has_default: the column's own default or a domain's above this one)
    SELECT format('default of domain %s (column %I of %I.%I, which a repair leaves out) calls %s', ch.typ::regtype, ch.col, r.nspname, r.relname, k.fns)
      FROM chain ch JOIN rel r ON r.oid = ch.rel
      JOIN calls k ON k.classid = 'pg_type'::regclass AND k.objid = ch.typ
     WHERE ch.left_out AND NOT ch.has_default
    UNION ALL
    SELECT format('%s constraint %I of %I.%I calls %s', CASE co.contype WHEN 'c' THEN 'check' WHEN 'x' THEN 'exclusion' ELSE co.contype::text END,
                  co.conname, r.nspname, r.relname, k.fns)
      FROM pg_constraint co JOIN rel r ON r.oid = co.conrelid
      JOIN calls k ON k.classid = 'pg_constraint'::regclass AND k.objid = co.oid
    UNION ALL
    SELECT format('check constraint %I of domain %s (in column %I of %I.%I) calls %s', co.conname, d.typ::regtype, d.col, r.nspname, r.relname, k.fns)
      FROM nested d JOIN rel r ON r.oid = d.rel JOIN pg_constraint co ON co.contypid = d.typ
      JOIN calls k ON k.classid = 'pg_constraint'::regclass AND k.objid = co.oid
    UNION ALL
    SELECT format('cast from %s to %s (column %I of %I.%I) runs %s', ca.castsource::regtype, ca.casttarget::regtype, ch.col, r.nspname, r.relname,
                  ca.castfunc::regprocedure)
      FROM chain ch JOIN rel r ON r.oid = ch.rel
      JOIN pg_cast ca ON (ca.castsource = 'text'::regtype AND ca.casttarget = ch.typ) OR (ca.castsource = ch.typ AND ca.casttarget = 'text'::regtype)
     WHERE ca.castfunc >= 16384
    UNION ALL
    SELECT format('type %s (in column %I of %I.%I) converts from or to text with %s', d.typ::regtype, d.col, r.nspname, r.relname, f.oid::regprocedure)
      FROM nested d JOIN rel r ON r.oid = d.rel JOIN pg_type t ON t.oid = d.typ
      JOIN pg_proc f ON f.oid IN (t.typinput, t.typoutput)
     WHERE f.oid >= 16384
       AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = f.oid AND e.deptype = 'e')
    UNION ALL
    SELECT format('index %I of %I.%I calls %s in its expression or predicate', ic.relname, r.nspname, r.relname, k.fns)
      FROM pg_index ix JOIN rel r ON r.oid = ix.indrelid JOIN pg_class ic ON ic.oid = ix.indexrelid
      JOIN calls k ON k.classid = 'pg_class'::regclass AND k.objid = ix.indexrelid
  )
  SELECT coalesce(array_agg(DISTINCT what ORDER BY what), '{}') FROM found
$function$;

CREATE OR REPLACE FUNCTION syncguard._repair_dml(r syncguard.registration, OUT ins text, OUT upd text, OUT del text)
RETURNS record LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_tbl text := format('%I.%I', r.schema_name, r.table_name);
  v_rel text := syncguard._rel(r.schema_name, r.table_name);
  v_hash text := syncguard._hash_expr(r, 'sg_t');
  v_cols text;
  v_vals text;
  v_set text;
  v_override text;
  v_key text;
BEGIN
  SELECT string_agg(quote_ident(c), ', ' ORDER BY o),
         string_agg(format('$1[%s]::%s', o, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY o),
         string_agg(format('%I = $1[%s]::%s', c, o, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY o)
           FILTER (WHERE c <> ALL(r.key_columns) AND a.attidentity <> 'a'),
         CASE WHEN bool_or(a.attidentity = 'a') THEN ' OVERRIDING SYSTEM VALUE' ELSE '' END
    INTO v_cols, v_vals, v_set, v_override
    FROM unnest(r.columns) WITH ORDINALITY u(c, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.c
   WHERE a.attgenerated = '';
  IF cardinality(r.key_columns) = 0 THEN
    -- no key to conflict on, so the count of copies is the precondition: a copy is inserted only
    -- while the subscriber holds exactly one copy fewer than its number
    ins := format('WITH sg_c AS MATERIALIZED (SELECT sg_t.ctid AS sg_i FROM %1$s sg_t WHERE md5(%2$s) = $2[1] FOR UPDATE) '
                  'INSERT INTO %3$s (%4$s)%5$s SELECT %6$s WHERE (SELECT count(*) FROM sg_c) = $4 - 1',
                  v_rel, replace(v_hash, 'syncguard.row_hash(', '('), v_tbl, v_cols, v_override, v_vals);
    upd := NULL;
    -- every copy with this content is locked (a concurrent writer's change is re-checked by FOR
    -- UPDATE), and one of them goes only if there are still as many as the plan saw
    del := format('WITH sg_c AS MATERIALIZED (SELECT sg_t.tableoid AS sg_o, sg_t.ctid AS sg_i FROM %1$s sg_t '
                  'WHERE md5(%2$s) = $2[1] AND %3$s = $3 FOR UPDATE) '
                  'DELETE FROM %1$s sg_d WHERE (sg_d.tableoid, sg_d.ctid) = '
                  '(SELECT sg_c.sg_o, sg_c.sg_i FROM sg_c WHERE (SELECT count(*) FROM sg_c) >= $4 LIMIT 1)',
                  v_rel, replace(v_hash, 'syncguard.row_hash(', '('), v_hash);
    RETURN;
  END IF;
  SELECT string_agg(format('sg_t.%I = $2[%s]::%s', k, o, format_type(a.atttypid, a.atttypmod)), ' AND ' ORDER BY o)
    INTO v_key
    FROM unnest(r.key_columns) WITH ORDINALITY u(k, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.k;
  ins := format('INSERT INTO %s (%s)%s VALUES (%s) ON CONFLICT (%s) DO NOTHING', v_tbl, v_cols, v_override, v_vals,
                (SELECT string_agg(quote_ident(k), ', ' ORDER BY o) FROM unnest(r.key_columns) WITH ORDINALITY u(k, o)));
  upd := format('UPDATE %s sg_t SET %s WHERE %s AND %s = $3', v_rel,
                coalesce(v_set, format('%1$I = sg_t.%1$I', r.key_columns[1])), v_key, v_hash);
  del := format('DELETE FROM %s sg_t WHERE %s AND %s = $3', v_rel, v_key, v_hash);
END $function$;

CREATE OR REPLACE FUNCTION syncguard._repair_statements(r syncguard.registration, OUT upsert text, OUT del text)
RETURNS record LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
                  v_rel, replace(syncguard._hash_expr(r, 'sg_t'), 'syncguard.row_hash(', '('));
    RETURN;
  END IF;
  upsert := format('INSERT INTO %s (%s)%s VALUES (%s) ON CONFLICT (%s) DO %s', v_tbl, v_cols, v_override, v_vals,
                   (SELECT string_agg(quote_ident(k), ', ' ORDER BY o) FROM unnest(r.key_columns) WITH ORDINALITY u(k, o)),
                   CASE WHEN v_set IS NULL THEN 'NOTHING' ELSE 'UPDATE SET ' || v_set END);
  del := format('DELETE FROM %s WHERE %s', v_rel,
                (SELECT string_agg(format('%I = $1[%s]::%s', k, o, format_type(a.atttypid, a.atttypmod)), ' AND ' ORDER BY o)
                   FROM unnest(r.key_columns) WITH ORDINALITY u(k, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.k));
END $function$;
