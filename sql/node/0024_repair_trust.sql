-- syncguard node schema 0024: repairs that trust nothing the request says (docs/repair.md).
--   item 10: the publisher checks each change against its own rows under the SHARE lock: a delete
--            is sent only for a key the publisher does not hold, and key values that are not the
--            change's key are refused; the subscriber finds the row to change by its own key
--            values, never by values from the request.
--   item 11: the subscriber's precondition is in the statement that writes: UPDATE / DELETE ...
--            WHERE key AND row hash = the hash just checked, INSERT ... ON CONFLICT DO NOTHING; a
--            row without a key is deleted by a ctid chosen, with its hash, under FOR UPDATE.
--   item 2:  every lock wait on the apply path is bounded (lock_timeout, 100 ms by default, at most
--            5 s, per request), and a change whose row stays locked is recorded as failed; after
--            three such waits the rest of the request is not tried. The trigger never raises.
--   item 15: a repair converges on a row the publisher keeps changing. At the request's position
--            the publisher's current row is the right value: the request carries the current row
--            of each planned key (or its absence: then the change deletes), whatever its hash was at
--            inspection. On the subscriber, a row that moved since the inspection is written only
--            when it moved by applied changes: no local write recorded in its bucket
--            (syncguard.local_write) is invisible to the inspection's snapshot, which the
--            inspection probe's answer now carries and the plan takes along. A table without a key
--            keeps the strict preconditions (its rows are named by their content).
--   item 8:  no repair on a table whose repair would run its owner's code (ALWAYS/REPLICA
--            triggers and rules, non-built-in functions in defaults, generated columns, checks,
--            domain constraints anywhere in a column's type, defaults of columns the repair leaves
--            out (their own or their domain's), user casts from/to text, non-built-in type I/O,
--            index expressions and predicates) with syncguard's rights, unless syncguard's owner
--            owns the table: refused when planned, by the publisher's repair_request, and again by
--            the subscriber.

-- The key text ROW(k1, ..., kn)::text of some key values (as text, cast to the key columns'
-- types), under the pinned settings; for a table without a key, the md5 a row name starts with.
-- Whether p_values are the values of key p_key.
CREATE FUNCTION syncguard._key_values_match(r syncguard.registration, p_key text, p_values jsonb) RETURNS boolean
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET client_encoding = 'UTF8' SET max_parallel_workers_per_gather = 0
SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_text text;
BEGIN
  IF p_key IS NULL OR jsonb_typeof(p_values) IS DISTINCT FROM 'array' THEN
    RETURN false;
  END IF;
  IF cardinality(r.key_columns) = 0 THEN
    RETURN jsonb_array_length(p_values) = 1 AND (p_values->>0) IS NOT DISTINCT FROM split_part(p_key, '#', 1);
  END IF;
  IF jsonb_array_length(p_values) <> cardinality(r.key_columns) THEN
    RETURN false;
  END IF;
  BEGIN
    EXECUTE format('SELECT ROW(%s)::text',
                   (SELECT string_agg(format('$1[%s]::%s', o, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY o)
                      FROM unnest(r.key_columns) WITH ORDINALITY u(k, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.k))
      INTO v_text
      USING ARRAY(SELECT CASE WHEN jsonb_typeof(e) = 'null' THEN NULL ELSE e #>> '{}' END
                    FROM jsonb_array_elements(p_values) WITH ORDINALITY u(e, o) ORDER BY o);
  EXCEPTION WHEN OTHERS THEN
    RETURN false;                                  -- not even values of the key's types
  END;
  RETURN v_text IS NOT DISTINCT FROM p_key;
END
$$;

-- The statements a repair runs on a subscriber table, each with its precondition inside:
--   $1 text[]: the row's column values (insert, update); $2 text[]: the key values of the
--   subscriber's own row (update, delete; a table without a key: its md5); $3 bigint: the hash the
--   row must still have (update, delete); $4 integer: a table without a key, the copy's number
--   (there must still be at least that many copies).
CREATE FUNCTION syncguard._repair_dml(r syncguard.registration, OUT ins text, OUT upd text, OUT del text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
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
    ins := format('INSERT INTO %s (%s)%s VALUES (%s)', v_tbl, v_cols, v_override, v_vals);
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
END
$$;

-- Publisher: the repair request of an approved plan. p_changes: [{key, op: 'upsert'|'delete',
-- subHash, pubHash, keyValues?}] (a hash null = the row absent), or {changes: [...],
-- lockTimeoutMs?, snapshot?} (how long the subscriber waits for a locked row; the subscriber's
-- snapshot at the inspection). Under the SHARE lock, each change is checked against the
-- publisher's rows: an unknown op, or key values that are not the change's key, are 'refused'; a
-- delete of a key the publisher holds is 'publisher_changed'. The others go into the request with
-- the publisher's row as it is now: an upsert of its values, or a delete where it is absent
-- (item 15: a row changed since inspection is repaired to its current value). A table without a
-- key keeps the strict check (its row hash as inspected). A delete carries no key values: the
-- subscriber finds its own row by the key.
-- Returns {id (null when nothing was sent), sent, skipped: [{key, outcome, error}], lockWaitMs, holdMs}.
CREATE OR REPLACE FUNCTION syncguard.repair_request(p_schema text, p_table text, p_bucket bigint, p_changes jsonb, p_plan text,
                                                    p_target uuid, p_subscription text) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration := syncguard._publisher_reg(p_schema, p_table);
  v_list jsonb := CASE WHEN jsonb_typeof(p_changes) = 'object' THEN p_changes->'changes' ELSE p_changes END;
  v_opts jsonb := CASE WHEN jsonb_typeof(p_changes) = 'object' THEN p_changes - 'changes' ELSE '{}' END;
  v_t0 timestamptz := clock_timestamp();
  v_t1 timestamptz;
  v_send jsonb := '[]';
  v_skip jsonb := '[]';
  v_id bigint;
  v_request jsonb;
  c jsonb;
  v_now jsonb;
  v_row jsonb;
  v_keyless boolean := cardinality(r.key_columns) = 0;
  v_code text[];
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'a repair needs a READ COMMITTED transaction' USING ERRCODE = 'invalid_transaction_state';
  END IF;
  -- item 8: the rows are read (col::text, casts) as syncguard's owner here too
  v_code := syncguard.repair_user_code(p_schema, p_table);
  IF cardinality(v_code) > 0 THEN
    RAISE EXCEPTION 'no repair of %.%: it would run code of the table''s owner with syncguard''s rights on the publisher: %',
      quote_ident(p_schema), quote_ident(p_table), array_to_string(v_code, '; ')
      USING ERRCODE = 'insufficient_privilege', HINT = 'remove that code from the table, or give the table to syncguard''s owner, then plan again';
  END IF;
  IF jsonb_typeof(v_list) IS DISTINCT FROM 'array' THEN
    RAISE EXCEPTION 'a repair request''s changes are a JSON array' USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF jsonb_array_length(v_list) > 10000 THEN
    RAISE EXCEPTION 'a repair request carries at most 10000 changes, got %', jsonb_array_length(v_list)
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  EXECUTE format('LOCK TABLE %s IN SHARE MODE', syncguard._rel(p_schema, p_table));
  v_t1 := clock_timestamp();
  -- the publisher's rows of the planned keys, now that no writer can change them
  SELECT coalesce(jsonb_object_agg(b.key_text, jsonb_build_object('hash', b.row_hash::text, 'keyValues', to_jsonb(b.key_values),
                                                                   'values', to_jsonb(b.column_values))), '{}')
    INTO v_now
    FROM syncguard._bucket_rows(r.reg_id, p_bucket, ARRAY(SELECT x->>'key' FROM jsonb_array_elements(v_list) x)) b;
  FOR c IN SELECT x FROM jsonb_array_elements(v_list) x LOOP
    v_row := v_now->(c->>'key');
    IF jsonb_typeof(c) IS DISTINCT FROM 'object' OR c->>'key' IS NULL OR (c->>'op') IS NULL OR c->>'op' NOT IN ('upsert', 'delete') THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'refused', 'error', 'a change is an upsert or a delete of one key');
    ELSIF c ? 'keyValues' AND NOT syncguard._key_values_match(r, c->>'key', c->'keyValues') THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'refused', 'error', 'its key values are not its key');
    ELSIF c->>'op' = 'delete' AND v_row IS NOT NULL THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'publisher_changed',
                                             'error', 'the publisher holds this row; a delete is sent only for a row the publisher does not have');
    ELSIF v_keyless AND (v_row->>'hash') IS DISTINCT FROM (c->>'pubHash') THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'publisher_changed');
    ELSIF v_row IS NOT NULL THEN
      -- the publisher's row as it is at this position, whatever it was at inspection
      v_send := v_send || jsonb_build_object('key', c->>'key', 'op', 'upsert', 'subHash', c->'subHash', 'pubHash', v_row->'hash',
                                             'plannedPubHash', c->'pubHash', 'keyValues', v_row->'keyValues', 'values', v_row->'values');
    ELSE
      -- absent on the publisher here (a planned delete, or an upsert of a row deleted since)
      v_send := v_send || jsonb_build_object('key', c->>'key', 'op', 'delete', 'subHash', c->'subHash', 'pubHash', NULL,
                                             'plannedPubHash', c->'pubHash');
    END IF;
  END LOOP;
  IF jsonb_array_length(v_send) > 0 THEN
    v_request := jsonb_build_object('subscription', p_subscription, 'bucket', p_bucket, 'plan', p_plan, 'columns', to_jsonb(r.columns),
                                    'changes', v_send);
    IF jsonb_typeof(v_opts->'lockTimeoutMs') = 'number' THEN
      v_request := v_request || jsonb_build_object('lockTimeoutMs', v_opts->'lockTimeoutMs');
    END IF;
    IF jsonb_typeof(v_opts->'snapshot') = 'string' THEN
      v_request := v_request || jsonb_build_object('snapshot', v_opts->'snapshot');
    END IF;
    INSERT INTO syncguard.probe (origin, id, target, kind, schema_name, table_name, fingerprint, request)
    VALUES (syncguard.node_id(), nextval('syncguard.probe_id_seq'), p_target, 'repair', p_schema, p_table, r.fingerprint, v_request)
    RETURNING id INTO v_id;
  END IF;
  RETURN jsonb_build_object('id', v_id, 'sent', jsonb_array_length(v_send), 'skipped', v_skip,
                            'lockWaitMs', round(extract(epoch FROM v_t1 - v_t0)::numeric * 1000, 3),
                            'holdMs', round(extract(epoch FROM clock_timestamp() - v_t1)::numeric * 1000, 3));
END
$$;

-- item 8: the code a repair would run with syncguard's rights. The repair's DML runs inside the
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
-- rights. Empty: nothing runs. Granted to repair roles (below); SECURITY DEFINER because it reads
-- the registration's columns (which defaults a repair leaves out), and it reads only catalogs.
CREATE FUNCTION syncguard.repair_user_code(p_schema text, p_table text) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
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
$$;

-- Subscriber: applies one repair request (called by the probe trigger, inside the apply
-- transaction). Returns {changes: [{key, outcome, op, hash, error?}]}, outcome one of applied,
-- already_equal, changed_since_inspection, refused, failed (a written row that does not hash as
-- the publisher's is rolled back and recorded as failed, with the reason); hash is the
-- publisher row's hash the change writes (null: the row is deleted).
CREATE OR REPLACE FUNCTION syncguard._repair_apply(r syncguard.registration, p syncguard.probe) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET client_encoding = 'UTF8' SET max_parallel_workers_per_gather = 0
SET search_path = pg_catalog, pg_temp SET row_security = off
SET lock_timeout = '100ms'
AS $$
DECLARE
  v_bucket bigint := (p.request->>'bucket')::bigint;
  v_keys text[] := ARRAY(SELECT x->>'key' FROM jsonb_array_elements(p.request->'changes') x);
  v_keyless boolean := cardinality(r.key_columns) = 0;
  v_lock_ms integer := 100;
  v_kpos integer[];
  s record;
  v_now jsonb;
  v_out jsonb := '[]';
  v_wrote text;
  v_waits integer := 0;
  c jsonb;
  v_key text;
  v_cur jsonb;
  v_hash text;
  v_target text;
  v_vals text[];
  v_n bigint;
  v_res jsonb;
  v_snap pg_snapshot;
  v_moved_ok boolean := false;
  v_code text[];
BEGIN
  IF (SELECT array_agg(x ORDER BY o) FROM jsonb_array_elements_text(p.request->'columns') WITH ORDINALITY u(x, o))::name[] IS DISTINCT FROM r.columns THEN
    RETURN jsonb_build_object('error', 'the request names other columns than the subscriber registration');
  END IF;
  IF jsonb_typeof(p.request->'lockTimeoutMs') = 'number' THEN
    v_lock_ms := least(greatest((p.request->>'lockTimeoutMs')::numeric, 1), 5000)::integer;
  END IF;
  -- restored when this function returns (its SET clause), so the apply transaction keeps its own
  PERFORM set_config('lock_timeout', v_lock_ms || 'ms', true);
  v_code := syncguard.repair_user_code(r.schema_name, r.table_name);
  IF cardinality(v_code) > 0 THEN
    RETURN jsonb_build_object('changes', (SELECT coalesce(jsonb_agg(jsonb_build_object('key', x->>'key', 'op', x->>'op', 'hash', x->'pubHash',
             'outcome', 'refused', 'error', 'the repair would run code of the table''s owner with syncguard''s rights: ' || array_to_string(v_code, '; '))
             ORDER BY o), '[]') FROM jsonb_array_elements(p.request->'changes') WITH ORDINALITY u(x, o)));
  END IF;
  s := syncguard._repair_dml(r);
  v_kpos := ARRAY(SELECT array_position(r.columns, k) FROM unnest(r.key_columns) WITH ORDINALITY u(k, o) ORDER BY o);
  SELECT coalesce(jsonb_object_agg(b.key_text, jsonb_build_object('hash', b.row_hash::text, 'keyValues', to_jsonb(b.key_values))), '{}')
    INTO v_now
    FROM syncguard._bucket_rows(r.reg_id, v_bucket, v_keys) b;
  -- a row that moved since the inspection may be written only if it moved by applied changes:
  -- checked after the rows were read, so a local write committed before that read is counted;
  -- no local write recorded in the bucket is missing from the inspection's snapshot
  IF NOT v_keyless AND jsonb_typeof(p.request->'snapshot') = 'string' THEN
    BEGIN
      v_snap := (p.request->>'snapshot')::pg_snapshot;
    EXCEPTION WHEN OTHERS THEN
      v_snap := NULL;
    END;
    v_moved_ok := v_snap IS NOT NULL AND NOT EXISTS (
      SELECT 1 FROM syncguard.local_write w
       WHERE w.reg_id = r.reg_id AND w.bucket = v_bucket AND NOT pg_visible_in_snapshot(w.xid, v_snap));
  END IF;
  FOR c IN SELECT x FROM jsonb_array_elements(p.request->'changes') x LOOP
    v_key := c->>'key';
    v_cur := v_now->v_key;
    v_hash := v_cur->>'hash';
    v_target := c->>'pubHash';
    v_res := jsonb_build_object('key', v_key, 'op', c->>'op', 'hash', v_target);
    v_vals := ARRAY(SELECT CASE WHEN jsonb_typeof(e) = 'null' THEN NULL ELSE e #>> '{}' END
                      FROM jsonb_array_elements(coalesce(c->'values', '[]')) WITH ORDINALITY u(e, o) ORDER BY o);
    IF (c->>'op') IS NULL OR c->>'op' NOT IN ('upsert', 'delete') OR (c->>'op' = 'delete') <> (v_target IS NULL)
       OR (c->>'op' = 'upsert' AND cardinality(v_vals) <> cardinality(r.columns)) THEN
      v_out := v_out || (v_res || '{"outcome": "refused", "error": "a change is an upsert of the publisher row or the delete of a row the publisher does not have"}');
    ELSIF c->>'op' = 'upsert' AND NOT v_keyless
          AND NOT syncguard._key_values_match(r, v_key, to_jsonb(ARRAY(SELECT v_vals[i] FROM unnest(v_kpos) WITH ORDINALITY u(i, o) ORDER BY o))) THEN
      v_out := v_out || (v_res || '{"outcome": "refused", "error": "its values are not of its key"}');
    ELSIF v_hash IS NOT DISTINCT FROM v_target THEN
      v_out := v_out || (v_res || '{"outcome": "already_equal"}');
    ELSIF v_hash IS DISTINCT FROM c->>'subHash' AND NOT (v_moved_ok AND v_hash IS NOT NULL) THEN
      -- changed since inspection by a local write (or lost here while the publisher holds it)
      v_out := v_out || (v_res || '{"outcome": "changed_since_inspection"}');
    ELSIF v_waits >= 3 THEN
      v_out := v_out || (v_res || jsonb_build_object('outcome', 'failed', 'error',
                 format('not tried: three rows of this request were locked by other sessions for more than %s ms each', v_lock_ms)));
    ELSE
      BEGIN
        IF v_target IS NULL THEN
          IF v_keyless THEN
            EXECUTE s.del USING NULL::text[], ARRAY[split_part(v_key, '#', 1)], v_hash::bigint, split_part(v_key, '#', 2)::integer;
          ELSE
            EXECUTE s.del USING NULL::text[], ARRAY(SELECT jsonb_array_elements_text(v_cur->'keyValues')), v_hash::bigint;
          END IF;
        ELSIF v_hash IS NULL THEN
          EXECUTE s.ins USING v_vals;
        ELSIF v_keyless THEN
          RAISE EXCEPTION 'a row without a key is named by its content, so its copy cannot differ';
        ELSE
          EXECUTE s.upd USING v_vals, ARRAY(SELECT jsonb_array_elements_text(v_cur->'keyValues')), v_hash::bigint;
        END IF;
        GET DIAGNOSTICS v_n = ROW_COUNT;
        IF v_n = 1 THEN
          -- the written row must hash as the publisher's (absent for a delete), else this change
          -- rolls back (the block's savepoint) and is recorded as failed: a repair never leaves a
          -- row that is neither the subscriber's old value nor the publisher's
          SELECT b.row_hash::text INTO v_wrote FROM syncguard._bucket_rows(r.reg_id, v_bucket, ARRAY[v_key]) b;
          IF v_wrote IS DISTINCT FROM v_target THEN
            RAISE EXCEPTION 'the written row hashes as % instead of the publisher''s %; the change was rolled back',
              coalesce(v_wrote, 'absent'), coalesce(v_target, 'absent');
          END IF;
          v_out := v_out || (v_res || '{"outcome": "applied"}');
        ELSE
          -- the row changed between the check and the write: the statement's own precondition
          v_out := v_out || (v_res || '{"outcome": "changed_since_inspection"}');
        END IF;
      EXCEPTION
        WHEN lock_not_available THEN
          v_waits := v_waits + 1;
          v_out := v_out || (v_res || jsonb_build_object('outcome', 'failed', 'error',
                     format('the row was locked by another session for more than %s ms; replication went on without this change', v_lock_ms)));
        WHEN OTHERS THEN
          v_out := v_out || (v_res || jsonb_build_object('outcome', 'failed', 'error', left(SQLERRM, 300)));
      END;
    END IF;
  END LOOP;
  RETURN jsonb_build_object('changes', v_out);
END
$$;

-- The subscriber's answers, as in 0014; an inspection ('rows') answers {rows, snapshot}: its
-- (key, hash) list and the snapshot taken just before it was read, so that a repair can tell local
-- writes after the inspection from those it saw (item 15).
CREATE OR REPLACE FUNCTION syncguard._probe_answer(p syncguard.probe) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_buckets bigint[];
  v_rows bigint;
  v_caps jsonb := syncguard._probe_caps();
  v_snap text;
BEGIN
  IF p.kind = 'marker' THEN
    RETURN jsonb_build_object('ok', true, 'answer', '{}'::jsonb);
  ELSIF p.kind IS NULL OR p.kind NOT IN ('buckets', 'rows', 'repair') THEN
    RETURN jsonb_build_object('ok', false, 'error', format('unknown probe kind %L; upgrade syncguard on the subscriber', p.kind));
  END IF;
  SELECT * INTO r FROM syncguard.registration g
   WHERE g.node_id = syncguard.node_id() AND g.schema_name = p.schema_name AND g.table_name = p.table_name;
  IF NOT FOUND THEN
    RETURN jsonb_build_object('ok', false, 'error', format('table %I.%I is not registered on the subscriber', p.schema_name, p.table_name));
  ELSIF r.node_role <> 'subscriber' THEN
    RETURN jsonb_build_object('ok', false, 'error', format('table %I.%I is registered here as a %s', p.schema_name, p.table_name, r.node_role));
  ELSIF r.fingerprint IS DISTINCT FROM p.fingerprint THEN
    RETURN jsonb_build_object('ok', false, 'error', format('registration fingerprints differ: publisher %s, subscriber %s', p.fingerprint, r.fingerprint));
  ELSIF to_regclass(format('%I.%I', r.schema_name, r.table_name)) IS DISTINCT FROM r.relid THEN
    RETURN jsonb_build_object('ok', false, 'error', format('table %I.%I was dropped or renamed on the subscriber', r.schema_name, r.table_name));
  ELSIF EXISTS (SELECT 1 FROM syncguard.fault f WHERE f.reg_id = r.reg_id) THEN
    RETURN jsonb_build_object('ok', false, 'error', 'the subscriber registration has a recorded fault');
  END IF;
  IF p.kind = 'buckets' THEN
    v_buckets := ARRAY(SELECT jsonb_array_elements_text(p.request->'buckets')::bigint);
  ELSE
    v_buckets := ARRAY[(p.request->>'bucket')::bigint];
  END IF;
  IF cardinality(v_buckets) = 0 OR cardinality(v_buckets) > (v_caps->>'maxBuckets')::int THEN
    RETURN jsonb_build_object('ok', false, 'error', format('a probe asks for 1 to %s buckets, this one for %s', v_caps->>'maxBuckets', cardinality(v_buckets)));
  END IF;
  v_rows := syncguard._probe_rows(r, v_buckets);
  IF v_rows > (v_caps->>'maxRows')::bigint THEN
    RETURN jsonb_build_object('ok', false, 'error', format('the probe would read about %s rows, more than the cap of %s', v_rows, v_caps->>'maxRows'));
  END IF;
  IF p.kind = 'rows' THEN
    v_snap := pg_current_snapshot()::text;       -- before the read: a write it may miss counts as not inspected
    RETURN jsonb_build_object('ok', true, 'answer', jsonb_build_object('rows', syncguard._row_list(r.reg_id, v_buckets[1]), 'snapshot', v_snap),
                              'rows', v_rows);
  ELSIF p.kind = 'repair' THEN
    IF jsonb_array_length(p.request->'changes') > 10000 THEN
      RETURN jsonb_build_object('ok', false, 'error', 'a repair request carries at most 10000 changes');
    END IF;
    RETURN jsonb_build_object('ok', true, 'answer', syncguard._repair_apply(r, p), 'rows', v_rows);
  END IF;
  RETURN jsonb_build_object('ok', true, 'answer', syncguard._probe_values(r.reg_id, v_buckets), 'rows', v_rows);
END
$$;

REVOKE ALL ON FUNCTION syncguard._key_values_match(syncguard.registration, text, jsonb),
  syncguard._repair_dml(syncguard.registration) FROM PUBLIC;

-- item 22: a run killed after it sent a plan's repair request leaves the plan `applying`. The
-- request is on the publisher (this node's probe of kind 'repair' naming the plan, kept an hour)
-- and its answer on the subscriber, so a later run recovers the outcome from there.
-- Publisher: the ids of this node's repair requests of a plan on a table, oldest first.
CREATE FUNCTION syncguard.repair_requests(p_schema text, p_table text, p_plan text) RETURNS bigint[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(p.id ORDER BY p.id), '{}') FROM syncguard.probe p
   WHERE p.origin = syncguard.node_id() AND p.kind = 'repair' AND p.schema_name = p_schema AND p.table_name = p_table
     AND p.request->>'plan' = p_plan
$$;
REVOKE ALL ON FUNCTION syncguard.repair_requests(text, text, text) FROM PUBLIC;

-- As in 0019, and the repair kind gets repair_requests and repair_user_code.
CREATE OR REPLACE FUNCTION syncguard._role_functions(p_kind text) RETURNS text[]
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ARRAY['syncguard.schema_version()', 'syncguard.check_state()', 'syncguard.request_full_sweep()',
               'syncguard.maybe_full_sweep(interval)', 'syncguard.drain_batch(integer)', 'syncguard.sweep_batch(integer)',
               'syncguard.status()']
      || CASE WHEN p_kind IN ('verify', 'repair') THEN
           ARRAY['syncguard.drain_batch(integer, name[], name[])',
                 'syncguard.verify_ranges(bigint)', 'syncguard.verify_buckets(text, text, bigint, bigint[], bigint[])',
                 'syncguard.verify_overview()', 'syncguard.verify_level(text, text, bigint, bigint, bigint[])',
                 'syncguard.local_writes(integer)', 'syncguard.parity_info()', 'syncguard.health()',
                 'syncguard.probe_buckets(text, text, bigint[], uuid, text)', 'syncguard.probe_marker(uuid, text)',
                 'syncguard.probe_cleanup()', 'syncguard.probe_results(uuid, bigint[])', 'syncguard.probe_route()']
         ELSE '{}' END
      || CASE WHEN p_kind = 'repair' THEN
           ARRAY['syncguard.probe_rows(text, text, bigint, uuid, text)', 'syncguard.row_values(text, text, bigint, text[])',
                 'syncguard.repair_request(text, text, bigint, jsonb, text, uuid, text)', 'syncguard.repair_privileges(text, text)',
                 'syncguard.repair_requests(text, text, text)', 'syncguard.repair_user_code(text, text)']
         ELSE '{}' END
$$;

-- A repair role that already had its grants gets the new function.
DO $grants$
DECLARE
  v_role name;
BEGIN
  FOR v_role IN
    SELECT DISTINCT r.rolname FROM pg_proc p, aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
     WHERE p.oid = 'syncguard.repair_request(text, text, bigint, jsonb, text, uuid, text)'::regprocedure AND a.privilege_type = 'EXECUTE'
       AND r.rolname <> current_user
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION syncguard.repair_requests(text, text, text), syncguard.repair_user_code(text, text) TO %I', v_role);
  END LOOP;
END
$grants$;
