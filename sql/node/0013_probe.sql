-- syncguard node schema 0013: the probe (DESIGN.md "The probe"; docs/verification.md).
--
-- A subscription applies the publisher's transactions one at a time, in commit order. The
-- publisher's probe transaction locks the probed table IN SHARE MODE (it waits for every writer in
-- flight on the table and holds new ones back until it commits), computes the requested buckets
-- from the table and inserts a row into syncguard.probe. That row travels through the same
-- subscription as the table; on the subscriber, a BEFORE INSERT trigger computes the same buckets
-- inside the apply transaction, at exactly the publisher's position, and records the answer in
-- the unlogged syncguard.probe_result, which the verifier reads.
--
-- Rules this file keeps:
--   - syncguard.probe is replicated. Its shape must never change (a column the subscriber lacks
--     stops the subscription), and it has no CHECK constraint the subscriber could fail on. New
--     kinds of request go into `request` (jsonb) and are told apart by `kind`.
--   - The subscriber trigger never raises: any error becomes a failed result (an error in a
--     subscriber trigger stops replication). Its work is capped (PROBE_MAX_BUCKETS buckets,
--     PROBE_MAX_ROWS rows by the catalogue's estimate), so it delays apply by a bounded amount.
--   - A probe names the subscription it must travel through and the subscriber node that
--     answers; a copy arriving through another subscription is dropped (it would sit at another
--     position in the stream), and other subscribers of the same publication store it unanswered.
--   - Probes older than an hour are deleted by the publisher (the deletes replicate); answers older
--     than an hour are deleted by the subscriber trigger.

CREATE SEQUENCE syncguard.probe_id_seq;

CREATE TABLE syncguard.probe (
  origin      uuid NOT NULL,          -- the publisher's node id
  id          bigint NOT NULL,
  target      uuid,                   -- the subscriber node that answers; NULL: none
  kind        text NOT NULL,          -- 'marker' (a barrier) or 'buckets'
  schema_name name,
  table_name  name,
  fingerprint text,                   -- the publisher's registration fingerprint
  request     jsonb NOT NULL DEFAULT '{}',   -- {subscription, buckets, values: {bucket: [rows, sum]}}
  created_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (origin, id)
);

CREATE UNLOGGED TABLE syncguard.probe_result (
  origin     uuid NOT NULL,
  id         bigint NOT NULL,
  ok         boolean NOT NULL,
  answer     jsonb,                   -- {bucket: [rows, sum]}
  error      text,
  compute_ms numeric,
  applied_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (origin, id)
);
CREATE INDEX probe_result_applied_at ON syncguard.probe_result (applied_at);

-- The caps of one probe (both sides refuse more).
CREATE FUNCTION syncguard._probe_caps() RETURNS jsonb
LANGUAGE sql IMMUTABLE
AS $$ SELECT jsonb_build_object('maxBuckets', 2000, 'maxRows', 500000) $$;

-- The catalogue's estimate of the rows a probe of these buckets reads (a hash-bucketed table is
-- read whole, whatever the buckets).
CREATE FUNCTION syncguard._probe_rows(r syncguard.registration, p_buckets bigint[]) RETURNS bigint
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(sum(b.row_count), 0)::bigint FROM syncguard.bucket b
   WHERE b.reg_id = r.reg_id AND (r.scheme = 'hash' OR b.bucket = ANY(p_buckets))
$$;

-- Buckets of a registration computed from the table, as {bucket: [rows, sum]} text pairs.
CREATE FUNCTION syncguard._probe_values(p_reg integer, p_buckets bigint[]) RETURNS jsonb
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_object_agg(c.bucket::text, jsonb_build_array(c.row_count::text, c.hash_sum::text)), '{}')
    FROM syncguard.compute_buckets(p_reg, p_buckets) c
$$;

-- What the subscriber answers to one probe: {ok, answer | error, rows}. Raises on bad input;
-- the trigger turns that into a failed answer.
CREATE FUNCTION syncguard._probe_answer(p syncguard.probe) RETURNS jsonb
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
  ELSIF p.kind IS DISTINCT FROM 'buckets' THEN
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
  v_buckets := ARRAY(SELECT jsonb_array_elements_text(p.request->'buckets')::bigint);
  IF cardinality(v_buckets) = 0 OR cardinality(v_buckets) > (v_caps->>'maxBuckets')::int THEN
    RETURN jsonb_build_object('ok', false, 'error', format('a probe asks for 1 to %s buckets, this one for %s', v_caps->>'maxBuckets', cardinality(v_buckets)));
  END IF;
  v_rows := syncguard._probe_rows(r, v_buckets);
  IF v_rows > (v_caps->>'maxRows')::bigint THEN
    RETURN jsonb_build_object('ok', false, 'error', format('the probe would read about %s rows, more than the cap of %s', v_rows, v_caps->>'maxRows'));
  END IF;
  RETURN jsonb_build_object('ok', true, 'answer', syncguard._probe_values(r.reg_id, v_buckets), 'rows', v_rows);
END
$$;

-- The subscriber's trigger (ENABLE ALWAYS, BEFORE INSERT). Never raises.
CREATE FUNCTION syncguard._probe_apply() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_sub name;
  v_t0 timestamptz;
  v_out jsonb;
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
    IF NEW.created_at < clock_timestamp() - interval '10 minutes' THEN
      v_out := jsonb_build_object('ok', false, 'error', format('the probe arrived %s after it was sent; the subscriber is lagging (or the clocks differ)',
                                                               date_trunc('second', clock_timestamp() - NEW.created_at)));
    ELSE
      v_t0 := clock_timestamp();
      v_out := syncguard._probe_answer(NEW);
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
END
$$;

CREATE TRIGGER syncguard_probe BEFORE INSERT ON syncguard.probe FOR EACH ROW EXECUTE FUNCTION syncguard._probe_apply();
ALTER TABLE syncguard.probe ENABLE ALWAYS TRIGGER syncguard_probe;

-- Publisher: the probe of some buckets of one table. Call it in a READ COMMITTED transaction that
-- set a short lock_timeout, and commit right after: the SHARE lock is held until then.
-- Returns {id, values, rows, lockWaitMs, computeMs}.
CREATE FUNCTION syncguard.probe_buckets(p_schema text, p_table text, p_buckets bigint[], p_target uuid, p_subscription text)
RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  r syncguard.registration;
  v_caps jsonb := syncguard._probe_caps();
  v_t0 timestamptz := clock_timestamp();
  v_t1 timestamptz;
  v_values jsonb;
  v_id bigint;
BEGIN
  IF current_setting('transaction_isolation') <> 'read committed' THEN
    RAISE EXCEPTION 'a probe needs a READ COMMITTED transaction (it must see what committed before its lock), got %',
      current_setting('transaction_isolation') USING ERRCODE = 'invalid_transaction_state';
  END IF;
  SELECT * INTO r FROM syncguard.registration g
   WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table AND g.node_role = 'publisher';
  IF NOT FOUND THEN
    RAISE EXCEPTION 'table %.% is not registered as a publisher table on this node', quote_ident(p_schema), quote_ident(p_table)
      USING ERRCODE = 'undefined_object';
  END IF;
  IF cardinality(p_buckets) IS NULL OR cardinality(p_buckets) > (v_caps->>'maxBuckets')::int THEN
    RAISE EXCEPTION 'a probe asks for 1 to % buckets, this one for %', v_caps->>'maxBuckets', coalesce(cardinality(p_buckets), 0)
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  IF syncguard._probe_rows(r, p_buckets) > (v_caps->>'maxRows')::bigint THEN
    RAISE EXCEPTION 'a probe of these buckets would read about % rows, more than the cap of %', syncguard._probe_rows(r, p_buckets), v_caps->>'maxRows'
      USING ERRCODE = 'program_limit_exceeded';
  END IF;
  EXECUTE format('LOCK TABLE ONLY %I.%I IN SHARE MODE', p_schema, p_table);
  v_t1 := clock_timestamp();
  -- a new snapshot, taken after the lock: every writer that held the table has committed
  v_values := syncguard._probe_values(r.reg_id, p_buckets);
  INSERT INTO syncguard.probe (origin, id, target, kind, schema_name, table_name, fingerprint, request)
  VALUES (syncguard.node_id(), nextval('syncguard.probe_id_seq'), p_target, 'buckets', p_schema, p_table, r.fingerprint,
          jsonb_build_object('subscription', p_subscription, 'buckets', to_jsonb(p_buckets), 'values', v_values))
  RETURNING id INTO v_id;
  RETURN jsonb_build_object('id', v_id, 'values', v_values,
                            'lockWaitMs', round(extract(epoch FROM v_t1 - v_t0)::numeric * 1000, 3),
                            'computeMs', round(extract(epoch FROM clock_timestamp() - v_t1)::numeric * 1000, 3));
END
$$;

-- Publisher: a marker, a probe that asks nothing. Its answer on the subscriber means that every
-- transaction the publisher committed before it has been applied there (the barrier).
CREATE FUNCTION syncguard.probe_marker(p_target uuid, p_subscription text) RETURNS bigint
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  INSERT INTO syncguard.probe (origin, id, target, kind, request)
  VALUES (syncguard.node_id(), nextval('syncguard.probe_id_seq'), p_target, 'marker', jsonb_build_object('subscription', p_subscription))
  RETURNING id
$$;

-- Publisher: deletes this node's probes older than an hour (the deletes replicate).
CREATE FUNCTION syncguard.probe_cleanup() RETURNS integer
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_n integer;
BEGIN
  DELETE FROM syncguard.probe WHERE origin = syncguard.node_id() AND created_at < clock_timestamp() - interval '1 hour';
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END
$$;

-- Subscriber: the answers to some probes of one origin, {id: {ok, answer, error, computeMs}}.
CREATE FUNCTION syncguard.probe_results(p_origin uuid, p_ids bigint[]) RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_object_agg(r.id::text, jsonb_build_object('ok', r.ok, 'answer', r.answer, 'error', r.error, 'computeMs', r.compute_ms)), '{}')
    FROM syncguard.probe_result r WHERE r.origin = p_origin AND r.id = ANY(p_ids)
$$;

-- Subscriber: can probes reach this node? The trigger, and the subscriptions that carry
-- syncguard.probe with their sync state: {table, trigger: tgenabled or null, subscriptions: {name: state}}.
CREATE FUNCTION syncguard.probe_route() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT jsonb_build_object(
    'nodeId', syncguard.node_id(),
    'table', to_regclass('syncguard.probe') IS NOT NULL,
    'trigger', (SELECT t.tgenabled::text FROM pg_trigger t WHERE t.tgrelid = to_regclass('syncguard.probe') AND t.tgname = 'syncguard_probe'),
    'subscriptions', (SELECT coalesce(jsonb_object_agg(s.subname, sr.srsubstate::text), '{}')
                        FROM pg_subscription_rel sr JOIN pg_subscription s ON s.oid = sr.srsubid
                       WHERE sr.srrelid = to_regclass('syncguard.probe')
                         AND s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())))
$$;

-- The drain of some tables only (verification drains what it verifies, nothing else): as
-- drain_batch(integer), restricted to the named tables; NULL names: every table.
CREATE FUNCTION syncguard.drain_batch(p_max_buckets integer, p_schemas name[], p_tables name[]) RETURNS jsonb
LANGUAGE plpgsql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_scope integer[];
  v_regs integer[];
  v_cands bigint[];
  v_reg integer;
  v_buckets bigint[];
  v_done integer := 0;
  v_rows bigint := 0;
  v_failed integer := 0;
BEGIN
  IF p_max_buckets < 1 THEN
    RAISE EXCEPTION 'p_max_buckets must be at least 1, got %', p_max_buckets USING ERRCODE = 'invalid_parameter_value';
  END IF;
  v_scope := ARRAY(SELECT h FROM syncguard._healthy_regs() h
                    WHERE p_tables IS NULL
                       OR h IN (SELECT g.reg_id FROM syncguard.registration g JOIN unnest(p_schemas, p_tables) u(s, t)
                                    ON g.schema_name = u.s AND g.table_name = u.t
                                 WHERE g.node_id = syncguard.node_id()));
  SELECT array_agg(c.reg_id ORDER BY c.reg_id, c.bucket), array_agg(c.bucket ORDER BY c.reg_id, c.bucket)
    INTO v_regs, v_cands
    FROM (SELECT DISTINCT d.reg_id, d.bucket
            FROM (SELECT dd.reg_id, dd.bucket FROM syncguard.dirty dd
                   WHERE dd.reg_id = ANY(v_scope)
                   ORDER BY dd.marked_at LIMIT p_max_buckets * 4) d) c;
  IF v_regs IS NULL THEN
    RETURN jsonb_build_object('buckets', 0, 'rows', 0);
  END IF;

  INSERT INTO syncguard.bucket (reg_id, bucket)
  SELECT u.reg_id, u.bucket FROM unnest(v_regs, v_cands) u(reg_id, bucket) ORDER BY 1, 2 ON CONFLICT DO NOTHING;

  FOR v_reg, v_buckets IN
    SELECT l.reg_id, array_agg(l.bucket ORDER BY l.bucket)
      FROM (SELECT b.reg_id, b.bucket FROM syncguard.bucket b
             WHERE (b.reg_id, b.bucket) IN (SELECT u.reg_id, u.bucket FROM unnest(v_regs, v_cands) u(reg_id, bucket))
             ORDER BY b.reg_id, b.bucket LIMIT p_max_buckets
             FOR UPDATE SKIP LOCKED) l
     GROUP BY l.reg_id
  LOOP
    BEGIN
      SELECT v_done + count(*), v_rows + coalesce(sum(x.row_count), 0) INTO v_done, v_rows
        FROM syncguard.recompute(v_reg, v_buckets) x;
    EXCEPTION WHEN OTHERS THEN
      IF syncguard._transient(SQLSTATE) THEN
        RAISE;
      END IF;
      PERFORM syncguard._drain_fault(v_reg, SQLSTATE, SQLERRM);
      v_failed := v_failed + 1;
    END;
  END LOOP;
  RETURN jsonb_build_object('buckets', v_done, 'rows', v_rows, 'failed', v_failed);
END
$$;

-- One way to drain dirty buckets: the one-argument form is the scoped one over every table.
CREATE OR REPLACE FUNCTION syncguard.drain_batch(p_max_buckets integer) RETURNS jsonb
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT syncguard.drain_batch(p_max_buckets, NULL, NULL) $$;

-- The live-hash fallback of verification is gone: probes resolve dirty buckets exactly.
DROP FUNCTION syncguard.verify_live(text, text, bigint[]);

CREATE OR REPLACE FUNCTION syncguard._role_functions(p_kind text) RETURNS text[]
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ARRAY['syncguard.schema_version()', 'syncguard.check_state()', 'syncguard.request_full_sweep()',
               'syncguard.maybe_full_sweep(interval)', 'syncguard.drain_batch(integer)', 'syncguard.sweep_batch(integer)',
               'syncguard.status()']
      || CASE WHEN p_kind = 'verify' THEN
           ARRAY['syncguard.drain_batch(integer, name[], name[])',
                 'syncguard.verify_ranges(bigint)', 'syncguard.verify_buckets(text, text, bigint, bigint[], bigint[])',
                 'syncguard.local_writes(integer)', 'syncguard.parity_info()', 'syncguard.health()',
                 'syncguard.probe_buckets(text, text, bigint[], uuid, text)', 'syncguard.probe_marker(uuid, text)',
                 'syncguard.probe_cleanup()', 'syncguard.probe_results(uuid, bigint[])', 'syncguard.probe_route()']
         ELSE '{}' END
$$;

-- A verify role that already had its grants gets the new functions.
DO $grants$
DECLARE
  v_role name;
  v_fn text;
BEGIN
  FOR v_role IN
    SELECT DISTINCT r.rolname FROM pg_proc p, aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
     WHERE p.oid = 'syncguard.verify_ranges(bigint)'::regprocedure AND a.privilege_type = 'EXECUTE'
       AND r.rolname <> current_user
  LOOP
    FOREACH v_fn IN ARRAY syncguard._role_functions('verify') LOOP
      EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, v_role);
    END LOOP;
  END LOOP;
END
$grants$;
