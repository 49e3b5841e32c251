-- The drain: recomputes the buckets that marks name, in batches that parallel workers share
-- (FOR UPDATE SKIP LOCKED), and the re-sweep after lost state. Drains write no logged table, so
-- nothing they do reaches a FOR ALL TABLES publication.

-- Recomputes up to p_max_buckets dirty buckets, oldest marks first, of the named tables only
-- (verification drains what it verifies, nothing else); NULL names: every table. Returns
-- {buckets, rows, failed}. A registration with a fault is skipped, and a recompute that fails
-- becomes a fault of its registration instead of failing the batch (a transient error, a lock or
-- statement timeout or a deadlock, still ends it). Parallel workers share the marks: each claims
-- buckets FOR UPDATE SKIP LOCKED and looks at their marks again once it holds them (see the loop),
-- so a bucket another worker drained meanwhile is not recomputed twice (without that second look,
-- three workers recomputed 31 dirty buckets 62 times).
CREATE OR REPLACE FUNCTION syncguard.drain_batch(p_max_buckets integer, p_schemas name[], p_tables name[])
RETURNS jsonb LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
               AND EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = b.reg_id AND d.bucket = b.bucket)
             ORDER BY b.reg_id, b.bucket LIMIT p_max_buckets
             FOR UPDATE SKIP LOCKED) l
     GROUP BY l.reg_id
  LOOP
    -- The claim's EXISTS ran on the snapshot its statement began with. A worker that drained one of
    -- these buckets and committed while this claim waited on its lock left the bucket unlocked and
    -- its marks gone, but that old snapshot still saw them. Look again now, holding the lock: a
    -- fresh statement sees that commit, and a mark added since is seen too, so none is lost.
    v_buckets := ARRAY(SELECT x.b FROM unnest(v_buckets) x(b)
                        WHERE EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = v_reg AND d.bucket = x.b)
                        ORDER BY x.b);
    CONTINUE WHEN cardinality(v_buckets) = 0;
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
END $function$;

-- One way to drain dirty buckets: the one-argument form is the scoped one over every table.
CREATE OR REPLACE FUNCTION syncguard.drain_batch(p_max_buckets integer)
RETURNS jsonb LANGUAGE sql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT syncguard.drain_batch(p_max_buckets, NULL, NULL) $function$;

-- Claims, recomputes and stores the given buckets; returns those it recomputed.
-- Every recompute raises the bucket's generation: verification judges "the publisher bucket did
-- not change between two rounds" by it, since a row flipped A -> B -> A while another drainer
-- recomputes the bucket leaves its value as it was, but not its generation.
CREATE OR REPLACE FUNCTION syncguard.recompute(p_reg integer, p_buckets bigint[])
RETURNS TABLE(bucket bigint, row_count bigint) LANGUAGE plpgsql
SET "TimeZone" TO 'UTC' SET "DateStyle" TO 'ISO, YMD' SET "IntervalStyle" TO 'postgres' SET extra_float_digits TO '1' SET bytea_output TO 'hex' SET lc_monetary TO 'C' SET search_path TO 'pg_catalog', 'pg_temp' SET row_security TO 'off' SET client_encoding TO 'UTF8' SET max_parallel_workers_per_gather TO '0' AS $function$
DECLARE
  r syncguard.registration := syncguard._reg(p_reg);
  v_claimed bigint[];
BEGIN
  INSERT INTO syncguard.bucket AS b (reg_id, bucket)
  SELECT p_reg, u.b FROM unnest(p_buckets) u(b) ORDER BY u.b ON CONFLICT DO NOTHING;

  SELECT array_agg(c.bucket) INTO v_claimed
    FROM (SELECT b.bucket FROM syncguard.bucket b
           WHERE b.reg_id = p_reg AND b.bucket = ANY(p_buckets)
           ORDER BY b.bucket FOR UPDATE SKIP LOCKED) c;
  IF v_claimed IS NULL THEN
    RETURN;
  END IF;

  DELETE FROM syncguard.dirty d WHERE d.reg_id = p_reg AND d.bucket = ANY(v_claimed);

  RETURN QUERY EXECUTE format(
    'WITH sg_u AS (UPDATE syncguard.bucket b SET row_count = c.n, hash_sum = c.s, computed_at = pg_catalog.clock_timestamp(), '
    'generation = b.generation + 1 '
    'FROM (%s) c(b, n, s) WHERE b.reg_id = %s AND b.bucket = c.b RETURNING b.bucket, b.row_count) '
    'SELECT * FROM sg_u', syncguard._compute_sql(r), p_reg)
  USING v_claimed;
END $function$;

-- Registrations the drain leaves alone: a fault was recorded, so their catalogue is not trusted
-- until the table is registered again.
CREATE OR REPLACE FUNCTION syncguard._healthy_regs()
RETURNS SETOF integer LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT r.reg_id FROM syncguard.registration r
       WHERE r.node_id = syncguard.node_id() AND NOT EXISTS (SELECT 1 FROM syncguard.fault f WHERE f.reg_id = r.reg_id) $function$;

-- Errors that say nothing about the registration (resources, shutdown, connection, rollbacks,
-- lock timeouts, internal errors): the batch ends and a later drain tries again. (A statement
-- timeout is query_canceled, which WHEN OTHERS never catches.)
CREATE OR REPLACE FUNCTION syncguard._transient(p_state text)
RETURNS boolean LANGUAGE sql IMMUTABLE
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT left(p_state, 2) IN ('08', '40', '53', '55', '57', '58', 'XX') $function$;

-- Records that recomputing a registration failed; only the drain (as the owner) calls it.
CREATE OR REPLACE FUNCTION syncguard._drain_fault(p_reg integer, p_state text, p_message text)
RETURNS void LANGUAGE sql
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ INSERT INTO syncguard.fault (reg_id, kind, sqlstate, message) VALUES (p_reg, 'drain', p_state, left(p_message, 500))
      ON CONFLICT DO NOTHING $function$;

-- Notices that the unlogged tables were emptied (crash recovery, promotion of a standby): the
-- sentinel row is gone. Then every catalogue value and mark is gone too, and the sweep starts
-- again from the beginning by itself (no sweep row = sweep from the start); this records the loss
-- so that status and verification can say why coverage dropped. Returns true when it found a loss.
-- Every call also deletes what registrations that are gone left behind (marks, local writes,
-- faults, catalogue signatures) and runs the partition and rewrite checks (_check_partitions).
-- The time of a loss is kept in the unlogged drain_state (emptied with the rest, set again here)
-- and the number of losses in the sequence state_loss_count, which survives them: a drain writes
-- no logged table, since a FOR ALL TABLES publication would send it, and no publication replicates
-- a sequence.
CREATE OR REPLACE FUNCTION syncguard.check_state()
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_restored boolean;
  v_regs integer[] := ARRAY(SELECT reg_id FROM syncguard.registration WHERE node_id = syncguard.node_id());
BEGIN
  INSERT INTO syncguard.drain_state DEFAULT VALUES ON CONFLICT DO NOTHING;
  DELETE FROM syncguard.dirty WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.local_write WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.fault WHERE reg_id <> ALL(v_regs);
  DELETE FROM syncguard.catalogue_sig WHERE reg_id <> ALL(v_regs);
  PERFORM syncguard._check_partitions();
  IF EXISTS (SELECT 1 FROM syncguard.sentinel) THEN
    RETURN false;
  END IF;
  INSERT INTO syncguard.sentinel DEFAULT VALUES ON CONFLICT DO NOTHING RETURNING true INTO v_restored;
  IF v_restored THEN   -- only the session that restored the sentinel records the loss
    DELETE FROM syncguard.sweep;
    DELETE FROM syncguard.bucket;
    PERFORM syncguard._install_bounds(g) FROM syncguard.registration g WHERE g.node_id = syncguard.node_id() AND g.scheme = 'range';
    UPDATE syncguard.drain_state SET state_lost_at = now(), full_sweep_at = now();
    PERFORM pg_catalog.setval('syncguard.state_loss_count', (SELECT c.last_value FROM syncguard.state_loss_count c) + 1, true);
  END IF;
  RETURN coalesce(v_restored, false);
END $function$;

-- Starts a new sweep pass over every registered table now. Existing catalogue values stay valid
-- until their bucket is recomputed. SECURITY DEFINER, so a drainer needs no table privileges; the
-- time is kept in the unlogged drain_state (a drain writes no logged table).
CREATE OR REPLACE FUNCTION syncguard.request_full_sweep()
RETURNS integer LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_n integer;
BEGIN
  INSERT INTO syncguard.drain_state DEFAULT VALUES ON CONFLICT DO NOTHING;
  UPDATE syncguard.drain_state SET full_sweep_at = now();
  UPDATE syncguard.sweep s SET next_bucket = syncguard._sweep_start(r), finished_at = NULL,
         started_at = now(), pass = s.pass + 1
    FROM syncguard.registration r WHERE r.node_id = syncguard.node_id() AND r.reg_id = s.reg_id;
  GET DIAGNOSTICS v_n = ROW_COUNT;
  RETURN v_n;
END $function$;

-- Starts a full re-sweep when the last one started more than p_interval ago (the first call only
-- starts the clock). Returns true when it started one. SECURITY DEFINER, so a drainer needs no
-- table privileges; the time of the last start is in the unlogged drain_state.
CREATE OR REPLACE FUNCTION syncguard.maybe_full_sweep(p_interval interval)
RETURNS boolean LANGUAGE plpgsql SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_last timestamptz;
BEGIN
  INSERT INTO syncguard.drain_state (full_sweep_at) VALUES (now()) ON CONFLICT DO NOTHING;
  SELECT d.full_sweep_at INTO v_last FROM syncguard.drain_state d FOR UPDATE;
  IF v_last IS NULL THEN
    UPDATE syncguard.drain_state SET full_sweep_at = now();
    RETURN false;
  END IF;
  IF v_last > now() - p_interval THEN
    RETURN false;
  END IF;
  PERFORM syncguard.request_full_sweep();
  RETURN true;
END $function$;
