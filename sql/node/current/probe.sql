-- The probe (docs/design.md "The probe"): a row written to the replicated syncguard.probe is
-- applied on the subscriber at exactly the publisher's position, where its BEFORE INSERT trigger
-- computes the same buckets. The trigger never raises, and syncguard.probe's shape never changes.

-- Publisher: the probe of some buckets of one table. Call it in a READ COMMITTED transaction that
-- set a short lock_timeout, and commit right after: the SHARE lock is held until then.
-- Returns {id, values, rows, lockWaitMs, computeMs}. Refused beyond the probe caps, and while
-- syncguard.probe has code syncguard did not add (_probe_lock: it would run as the installer on
-- the probe's insert).
CREATE OR REPLACE FUNCTION syncguard.probe_buckets(p_schema text, p_table text, p_buckets bigint[], p_target uuid, p_subscription text)
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard.registration;
  v_caps jsonb := syncguard._probe_caps();
  v_t0 timestamptz := clock_timestamp();
  v_t1 timestamptz;
  v_values jsonb;
  v_id bigint;
  v_rows bigint;
BEGIN
  PERFORM syncguard._require_read_committed('a probe');
  r := syncguard._publisher_reg(p_schema, p_table);
  IF cardinality(p_buckets) IS NULL OR cardinality(p_buckets) > (v_caps->>'maxBuckets')::int THEN
    RAISE EXCEPTION 'a probe asks for 1 to % buckets, this one for %', v_caps->>'maxBuckets', coalesce(cardinality(p_buckets), 0)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_rows := syncguard._probe_rows(r, p_buckets);   -- counted once: it reads up to the cap's rows
  IF v_rows > (v_caps->>'maxRows')::bigint THEN
    RAISE EXCEPTION 'a probe of these buckets would read about % rows, more than the cap of %', v_rows, v_caps->>'maxRows'
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  v_t1 := syncguard._probe_lock(p_schema, p_table);
  -- a new snapshot, taken after the lock: every writer that held the table has committed
  v_values := syncguard._probe_values(r.reg_id, p_buckets);
  v_id := syncguard._send_probe(p_target, 'buckets', r,
                                jsonb_build_object('subscription', p_subscription, 'buckets', to_jsonb(p_buckets), 'values', v_values));
  RETURN jsonb_build_object('id', v_id, 'values', v_values,
                            'lockWaitMs', syncguard._ms(v_t0, v_t1),
                            'computeMs', syncguard._ms(v_t1, clock_timestamp()));
END $function$;

-- Publisher: a marker, a probe that asks nothing: its answer on the subscriber means that every
-- transaction the publisher committed before it has been applied there (the barrier). Refused
-- while syncguard.probe has code syncguard did not add (a default, a policy, a rule or a trigger
-- there would run as the installer on this insert).
CREATE OR REPLACE FUNCTION syncguard.probe_marker(p_target uuid, p_subscription text)
RETURNS bigint LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
BEGIN
  PERFORM syncguard._require_probe_clean();
  RETURN syncguard._send_probe(p_target, 'marker', NULL, jsonb_build_object('subscription', p_subscription));
END $function$;

-- Publisher: deletes this node's probes older than an hour (the deletes replicate); deletes nothing
-- while syncguard.probe has code syncguard did not add (a policy or rule would run as the installer).
CREATE OR REPLACE FUNCTION syncguard.probe_cleanup()
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_n integer;
BEGIN
  IF syncguard._probe_table_clean() IS NOT NULL THEN
    RETURN 0;
  END IF;
  DELETE FROM syncguard.probe WHERE origin = syncguard.node_id() AND created_at < clock_timestamp() - interval '1 hour';
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END $function$;

-- Subscriber: the answers to some probes of one origin, {id: {ok, answer, error, computeMs}}.
CREATE OR REPLACE FUNCTION syncguard.probe_results(p_origin uuid, p_ids bigint[])
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT coalesce(jsonb_object_agg(r.id::text, jsonb_build_object('ok', r.ok, 'answer', r.answer, 'error', r.error, 'computeMs', r.compute_ms)), '{}')
    FROM syncguard.probe_result r WHERE r.origin = p_origin AND r.id = ANY(p_ids)
$function$;

-- Subscriber: can probes reach this node? The probe table, its trigger (tgenabled), the
-- subscriptions that carry syncguard.probe with their sync state, who owns syncguard.probe, the
-- dedicated owner's name and whether it exists, the installer (the schema's owner), and the
-- triggers and rules on syncguard's logged tables that syncguard did not create (the owner of
-- those tables may add some; probes are not trusted while there are any).
CREATE OR REPLACE FUNCTION syncguard.probe_route()
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT jsonb_build_object(
    'nodeId', syncguard.node_id(),
    'table', to_regclass('syncguard.probe') IS NOT NULL,
    'trigger', (SELECT t.tgenabled::text FROM pg_trigger t WHERE t.tgrelid = to_regclass('syncguard.probe') AND t.tgname = 'syncguard_probe'),
    'subscriptions', (SELECT coalesce(jsonb_object_agg(s.subname, sr.srsubstate::text), '{}')
                        FROM pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid
                       WHERE sr.srrelid = to_regclass('syncguard.probe')
                         AND s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())),
    'probeOwner', (SELECT r.rolname FROM pg_class c JOIN pg_roles r ON r.oid = c.relowner WHERE c.oid = to_regclass('syncguard.probe')),
    'installer', (SELECT r.rolname FROM pg_namespace n JOIN pg_roles r ON r.oid = n.nspowner WHERE n.nspname = 'syncguard'),
    'applyRole', syncguard._apply_role_name(),
    'applyRoleExists', EXISTS (SELECT 1 FROM pg_roles r WHERE r.rolname = syncguard._apply_role_name()),
    'foreign', (SELECT coalesce(jsonb_agg(x.what ORDER BY x.what), '[]')
                  FROM (SELECT format('trigger %s on %s', t.tgname, c.relname) AS what
                          FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
                         WHERE c.relnamespace = 'syncguard'::regnamespace AND c.relkind IN ('r', 'p')
                           AND NOT t.tgisinternal AND c.relname <> 'probe'
                        UNION ALL
                        SELECT format('rule %s on %s', w.rulename, c.relname)
                          FROM pg_rewrite w JOIN pg_class c ON c.oid = w.ev_class
                         WHERE c.relnamespace = 'syncguard'::regnamespace AND c.relkind IN ('r', 'p') AND c.relname <> 'probe'
                        UNION ALL
                        SELECT syncguard._probe_table_clean() WHERE syncguard._probe_table_clean() IS NOT NULL) x))
$function$;

-- Publisher: writes one probe for the subscriber p_target to answer at this position (kind
-- 'buckets', 'rows', 'repair' of registration r, or a 'marker' without one); returns its id.
CREATE OR REPLACE FUNCTION syncguard._send_probe(p_target uuid, p_kind text, r syncguard.registration, p_request jsonb)
RETURNS bigint LANGUAGE sql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  INSERT INTO syncguard.probe (origin, id, target, kind, schema_name, table_name, fingerprint, request)
  VALUES (syncguard.node_id(), nextval('syncguard.probe_id_seq'), p_target, p_kind, r.schema_name, r.table_name, r.fingerprint, p_request)
  RETURNING id
$function$;

-- Refuses a probe or repair (p_what) outside READ COMMITTED: it must see what committed before its
-- lock, and each statement after the lock takes a new snapshot.
CREATE OR REPLACE FUNCTION syncguard._require_read_committed(p_what text)
RETURNS void LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION '% needs a READ COMMITTED transaction (it must see what committed before its lock), got %', p_what,
      current_setting('transaction_isolation') USING ERRCODE = 'invalid_transaction_state';
  END IF;
END $function$;

-- Publisher: the SHARE lock a probe or repair request holds on its table until the transaction
-- commits (no writer can change the table meanwhile), refused while syncguard.probe is not clean.
-- Returns when the lock was granted.
CREATE OR REPLACE FUNCTION syncguard._probe_lock(p_schema text, p_table text)
RETURNS timestamptz LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
BEGIN
  PERFORM syncguard._require_probe_clean();
  EXECUTE format('LOCK TABLE %s IN SHARE MODE', syncguard._rel(p_schema, p_table));
  RETURN clock_timestamp();
END $function$;

-- Milliseconds from p_from to p_to, to the microsecond, as the probes report their times.
CREATE OR REPLACE FUNCTION syncguard._ms(p_from timestamptz, p_to timestamptz)
RETURNS numeric LANGUAGE sql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$ SELECT round(extract(epoch FROM p_to - p_from)::numeric * 1000, 3) $function$;

-- The caps of one probe (both sides refuse more).
CREATE OR REPLACE FUNCTION syncguard._probe_caps()
RETURNS jsonb LANGUAGE sql IMMUTABLE
AS $function$ SELECT jsonb_build_object('maxBuckets', 2000, 'maxRows', 500000) $function$;

-- The rows a probe of these buckets reads, counted from the table up to one more than the cap
-- (the caller compares with the cap); the predicates are _compute_sql's (_bucket_rows_sql), the hash omitted.
-- A hash-bucketed table is read whole, whatever the buckets. Settings pinned as for the compute:
-- range bounds are cast back under them, and row-level security makes it fail, not undercount.
CREATE OR REPLACE FUNCTION syncguard._probe_rows(r syncguard.registration, p_buckets bigint[])
RETURNS bigint LANGUAGE plpgsql STABLE
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' AS $function$
DECLARE
  v_limit bigint := (syncguard._probe_caps()->>'maxRows')::bigint + 1;
  v_n_rows bigint;
BEGIN
  IF r.scheme = 'hash' OR (r.scheme = 'range' AND r.bucket_count = 1) THEN
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM %s sg_t WHERE true%s LIMIT $1) sg_x',
                   syncguard._rel(r.schema_name, r.table_name), syncguard._filter(r))
      INTO v_n_rows USING v_limit;
  ELSE
    EXECUTE format('SELECT count(*) FROM (SELECT 1 FROM unnest($1::bigint[]) sg_cb(sg_b)%s CROSS JOIN LATERAL (%s) sg_s LIMIT $2) sg_x',
                   syncguard._bounds_join(r), syncguard._bucket_rows_sql(r, '1'))
      INTO v_n_rows USING p_buckets, v_limit;
  END IF;
  RETURN v_n_rows;
END $function$;

-- Buckets of a registration computed from the table, as {bucket: [rows, sum]} text pairs.
CREATE OR REPLACE FUNCTION syncguard._probe_values(p_reg integer, p_buckets bigint[])
RETURNS jsonb LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT coalesce(jsonb_object_agg(c.bucket::text, jsonb_build_array(c.row_count::text, c.hash_sum::text)), '{}')
    FROM syncguard.compute_buckets(p_reg, p_buckets) c
$function$;

-- What the subscriber answers to one probe (a marker, buckets, an inspection or a repair):
-- {ok, answer | error, rows}; an error it raises becomes a failed answer in the trigger. An
-- inspection ('rows') answers {rows, snapshot}: its (key, hash) list and the snapshot taken just
-- before it was read, so that a repair can tell local writes after the inspection from those it saw.
CREATE OR REPLACE FUNCTION syncguard._probe_answer(p syncguard.probe)
RETURNS jsonb LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

-- The subscriber's trigger (ENABLE ALWAYS, BEFORE INSERT): answers the probes the apply worker of
-- their subscription applies for this node. Nothing is answered while syncguard.probe has what
-- syncguard did not create (a failed answer naming it); an inspection ('rows') it answers is kept
-- in syncguard.inspection with its snapshot and local_write's epoch, in the same transaction as
-- the answer. Never raises.
CREATE OR REPLACE FUNCTION syncguard._probe_apply()
RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_sub name;
  v_t0 timestamptz;
  v_out jsonb;
  v_unclean text;
BEGIN
  BEGIN
    IF NEW.origin = syncguard.node_id() THEN
      RETURN NEW;                                  -- the publisher's own insert
    END IF;
    IF EXISTS (SELECT 1 FROM syncguard.probe p WHERE p.origin = NEW.origin AND p.id = NEW.id) THEN
      RETURN NULL;                                 -- a second copy: never a duplicate-key error
    END IF;
    SELECT s.subname INTO v_sub FROM pg_catalog.pg_stat_subscription s WHERE s.pid = pg_catalog.pg_backend_pid() LIMIT 1;
    IF v_sub IS NOT NULL AND NEW.request ? 'subscription' AND NEW.request->>'subscription' <> v_sub THEN
      RETURN NULL;                                 -- through another subscription: another position
    END IF;
    IF v_sub IS NULL OR NEW.target IS DISTINCT FROM syncguard.node_id() THEN
      RETURN NEW;                                  -- not applied here for us (a copy, another subscriber)
    END IF;
    DELETE FROM syncguard.probe_result WHERE applied_at < clock_timestamp() - interval '1 hour';
    v_t0 := clock_timestamp();
    v_unclean := syncguard._probe_table_clean();
    IF v_unclean IS NOT NULL THEN
      v_out := jsonb_build_object('ok', false, 'error', format('the subscriber answers no probe: %s (syncguard did not create it; it would run as syncguard''s owner here); drop it, then run syncguard install again', v_unclean));
    ELSIF NEW.created_at < clock_timestamp() - interval '10 minutes' THEN
      v_out := jsonb_build_object('ok', false, 'error', format('the probe arrived %s after it was sent; the subscriber is lagging (or the clocks differ)',
                                                               date_trunc('second', clock_timestamp() - NEW.created_at)));
    ELSE
      v_out := syncguard._probe_answer(NEW);
    END IF;
    IF NEW.kind = 'rows' AND (v_out->>'ok')::boolean THEN
      DELETE FROM syncguard.inspection WHERE taken_at < clock_timestamp() - syncguard._inspection_keep();
      INSERT INTO syncguard.inspection (origin, id, reg_id, bucket, snapshot, epoch)
      SELECT NEW.origin, NEW.id, g.reg_id, (NEW.request->>'bucket')::bigint, (v_out->'answer'->>'snapshot')::pg_snapshot,
             (SELECT s.created_at FROM syncguard.sentinel s)
        FROM syncguard.registration g
       WHERE g.node_id = syncguard.node_id() AND g.schema_name = NEW.schema_name AND g.table_name = NEW.table_name
      ON CONFLICT DO NOTHING;
    END IF;
    INSERT INTO syncguard.probe_result (origin, id, ok, answer, error, compute_ms)
    VALUES (NEW.origin, NEW.id, (v_out->>'ok')::boolean, v_out->'answer', v_out->>'error',
            round(extract(epoch FROM clock_timestamp() - v_t0)::numeric * 1000, 3))
    ON CONFLICT DO NOTHING;
  EXCEPTION WHEN OTHERS THEN
    BEGIN
      INSERT INTO syncguard.probe_result (origin, id, ok, error) VALUES (NEW.origin, NEW.id, false, left(SQLERRM, 500))
      ON CONFLICT DO NOTHING;
    EXCEPTION WHEN OTHERS THEN
      NULL;                                        -- nothing may stop replication
    END;
  END;
  RETURN NEW;
END $function$;

-- Has syncguard.probe only what syncguard gave it? NULL when clean, else what is not ("rule r on
-- probe, trigger t on probe"). The owner
-- of the table (the dedicated role, or whoever may SET ROLE to it) may add code that runs as the
-- installer when syncguard's SECURITY DEFINER functions read or write probe rows.
CREATE OR REPLACE FUNCTION syncguard._probe_table_clean()
RETURNS text LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  WITH t AS (SELECT c.* FROM pg_class c WHERE c.oid = to_regclass('syncguard.probe')),
  issue AS (
    SELECT 'no table syncguard.probe' AS what WHERE NOT EXISTS (SELECT 1 FROM t)
    UNION ALL
    SELECT format('trigger %s', g.tgname) FROM pg_trigger g, t WHERE g.tgrelid = t.oid AND NOT g.tgisinternal AND g.tgname <> 'syncguard_probe'
    UNION ALL
    SELECT 'trigger syncguard_probe running another function' FROM pg_trigger g, t
     WHERE g.tgrelid = t.oid AND g.tgname = 'syncguard_probe' AND g.tgfoid <> 'syncguard._probe_apply()'::regprocedure
    UNION ALL
    SELECT format('rule %s', w.rulename) FROM pg_rewrite w, t WHERE w.ev_class = t.oid
    UNION ALL
    SELECT 'row-level security' FROM t WHERE t.relrowsecurity OR t.relforcerowsecurity
    UNION ALL
    SELECT format('policy %s', p.polname) FROM pg_policy p, t WHERE p.polrelid = t.oid
    UNION ALL
    SELECT format('a default on column %s', a.attname) FROM pg_attrdef d JOIN pg_attribute a ON a.attrelid = d.adrelid AND a.attnum = d.adnum, t
     WHERE d.adrelid = t.oid
       AND NOT ((a.attname = 'request' AND pg_get_expr(d.adbin, d.adrelid) = '''{}''::jsonb')
             OR (a.attname = 'created_at' AND pg_get_expr(d.adbin, d.adrelid) = 'clock_timestamp()'))
    UNION ALL
    SELECT format('generated or identity column %s', a.attname) FROM pg_attribute a, t
     WHERE a.attrelid = t.oid AND a.attnum > 0 AND (a.attgenerated <> '' OR a.attidentity <> '')
    UNION ALL
    SELECT format('constraint %s', k.conname) FROM pg_constraint k, t
     WHERE k.conrelid = t.oid AND NOT (k.contype = 'p' AND k.conname = 'probe_pkey') AND k.contype <> 'n'   -- 18: NOT NULL
    UNION ALL
    SELECT format('index %s', i.indexrelid::regclass) FROM pg_index i, t
     WHERE i.indrelid = t.oid AND NOT (i.indexrelid = to_regclass('syncguard.probe_pkey') AND i.indexprs IS NULL AND i.indpred IS NULL)
    UNION ALL
    SELECT format('persistence %s', t.relpersistence) FROM t WHERE t.relpersistence <> 'p' OR t.relkind <> 'r'
    UNION ALL
    SELECT format('owner %s', t.relowner::regrole) FROM t
     WHERE t.relowner NOT IN ((SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'syncguard'),
                              coalesce((SELECT r.oid FROM pg_roles r WHERE r.rolname = syncguard._apply_role_name()), 0))
    UNION ALL
    SELECT format('a grant to %s', CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE a.grantee::regrole::text END) FROM t, aclexplode(t.relacl) a
     WHERE a.grantee NOT IN (t.relowner, (SELECT n.nspowner FROM pg_namespace n WHERE n.nspname = 'syncguard'))
       AND NOT (a.privilege_type IN ('SELECT', 'INSERT', 'DELETE') AND a.grantee IN (SELECT s.subowner FROM pg_subscription s))
  )
  SELECT string_agg(what || ' on probe', ', ' ORDER BY what) FROM issue
$function$;

-- Publisher: raises, naming it, when syncguard.probe has what syncguard did not create (a trigger,
-- rule, policy or default there would run as syncguard's owner on the probe's insert).
CREATE OR REPLACE FUNCTION syncguard._require_probe_clean()
RETURNS void LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_unclean text := syncguard._probe_table_clean();
BEGIN
  IF v_unclean IS NOT NULL THEN
    RAISE EXCEPTION 'syncguard sends no probe: % (syncguard did not create it)', v_unclean
      USING ERRCODE = 'object_not_in_prerequisite_state',
            HINT = 'drop it (docs/permissions.md, "Which fix is safer"), then run syncguard install again';
  END IF;
END $function$;
