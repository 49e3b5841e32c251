-- syncguard node schema 0014: inspection and repair through the probe (docs/repair.md).
--
--   inspect: a probe of kind 'rows' carries one bucket. The publisher lists that bucket's
--            (key, row hash) pairs under the probe's SHARE lock; the subscriber's trigger lists
--            its own when the probe is applied: both at one replication position. Only the keys
--            that differ are then read in full (row_values).
--   repair:  a probe of kind 'repair' carries approved changes. Under the SHARE lock, the
--            publisher checks that each row is still as inspected (its hash) and puts the row's
--            current values in the request; a row that changed is left out. The subscriber's
--            trigger applies each change when the request arrives, in stream order, only if the
--            subscriber's row is still as inspected (its hash, or its absence). Each change runs
--            in its own subtransaction, so a failing one is reported and the others go on; the
--            trigger never raises. Writes happen inside the apply worker, so the table's own
--            triggers see them as replicated changes (marks, not local writes), and FK checks and
--            user triggers behave as under replication.
-- Values travel as text rendered under the pinned settings and are cast back to each column's
-- type on the subscriber: the text form is every type's exact I/O form.

-- The FROM clause and predicate that read one bucket of a registration through its key index
-- (integer and range buckets; a hash bucket needs a full scan).
CREATE FUNCTION syncguard._bucket_source(r syncguard.registration, p_bucket bigint) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_src  text := format('ONLY %I.%I sg_t', r.schema_name, r.table_name);
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

-- The rows of one bucket (or only the given keys of it): key text, row hash, the key columns'
-- values and the registration's columns' values as text, under the pinned settings.
CREATE FUNCTION syncguard._bucket_rows(p_reg integer, p_bucket bigint, p_keys text[])
RETURNS TABLE (key_text text, row_hash bigint, key_values text[], column_values text[])
LANGUAGE plpgsql STABLE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp SET row_security = off
AS $$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
BEGIN
  RETURN QUERY EXECUTE format(
    'SELECT sg_s.sg_k, syncguard.row_hash(sg_s.sg_c), sg_s.sg_kv, sg_s.sg_cv FROM ('
    'SELECT %s::text AS sg_k, %s AS sg_c, ARRAY[%s]::text[] AS sg_kv, ARRAY[%s]::text[] AS sg_cv FROM %s) sg_s '
    'WHERE $1::text[] IS NULL OR sg_s.sg_k = ANY($1::text[])',
    syncguard._key_row(r.key_columns, 'sg_t'),
    replace(syncguard._hash_expr(r.relid, r.columns, 'sg_t'), 'syncguard.row_hash(', '('),
    (SELECT string_agg(format('sg_t.%I::text', k), ', ' ORDER BY o) FROM unnest(r.key_columns) WITH ORDINALITY u(k, o)),
    (SELECT string_agg(format('sg_t.%I::text', c), ', ' ORDER BY o) FROM unnest(r.columns) WITH ORDINALITY u(c, o)),
    syncguard._bucket_source(r, p_bucket))
  USING p_keys;
END
$$;

-- {key: hash} of one bucket.
CREATE FUNCTION syncguard._row_list(p_reg integer, p_bucket bigint) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$ SELECT coalesce(jsonb_object_agg(b.key_text, b.row_hash::text), '{}') FROM syncguard._bucket_rows(p_reg, p_bucket, NULL) b $$;

-- Either side: the full rows of some keys of one bucket, for the diff a user asked for:
-- {columns: [...], keyColumns, identityAlways: [...], generated: [...], rows: {key: {hash,
-- keyValues: [...], values: [...]}}}. Values are returned, never logged.
CREATE FUNCTION syncguard.row_values(p_schema text, p_table text, p_bucket bigint, p_keys text[]) RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
BEGIN
  SELECT * INTO r FROM syncguard.registration g WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% is not registered on this node', quote_ident(p_schema), quote_ident(p_table) USING ERRCODE = 'undefined_object';
  END IF;
  RETURN jsonb_build_object('columns', to_jsonb(r.columns), 'keyColumns', to_jsonb(r.key_columns),
    'identityAlways', (SELECT coalesce(jsonb_agg(a.attname), '[]') FROM pg_attribute a
                        WHERE a.attrelid = r.relid AND a.attidentity = 'a' AND a.attname = ANY(r.columns)),
    'generated', (SELECT coalesce(jsonb_agg(a.attname), '[]') FROM pg_attribute a
                   WHERE a.attrelid = r.relid AND a.attgenerated <> '' AND a.attname = ANY(r.columns)),
    'rows', (SELECT coalesce(jsonb_object_agg(b.key_text, jsonb_build_object('hash', b.row_hash::text, 'keyValues', to_jsonb(b.key_values),
                                                                        'values', to_jsonb(b.column_values))), '{}')
               FROM syncguard._bucket_rows(r.reg_id, p_bucket, p_keys) b));
END
$$;

-- The publisher's registration of a table, or an error.
CREATE FUNCTION syncguard._publisher_reg(p_schema text, p_table text) RETURNS syncguard.registration
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
BEGIN
  SELECT * INTO r FROM syncguard.registration g
   WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table AND g.node_role = 'publisher';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% is not registered as a publisher table on this node', quote_ident(p_schema), quote_ident(p_table)
      USING ERRCODE = 'undefined_object';
  END IF;
  RETURN r;
END
$$;

-- Publisher: the inspection probe of one bucket. In a READ COMMITTED transaction with a short
-- lock_timeout; commit right after. Returns {id, rows: {key: hash}, lockWaitMs, computeMs}.
CREATE FUNCTION syncguard.probe_rows(p_schema text, p_table text, p_bucket bigint, p_target uuid, p_subscription text) RETURNS jsonb
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
  EXECUTE format('LOCK TABLE ONLY %I.%I IN SHARE MODE', p_schema, p_table);
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

-- Publisher: the repair request of an approved plan. p_changes: [{key, op: 'upsert'|'delete',
-- subHash, pubHash}] (a hash null = the row absent). Under the SHARE lock, each change whose
-- publisher row is still as inspected goes into the request, with the row's key values and (for
-- an upsert) its column values; the others are returned as 'publisher_changed'.
-- Returns {id (null when nothing was sent), sent, skipped: [{key, outcome}], lockWaitMs, holdMs}.
CREATE FUNCTION syncguard.repair_request(p_schema text, p_table text, p_bucket bigint, p_changes jsonb, p_plan text,
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
  EXECUTE format('LOCK TABLE ONLY %I.%I IN SHARE MODE', p_schema, p_table);
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

-- Subscriber: applies one repair request (called by the probe trigger, inside the apply
-- transaction). Returns {changes: [{key, outcome, error?}]}, outcome one of applied,
-- already_equal, changed_since_inspection, failed, applied_but_differs.
CREATE FUNCTION syncguard._repair_apply(r syncguard.registration, p syncguard.probe) RETURNS jsonb
LANGUAGE plpgsql VOLATILE
SET timezone = 'UTC' SET datestyle = 'ISO, YMD' SET intervalstyle = 'postgres'
SET extra_float_digits = 1 SET bytea_output = 'hex' SET lc_monetary = 'C'
SET search_path = pg_catalog, pg_temp SET row_security = off
AS $$
DECLARE
  v_bucket bigint := (p.request->>'bucket')::bigint;
  v_keys text[] := ARRAY(SELECT x->>'key' FROM jsonb_array_elements(p.request->'changes') x);
  v_tbl text := format('%I.%I', r.schema_name, r.table_name);
  v_now jsonb;
  v_after jsonb;
  v_out jsonb := '[]';
  v_applied jsonb := '{}';
  c jsonb;
  v_cur text;
  v_type text;
  v_where text;
  v_insert text;
  v_set text;
  v_upsert text;
  v_delete text;
  v_override text := '';
  v_vals text[];
BEGIN
  IF (SELECT array_agg(x ORDER BY o) FROM jsonb_array_elements_text(p.request->'columns') WITH ORDINALITY u(x, o))::name[] IS DISTINCT FROM r.columns THEN
    RETURN jsonb_build_object('error', 'the request names other columns than the subscriber registration');
  END IF;
  -- statements, by position: $1 holds the key values (delete) or the column values (upsert)
  SELECT string_agg(format('%I = $1[%s]::%s', k, o, format_type(a.atttypid, a.atttypmod)), ' AND ' ORDER BY o)
    INTO v_where
    FROM unnest(r.key_columns) WITH ORDINALITY u(k, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.k;
  SELECT string_agg(quote_ident(c2), ', ' ORDER BY o),
         string_agg(format('$1[%s]::%s', o, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY o),
         string_agg(format('%I = EXCLUDED.%I', c2, c2), ', ' ORDER BY o) FILTER (WHERE c2 <> ALL(r.key_columns)),
         CASE WHEN bool_or(a.attidentity = 'a') THEN ' OVERRIDING SYSTEM VALUE' ELSE '' END
    INTO v_insert, v_type, v_set, v_override
    FROM unnest(r.columns) WITH ORDINALITY u(c2, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.c2
   WHERE a.attgenerated = '';
  v_upsert := format('INSERT INTO %s (%s)%s VALUES (%s) ON CONFLICT (%s) DO %s', v_tbl, v_insert, v_override, v_type,
                     (SELECT string_agg(quote_ident(k), ', ' ORDER BY o) FROM unnest(r.key_columns) WITH ORDINALITY u(k, o)),
                     CASE WHEN v_set IS NULL THEN 'NOTHING' ELSE 'UPDATE SET ' || v_set END);
  v_delete := format('DELETE FROM ONLY %s WHERE %s', v_tbl, v_where);

  SELECT coalesce(jsonb_object_agg(b.key_text, b.row_hash::text), '{}') INTO v_now
    FROM syncguard._bucket_rows(r.reg_id, v_bucket, v_keys) b;
  FOR c IN SELECT x FROM jsonb_array_elements(p.request->'changes') x LOOP
    v_cur := v_now->>(c->>'key');
    IF v_cur IS NOT DISTINCT FROM c->>'pubHash' THEN
      v_out := v_out || jsonb_build_object('key', c->>'key', 'outcome', 'already_equal');
    ELSIF v_cur IS DISTINCT FROM c->>'subHash' THEN
      v_out := v_out || jsonb_build_object('key', c->>'key', 'outcome', 'changed_since_inspection');
    ELSE
      BEGIN
        IF c->>'op' = 'delete' THEN
          EXECUTE v_delete USING ARRAY(SELECT jsonb_array_elements_text(c->'keyValues'));
        ELSE
          -- jsonb nulls become SQL NULLs
          v_vals := ARRAY(SELECT CASE WHEN jsonb_typeof(e) = 'null' THEN NULL ELSE e #>> '{}' END
                            FROM jsonb_array_elements(c->'values') WITH ORDINALITY u(e, o) ORDER BY o);
          EXECUTE v_upsert USING v_vals;
        END IF;
        v_applied := v_applied || jsonb_build_object(c->>'key', c->'pubHash');
        v_out := v_out || jsonb_build_object('key', c->>'key', 'outcome', 'applied');
      EXCEPTION WHEN OTHERS THEN
        v_out := v_out || jsonb_build_object('key', c->>'key', 'outcome', 'failed', 'error', left(SQLERRM, 300));
      END;
    END IF;
  END LOOP;
  -- each applied row must now hash as the publisher's did
  SELECT coalesce(jsonb_object_agg(b.key_text, b.row_hash::text), '{}') INTO v_after
    FROM syncguard._bucket_rows(r.reg_id, v_bucket, ARRAY(SELECT jsonb_object_keys(v_applied))) b;
  v_out := (SELECT coalesce(jsonb_agg(CASE WHEN x->>'outcome' = 'applied' AND (v_after->>(x->>'key')) IS DISTINCT FROM (v_applied->>(x->>'key'))
                                            THEN x || '{"outcome": "applied_but_differs"}' ELSE x END ORDER BY o), '[]')
              FROM jsonb_array_elements(v_out) WITH ORDINALITY u(x, o));
  RETURN jsonb_build_object('changes', v_out);
END
$$;

-- The subscriber's answers, as in 0013, with the kinds 'rows' (inspection) and 'repair'.
CREATE OR REPLACE FUNCTION syncguard._probe_answer(p syncguard.probe) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_buckets bigint[];
  v_rows bigint;
  v_caps jsonb := syncguard._probe_caps();
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
    RETURN jsonb_build_object('ok', true, 'answer', syncguard._row_list(r.reg_id, v_buckets[1]), 'rows', v_rows);
  ELSIF p.kind = 'repair' THEN
    IF jsonb_array_length(p.request->'changes') > 10000 THEN
      RETURN jsonb_build_object('ok', false, 'error', 'a repair request carries at most 10000 changes');
    END IF;
    RETURN jsonb_build_object('ok', true, 'answer', syncguard._repair_apply(r, p), 'rows', v_rows);
  END IF;
  RETURN jsonb_build_object('ok', true, 'answer', syncguard._probe_values(r.reg_id, v_buckets), 'rows', v_rows);
END
$$;

-- A repair role: what verify needs, and inspection and repair. Repairs are written by the
-- subscriber's probe trigger as the syncguard owner, so the owner needs INSERT, UPDATE and
-- DELETE on the table there; the role itself needs no table privilege.
CREATE OR REPLACE FUNCTION syncguard._role_functions(p_kind text) RETURNS text[]
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ARRAY['syncguard.schema_version()', 'syncguard.check_state()', 'syncguard.request_full_sweep()',
               'syncguard.maybe_full_sweep(interval)', 'syncguard.drain_batch(integer)', 'syncguard.sweep_batch(integer)',
               'syncguard.status()']
      || CASE WHEN p_kind IN ('verify', 'repair') THEN
           ARRAY['syncguard.drain_batch(integer, name[], name[])',
                 'syncguard.verify_ranges(bigint)', 'syncguard.verify_buckets(text, text, bigint, bigint[], bigint[])',
                 'syncguard.local_writes(integer)', 'syncguard.parity_info()', 'syncguard.health()',
                 'syncguard.probe_buckets(text, text, bigint[], uuid, text)', 'syncguard.probe_marker(uuid, text)',
                 'syncguard.probe_cleanup()', 'syncguard.probe_results(uuid, bigint[])', 'syncguard.probe_route()']
         ELSE '{}' END
      || CASE WHEN p_kind = 'repair' THEN
           ARRAY['syncguard.probe_rows(text, text, bigint, uuid, text)', 'syncguard.row_values(text, text, bigint, text[])',
                 'syncguard.repair_request(text, text, bigint, jsonb, text, uuid, text)', 'syncguard.repair_privileges(text, text)']
         ELSE '{}' END
$$;

CREATE OR REPLACE FUNCTION syncguard.grant_role(p_role name, p_kind text) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_fn text;
BEGIN
  IF p_kind NOT IN ('drain', 'verify', 'repair') THEN
    RAISE EXCEPTION 'role kind must be drain, verify or repair, got %', p_kind USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH v_fn IN ARRAY syncguard._role_functions(p_kind) LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, p_role);
  END LOOP;
  RETURN syncguard._role_functions(p_kind);
END
$$;

-- Subscriber: whether the syncguard owner may write repairs to the table (checked before a plan
-- is made and before it is sent; the trigger would otherwise report every change as failed).
CREATE FUNCTION syncguard.repair_privileges(p_schema text, p_table text) RETURNS text[]
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(array_agg(x.p ORDER BY x.o), '{}') FROM unnest(ARRAY['INSERT', 'UPDATE', 'DELETE']) WITH ORDINALITY x(p, o)
   WHERE to_regclass(format('%I.%I', p_schema, p_table)) IS NOT NULL
     AND NOT has_table_privilege(format('%I.%I', p_schema, p_table), x.p)
$$;
