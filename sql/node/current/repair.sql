-- Repair requests: they travel through syncguard.probe and are applied on the subscriber at the
-- publisher's position, each change checked against what the inspection saw, keys compared by the
-- key index's own equality (docs/repair.md).

CREATE OR REPLACE FUNCTION syncguard.repair_request(p_schema text, p_table text, p_bucket bigint, p_changes jsonb, p_plan text, p_target uuid, p_subscription text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
  v_held jsonb := '{}';
  v_key text;
  v_keyless boolean := cardinality(r.key_columns) = 0;
  v_keys text[];
  v_code text[];
BEGIN
  PERFORM syncguard._require_read_committed('a repair');
  -- the rows are read (col::text, casts) as syncguard's owner here too: refused while the table has
  -- user code that would run with those rights (repair_user_code)
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
  v_keys := ARRAY(SELECT x->>'key' FROM jsonb_array_elements(v_list) x WHERE jsonb_typeof(x) = 'object' AND x->>'key' IS NOT NULL);
  v_t1 := syncguard._probe_lock(p_schema, p_table);
  -- the publisher's rows of the planned keys, now that no writer can change them: a keyed table's
  -- by key equality, a keyless table's by their names (content and copy)
  IF NOT v_keyless THEN
    v_held := syncguard._held_keys(r, p_bucket, v_keys);
    v_keys := ARRAY(SELECT DISTINCT h.value->>'held' FROM jsonb_each(v_held) h WHERE h.value->>'held' IS NOT NULL);
  END IF;
  SELECT coalesce(jsonb_object_agg(b.key_text, jsonb_build_object('hash', b.row_hash::text, 'keyValues', to_jsonb(b.key_values),
                                                                   'values', to_jsonb(b.column_values))), '{}')
    INTO v_now
    FROM syncguard._bucket_rows(r.reg_id, p_bucket, v_keys) b;
  FOR c IN SELECT x FROM jsonb_array_elements(v_list) x LOOP
    v_key := CASE WHEN v_keyless THEN c->>'key' ELSE v_held->(c->>'key')->>'held' END;
    v_row := v_now->v_key;
    IF jsonb_typeof(c) IS DISTINCT FROM 'object' OR c->>'key' IS NULL OR (c->>'op') IS NULL OR c->>'op' NOT IN ('upsert', 'delete') THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'refused', 'error', 'a change is an upsert or a delete of one key');
    ELSIF NOT v_keyless AND NOT v_held ? (c->>'key') THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'refused', 'error', 'its key is not a key of this table');
    ELSIF c ? 'keyValues' AND NOT syncguard._key_values_match(r, c->>'key', c->'keyValues') THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'refused', 'error', 'its key values are not its key');
    ELSIF c->>'op' = 'delete' AND v_row IS NOT NULL THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'publisher_changed',
                                             'error', CASE WHEN v_key = c->>'key'
                                                           THEN 'the publisher holds this row; a delete is sent only for a row the publisher does not have'
                                                           ELSE format('the publisher holds this key (as %s); a delete is sent only for a row the publisher does not have', v_key) END);
    ELSIF NOT v_keyless AND v_key IS NOT NULL AND v_row IS NULL THEN
      -- held under another spelling that falls in another bucket: neither a delete (the publisher
      -- holds the row) nor an upsert in this bucket is right
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'publisher_changed',
                                             'error', format('the publisher holds this key as %s, which is in another bucket; inspect and repair that bucket, then this one again', v_key));
    ELSIF v_keyless AND (v_row->>'hash') IS DISTINCT FROM (c->>'pubHash') THEN
      v_skip := v_skip || jsonb_build_object('key', c->>'key', 'outcome', 'publisher_changed');
    ELSIF v_row IS NOT NULL THEN
      -- the publisher's row as it is at this position, whatever it was at inspection
      v_send := v_send || (jsonb_build_object('key', v_key, 'op', 'upsert', 'subHash', c->'subHash', 'pubHash', v_row->'hash',
                                              'plannedPubHash', c->'pubHash', 'keyValues', v_row->'keyValues', 'values', v_row->'values')
                           || CASE WHEN v_key = c->>'key' THEN '{}'::jsonb ELSE jsonb_build_object('plannedKey', c->>'key') END);
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
    IF jsonb_typeof(v_opts->'inspection') IN ('number', 'string') THEN
      v_request := v_request || jsonb_build_object('inspection', v_opts->'inspection');
    END IF;
    v_id := syncguard._send_probe(p_target, 'repair', r, v_request);
  END IF;
  RETURN jsonb_build_object('id', v_id, 'sent', jsonb_array_length(v_send), 'skipped', v_skip,
                            'lockWaitMs', syncguard._ms(v_t0, v_t1),
                            'holdMs', syncguard._ms(v_t1, clock_timestamp()));
END $function$;

-- The node's caps on one repair request, which holds the subscriber's apply worker while it runs:
-- the changes one request may hold it for, the budget in ms of its writes and lock waits together,
-- the changes and the lock waits that ran out over all requests of one inspection (one plan sends
-- all its parts under one inspection).
CREATE OR REPLACE FUNCTION syncguard._repair_caps()
RETURNS jsonb LANGUAGE sql IMMUTABLE
AS $function$ SELECT jsonb_build_object('maxChanges', 1000, 'budgetMs', 5000, 'maxInspectionChanges', 10000, 'maxLockWaits', 3) $function$;

-- Subscriber: applies one repair request (called by the probe trigger, inside the apply
-- transaction). Returns {changes: [{key, op, hash, outcome, error?}]}, outcome one of applied,
-- already_equal, changed_since_inspection, refused, failed (a written row that does not hash as
-- the publisher's is rolled back and recorded as failed, with the reason); hash is the
-- publisher row's hash the change writes (null: the row is deleted). Besides:
--   the request names the inspection probe it was planned from (inspection: its id; the origin is
--   the request's own); it is looked up in syncguard.inspection, and the snapshot kept there, not
--   one the request carries, tells local writes the inspection saw from the others. A request that
--   names no inspection is refused; one whose inspection is not known here, inspected another
--   bucket, was taken under another local_write epoch (syncguard.sentinel), or would go over the
--   caps fails, every change recorded with the reason;
--   keyless copies are inserted in ascending and deleted in descending copy order, each insert
--   with its count precondition;
--   an upsert sent under the publisher's key text reports its outcome under plannedKey.
-- Never raises on a request's content.
CREATE OR REPLACE FUNCTION syncguard._repair_apply(r syncguard.registration, p syncguard.probe)
RETURNS jsonb LANGUAGE plpgsql
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' SET lock_timeout TO '100ms' AS $function$
DECLARE
  v_caps jsonb := syncguard._repair_caps();
  v_bucket bigint := (p.request->>'bucket')::bigint;
  v_list jsonb := p.request->'changes';
  v_keys text[];
  v_keyless boolean := cardinality(r.key_columns) = 0;
  v_lock_ms integer := 100;
  v_left_ms numeric := (v_caps->>'budgetMs')::numeric;
  v_max_waits integer := (v_caps->>'maxLockWaits')::integer;
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
  v_moved_ok boolean := false;
  v_code text[];
  v_insp syncguard.inspection;
  v_insp_id bigint;
  v_why text;
  v_outcome text := 'failed';
  v_this_ms integer;
  v_t timestamptz;
BEGIN
  IF jsonb_typeof(v_list) IS DISTINCT FROM 'array' THEN
    RETURN jsonb_build_object('error', 'a repair request''s changes are a JSON array');
  END IF;
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
    v_outcome := 'refused';
    v_why := 'the repair would run code of the table''s owner with syncguard''s rights: ' || array_to_string(v_code, '; ');
  ELSIF jsonb_array_length(v_list) > (v_caps->>'maxChanges')::integer THEN
    v_why := format('a repair request may hold the apply worker for at most %s changes on this node, this one has %s; send it in parts',
                    v_caps->>'maxChanges', jsonb_array_length(v_list));
  ELSIF jsonb_typeof(p.request->'inspection') IS DISTINCT FROM 'number'
        AND (jsonb_typeof(p.request->'inspection') IS DISTINCT FROM 'string' OR (p.request->>'inspection') !~ '^[0-9]{1,18}$') THEN
    v_outcome := 'refused';
    v_why := 'the request names no inspection of this subscriber (a snapshot a request carries is not trusted: requests of syncguard before node 0029 are refused); inspect again, make a new plan and apply it';
  ELSE
    BEGIN
      v_insp_id := (p.request->>'inspection')::numeric::bigint;
    EXCEPTION WHEN OTHERS THEN
      v_insp_id := NULL;
    END;
    SELECT * INTO v_insp FROM syncguard.inspection i WHERE i.origin = p.origin AND i.id = v_insp_id FOR UPDATE;
    IF NOT FOUND THEN
      v_why := format('inspection probe %s of this publisher is not known on the subscriber: syncguard''s unlogged state was emptied since (a crash, an immediate shutdown, a promotion: local writes made before then are no longer recorded), it is older than %s, or it never was an inspection answered here; inspect again and make a new plan',
                      coalesce(v_insp_id::text, p.request->>'inspection'), syncguard._inspection_keep());
    ELSIF v_insp.reg_id <> r.reg_id OR v_insp.bucket IS DISTINCT FROM v_bucket THEN
      v_outcome := 'refused';
      v_why := format('inspection probe %s inspected another table or bucket', v_insp_id);
    ELSIF v_insp.epoch IS NULL OR v_insp.epoch IS DISTINCT FROM (SELECT x.created_at FROM syncguard.sentinel x) THEN
      v_why := 'syncguard.local_write (unlogged) was emptied since the inspection, or before it without being noticed yet (a crash, an immediate shutdown, a promotion): local writes made since the inspection may not be recorded; inspect again and make a new plan';
    ELSIF v_insp.changes + jsonb_array_length(v_list) > (v_caps->>'maxInspectionChanges')::integer THEN
      v_why := format('the requests of inspection probe %s would hold the apply worker for more than %s changes; inspect again', v_insp_id, v_caps->>'maxInspectionChanges');
    END IF;
  END IF;
  IF v_why IS NOT NULL THEN
    RETURN jsonb_build_object('changes', (SELECT coalesce(jsonb_agg(jsonb_build_object('key', coalesce(x->>'plannedKey', x->>'key'), 'op', x->>'op',
             'hash', x->'pubHash', 'outcome', v_outcome, 'error', v_why) ORDER BY o), '[]')
             FROM jsonb_array_elements(v_list) WITH ORDINALITY u(x, o)));
  END IF;
  v_waits := v_insp.lock_waits;
  s := syncguard._repair_dml(r);
  v_kpos := ARRAY(SELECT array_position(r.columns, k) FROM unnest(r.key_columns) WITH ORDINALITY u(k, o) ORDER BY o);
  v_keys := ARRAY(SELECT x->>'key' FROM jsonb_array_elements(v_list) x);
  SELECT coalesce(jsonb_object_agg(b.key_text, jsonb_build_object('hash', b.row_hash::text, 'keyValues', to_jsonb(b.key_values))), '{}')
    INTO v_now
    FROM syncguard._bucket_rows(r.reg_id, v_bucket, v_keys) b;
  -- a row that moved since the inspection may be written only if it moved by applied changes:
  -- checked after the rows were read, so a local write committed before that read is counted;
  -- no local write recorded in the bucket is missing from the inspection's snapshot, as kept here
  IF NOT v_keyless THEN
    v_moved_ok := NOT EXISTS (
      SELECT 1 FROM syncguard.local_write w
       WHERE w.reg_id = r.reg_id AND w.bucket = v_bucket AND NOT pg_visible_in_snapshot(w.xid, v_insp.snapshot));
  END IF;
  FOR c IN SELECT x FROM jsonb_array_elements(v_list) WITH ORDINALITY u(x, o)
            ORDER BY CASE WHEN v_keyless AND x->>'key' ~ '^[0-9a-f]{32}#[0-9]{1,9}$' THEN
                            (x->>'op' = 'upsert', split_part(x->>'key', '#', 1),
                             CASE WHEN x->>'op' = 'upsert' THEN 1 ELSE -1 END * split_part(x->>'key', '#', 2)::integer, o) END,
                     o LOOP
    v_key := c->>'key';
    v_cur := v_now->v_key;
    v_hash := v_cur->>'hash';
    v_target := c->>'pubHash';
    v_res := jsonb_build_object('key', coalesce(c->>'plannedKey', v_key), 'op', c->>'op', 'hash', v_target);
    v_vals := ARRAY(SELECT CASE WHEN jsonb_typeof(e) = 'null' THEN NULL ELSE e #>> '{}' END
                      FROM jsonb_array_elements(coalesce(c->'values', '[]')) WITH ORDINALITY u(e, o) ORDER BY o);
    IF (c->>'op') IS NULL OR c->>'op' NOT IN ('upsert', 'delete') OR (c->>'op' = 'delete') <> (v_target IS NULL)
       OR (c->>'op' = 'upsert' AND cardinality(v_vals) <> cardinality(r.columns)) THEN
      v_out := v_out || (v_res || '{"outcome": "refused", "error": "a change is an upsert of the publisher row or the delete of a row the publisher does not have"}');
    ELSIF v_keyless AND (v_key IS NULL OR v_key !~ '^[0-9a-f]{32}#[0-9]{1,9}$') THEN
      v_out := v_out || (v_res || '{"outcome": "refused", "error": "a row without a key is named md5#copy"}');
    ELSIF c->>'op' = 'upsert' AND NOT v_keyless
          AND NOT syncguard._key_values_match(r, v_key, to_jsonb(ARRAY(SELECT v_vals[i] FROM unnest(v_kpos) WITH ORDINALITY u(i, o) ORDER BY o))) THEN
      v_out := v_out || (v_res || '{"outcome": "refused", "error": "its values are not of its key"}');
    ELSIF v_hash IS NOT DISTINCT FROM v_target THEN
      v_out := v_out || (v_res || '{"outcome": "already_equal"}');
    ELSIF v_hash IS DISTINCT FROM c->>'subHash' AND NOT (v_moved_ok AND v_hash IS NOT NULL) THEN
      -- changed since inspection by a local write (or lost here while the publisher holds it)
      v_out := v_out || (v_res || '{"outcome": "changed_since_inspection"}');
    ELSIF v_waits >= v_max_waits THEN
      v_out := v_out || (v_res || jsonb_build_object('outcome', 'failed', 'error',
                 format('not tried: %s rows of this plan''s requests were locked by other sessions for longer than their lock timeout', v_waits)));
    ELSIF v_left_ms < 1 THEN
      v_out := v_out || (v_res || jsonb_build_object('outcome', 'failed', 'error',
                 format('not tried: this request used its %s ms for writes and lock waits', v_caps->>'budgetMs')));
    ELSE
      v_this_ms := least(v_lock_ms, ceil(v_left_ms))::integer;
      PERFORM set_config('lock_timeout', v_this_ms || 'ms', true);
      v_t := clock_timestamp();
      BEGIN
        IF v_target IS NULL THEN
          IF v_keyless THEN
            EXECUTE s.del USING NULL::text[], ARRAY[split_part(v_key, '#', 1)], v_hash::bigint, split_part(v_key, '#', 2)::integer;
          ELSE
            EXECUTE s.del USING NULL::text[], ARRAY(SELECT jsonb_array_elements_text(v_cur->'keyValues')), v_hash::bigint;
          END IF;
        ELSIF v_hash IS NULL THEN
          IF v_keyless THEN
            EXECUTE s.ins USING v_vals, ARRAY[split_part(v_key, '#', 1)], NULL::bigint, split_part(v_key, '#', 2)::integer;
          ELSE
            EXECUTE s.ins USING v_vals;
          END IF;
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
                     format('the row was locked by another session for more than %s ms; replication went on without this change', v_this_ms)));
        WHEN OTHERS THEN
          v_out := v_out || (v_res || jsonb_build_object('outcome', 'failed', 'error', left(SQLERRM, 300)));
      END;
      v_left_ms := v_left_ms - extract(epoch FROM clock_timestamp() - v_t) * 1000;
    END IF;
  END LOOP;
  UPDATE syncguard.inspection i SET changes = i.changes + jsonb_array_length(v_list), lock_waits = v_waits
   WHERE i.origin = v_insp.origin AND i.id = v_insp.id;
  RETURN jsonb_build_object('changes', v_out);
END $function$;

-- The key text ROW(k1, ..., kn)::text of some key values (as text, cast to the key columns'
-- types), under the pinned settings; for a table without a key, the md5 a row name starts with.
-- Whether p_values are the values of key p_key.
CREATE OR REPLACE FUNCTION syncguard._key_values_match(r syncguard.registration, p_key text, p_values jsonb)
RETURNS boolean LANGUAGE plpgsql STABLE
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- Publisher, under the SHARE lock: for each key text of a keyed table, whether it is a key of the
-- table (its fields, cast to the key columns' types, give the same text) and the key text of the
-- row anywhere in the table whose key is equal to it by the key's equality (_key_equality: citext
-- 'ABC' = 'abc', numeric 1.0 = 1.00), found through the key index: {key: {held: text or null}};
-- a key text that is not a key is left out. The whole table, not the bucket: an equal key spelt
-- otherwise may hash to another bucket, and a delete of it would then remove a row the publisher
-- holds.
CREATE OR REPLACE FUNCTION syncguard._key_equality(r syncguard.registration)
RETURNS text[] LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_ops text[] := '{}';
  v_c record;
BEGIN
  FOR v_c IN
    SELECT u.k, u.o, op.oprname, opn.nspname AS oprschema, op.oprcode::regproc::text AS fn,
           (pn.nspname = 'pg_catalog' OR EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                                                  AND d.objid = op.oprcode AND d.deptype = 'e')) AS trusted
      FROM unnest(r.key_columns) WITH ORDINALITY u(k, o)
      LEFT JOIN LATERAL (
        -- the unique index over exactly the key columns (the primary key first): its operator class
        -- says what equal keys are, and an index lookup by that operator uses it
        SELECT x.cls FROM pg_index i
          CROSS JOIN LATERAL unnest(i.indkey::int2[], i.indclass::oid[]) WITH ORDINALITY x(att, cls, n)
          JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = x.att
         WHERE i.indrelid = r.relid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL
           AND i.indnkeyatts = cardinality(r.key_columns) AND x.n = u.o AND a.attname = u.k
           AND ARRAY(SELECT b.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY y(att, m)
                       JOIN pg_attribute b ON b.attrelid = i.indrelid AND b.attnum = y.att
                      WHERE y.m <= i.indnkeyatts ORDER BY y.m) = r.key_columns
         ORDER BY i.indisprimary DESC, i.indexrelid LIMIT 1) ix ON true
      LEFT JOIN pg_opclass oc ON oc.oid = ix.cls AND oc.opcmethod = (SELECT oid FROM pg_am WHERE amname = 'btree')
      LEFT JOIN pg_amop am ON am.amopfamily = oc.opcfamily AND am.amopmethod = oc.opcmethod AND am.amopstrategy = 3
                          AND am.amoplefttype = oc.opcintype AND am.amoprighttype = oc.opcintype
      LEFT JOIN pg_operator op ON op.oid = am.amopopr
      LEFT JOIN pg_namespace opn ON opn.oid = op.oprnamespace
      LEFT JOIN pg_proc pp ON pp.oid = op.oprcode
      LEFT JOIN pg_namespace pn ON pn.oid = pp.pronamespace
     ORDER BY u.o
  LOOP
    IF v_c.oprname IS NULL THEN
      RAISE EXCEPTION 'the key of %.% has no unique btree index over exactly its columns (%), so what an equal key is cannot be told; re-register the table',
        r.schema_name, r.table_name, array_to_string(r.key_columns, ', ') USING ERRCODE = 'object_not_in_prerequisite_state';
    ELSIF NOT v_c.trusted THEN
      RAISE EXCEPTION 'key column % of %.% compares with %.%, whose function % is neither built in nor from an extension; a repair would run it with syncguard''s rights, so this table is repaired by hand',
        v_c.k, r.schema_name, r.table_name, v_c.oprschema, v_c.oprname, v_c.fn USING ERRCODE = 'insufficient_privilege';
    END IF;
    v_ops := v_ops || format('OPERATOR(%I.%s)', v_c.oprschema, v_c.oprname);
  END LOOP;
  RETURN v_ops;
END $function$;

CREATE OR REPLACE FUNCTION syncguard._held_keys(r syncguard.registration, p_bucket bigint, p_keys text[])
RETURNS jsonb LANGUAGE plpgsql STABLE
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' AS $function$
DECLARE
  v_n integer := cardinality(r.key_columns);
  v_asked text[] := '{}';
  v_fields text[];
  v_all text[];
  v_cast text;
  v_ops text[];
  v_eq text;
  v_sql text;
  v_map jsonb := '{}';
  v_one jsonb;
  k text;
  i integer;
BEGIN
  IF v_n = 0 OR coalesce(cardinality(p_keys), 0) = 0 THEN
    RETURN v_map;
  END IF;
  FOREACH k IN ARRAY p_keys LOOP
    v_fields := syncguard._record_fields(k);
    IF cardinality(v_fields) = v_n THEN
      v_asked := v_asked || k;
      v_all := v_all || ARRAY[v_fields];
    END IF;
  END LOOP;
  IF cardinality(v_asked) = 0 THEN
    RETURN v_map;
  END IF;
  v_ops := syncguard._key_equality(r);
  SELECT string_agg(format('$2[sg_a.i][%s]::%s', o, format_type(a.atttypid, a.atttypmod)), ', ' ORDER BY o),
         string_agg(format('sg_t.%I %s ($2[sg_a.i][%s]::%s)', u.k, v_ops[o], o, format_type(a.atttypid, a.atttypmod)), ' AND ' ORDER BY o)
    INTO v_cast, v_eq
    FROM unnest(r.key_columns) WITH ORDINALITY u(k, o) JOIN pg_attribute a ON a.attrelid = r.relid AND a.attname = u.k;
  v_sql := format('SELECT coalesce(jsonb_object_agg(sg_a.k, jsonb_build_object(''held'', '
                  '(SELECT %s::text FROM %s sg_t WHERE %s%s LIMIT 1))), ''{}'') '
                  'FROM unnest($1::text[]) WITH ORDINALITY sg_a(k, i) WHERE ROW(%s)::text = sg_a.k',
                  syncguard._key_row(r.key_columns, 'sg_t'), syncguard._rel(r.schema_name, r.table_name), v_eq,
                  syncguard._filter(r), v_cast);
  BEGIN
    EXECUTE v_sql INTO v_map USING v_asked, v_all;
  EXCEPTION WHEN OTHERS THEN
    -- a key text whose fields are not values of the key's types: each key on its own
    v_map := '{}';
    FOR i IN 1 .. cardinality(v_asked) LOOP
      BEGIN
        EXECUTE v_sql INTO v_one USING ARRAY[v_asked[i]], v_all[i:i][1:v_n];
        v_map := v_map || v_one;
      EXCEPTION WHEN OTHERS THEN
        NULL;                                       -- not a key of this table
      END;
    END LOOP;
  END;
  RETURN v_map;
END $function$;
