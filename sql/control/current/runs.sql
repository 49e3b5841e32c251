-- Verification runs: what a run records (its verdict, each table's result) and how a divergence
-- moves between open, resolved and reopened.

-- Records a verification report (the JSON of `syncguard verify --json`) with its metadata, opens
-- or refreshes a divergence per confirmed mismatch, closes divergences an in-sync run no longer
-- sees, and stamps fully verified tables. Returns {runId, divergenceIds}.
CREATE OR REPLACE FUNCTION syncguard_control.record_run(p_meta jsonb, p_report jsonb)
RETURNS jsonb LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_run bigint;
  v_ids bigint[] := '{}';
  v_id bigint;
  m jsonb;
  t jsonb;
  v_pair text := p_meta->>'pair';
  v_actor text := p_meta->>'requestedBy';
BEGIN
  INSERT INTO syncguard_control.verification_run (pair, publisher, subscriber, requested_by, via, table_filter,
      started_at, finished_at, status, reasons, verified_lsn, coverage_pct, buckets_compared, buckets_skipped,
      mismatches, candidates, local_writes, report)
  VALUES (v_pair, p_meta->>'publisher', p_meta->>'subscriber', v_actor, p_meta->>'via', p_meta->>'table',
      (p_meta->>'startedAt')::timestamptz, (p_meta->>'finishedAt')::timestamptz, p_report->>'status',
      ARRAY(SELECT jsonb_array_elements_text(p_report->'reasons')), (p_report->>'verifiedLsn')::pg_lsn,
      round((p_report->>'coveragePct')::numeric, 2),
      (SELECT coalesce(sum((x->>'bucketsCompared')::bigint), 0) FROM jsonb_array_elements(p_report->'tables') x),
      (SELECT coalesce(sum((x->>'bucketsSkipped')::bigint), 0) FROM jsonb_array_elements(p_report->'tables') x),
      jsonb_array_length(p_report->'mismatches'), jsonb_array_length(p_report->'candidates'),
      (SELECT coalesce(sum(coalesce((w->>'writes')::integer, 1)), 0)::integer
         FROM jsonb_array_elements(coalesce(p_report->'localWrites', '[]')) w), p_report)
  RETURNING run_id INTO v_run;

  FOR m IN SELECT * FROM jsonb_array_elements(p_report->'mismatches') LOOP
    UPDATE syncguard_control.divergence
       SET last_run_id = v_run, last_seen_at = now(), updated_at = now(),
           publisher_rows = m->'publisher'->>'rows', publisher_hash = m->'publisher'->>'hash',
           subscriber_rows = m->'subscriber'->>'rows', subscriber_hash = m->'subscriber'->>'hash'
     WHERE pair = v_pair AND table_name = m->>'table' AND bucket = m->>'bucket' AND state NOT IN ('verified', 'ignored')
    RETURNING divergence_id INTO v_id;
    IF v_id IS NULL THEN
      INSERT INTO syncguard_control.divergence (pair, table_name, bucket, state, first_run_id, last_run_id, first_seen_at,
          last_seen_at, publisher_rows, publisher_hash, subscriber_rows, subscriber_hash)
      VALUES (v_pair, m->>'table', m->>'bucket', 'open', v_run, v_run, now(), now(), m->'publisher'->>'rows',
          m->'publisher'->>'hash', m->'subscriber'->>'rows', m->'subscriber'->>'hash')
      RETURNING divergence_id INTO v_id;
      INSERT INTO syncguard_control.divergence_event (divergence_id, from_state, to_state, actor, run_id, note)
      VALUES (v_id, NULL, 'open', v_actor, v_run, 'confirmed in two rounds');
    END IF;
    v_ids := v_ids || v_id;
    v_id := NULL;
  END LOOP;

  IF p_report->>'status' = 'in_sync' THEN
    -- everything compared equal: divergences still in flight for the verified tables are gone
    FOR v_id, m IN
      SELECT d.divergence_id, to_jsonb(d.state) FROM syncguard_control.divergence d
       WHERE d.pair = v_pair AND d.state NOT IN ('verified', 'ignored')
         AND d.table_name IN (SELECT x->>'table' FROM jsonb_array_elements(p_report->'tables') x)
    LOOP
      UPDATE syncguard_control.divergence SET state = 'verified', updated_at = now() WHERE divergence_id = v_id;
      INSERT INTO syncguard_control.divergence_event (divergence_id, from_state, to_state, actor, run_id, note)
      VALUES (v_id, m #>> '{}', 'verified', v_actor, v_run, 'an in-sync verification no longer finds it');
    END LOOP;
    FOR t IN SELECT * FROM jsonb_array_elements(p_report->'tables') LOOP
      INSERT INTO syncguard_control.table_verified (pair, table_name, verified_lsn, verified_at, run_id)
      VALUES (v_pair, t->>'table', (p_report->>'verifiedLsn')::pg_lsn, now(), v_run)
      ON CONFLICT (pair, table_name) DO UPDATE
        SET verified_lsn = excluded.verified_lsn, verified_at = excluded.verified_at, run_id = excluded.run_id;
    END LOOP;
  END IF;
  RETURN jsonb_build_object('runId', v_run, 'divergenceIds', to_jsonb(v_ids));
END $function$;

CREATE OR REPLACE FUNCTION syncguard_control._move_divergence(p_id bigint, p_to text, p_actor text, p_note text)
RETURNS void LANGUAGE plpgsql
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_from text;
BEGIN
  IF p_id IS NULL THEN
    RETURN;
  END IF;
  SELECT state INTO v_from FROM syncguard_control.divergence WHERE divergence_id = p_id FOR UPDATE;
  IF NOT FOUND THEN
    RETURN;
  END IF;
  UPDATE syncguard_control.divergence SET state = p_to, updated_at = now() WHERE divergence_id = p_id;
  INSERT INTO syncguard_control.divergence_event (divergence_id, from_state, to_state, actor, note)
  VALUES (p_id, v_from, p_to, p_actor, p_note);
END $function$;
