-- Status: the node's schema version and the state of its catalogue.

-- The state of this node's drain, per table and in total, as jsonb (for status and drain summaries).
-- The drain's state comes from the unlogged drain_state and the sequence state_loss_count. It
-- lists the FOR ALL TABLES publications of this database, whose subscriptions get syncguard's
-- logged tables: only install, register and unregister write them, after checking the
-- subscription's owner.
CREATE OR REPLACE FUNCTION syncguard.status()
RETURNS jsonb LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT jsonb_build_object(
    'nodeId', syncguard.node_id(),
    'stateIntact', EXISTS (SELECT 1 FROM syncguard.sentinel),
    'stateLostAt', d.state_lost_at,
    'stateLostCount', (SELECT c.last_value FROM syncguard.state_loss_count c),
    'lastFullSweepAt', d.full_sweep_at,
    'allTablesPublications', (SELECT coalesce(jsonb_agg(p.pubname ORDER BY p.pubname), '[]') FROM pg_publication p WHERE p.puballtables),
    'remainingDirty', (SELECT count(*) FROM (SELECT DISTINCT d.reg_id, d.bucket FROM syncguard.dirty d
                         WHERE d.reg_id IN (SELECT syncguard._healthy_regs())) x),
    'oldestDirtyAgeMs', (SELECT floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint
                           FROM syncguard.dirty d WHERE d.reg_id IN (SELECT syncguard._healthy_regs())),
    'tables', coalesce((SELECT jsonb_agg(jsonb_build_object(
        'table', syncguard._table_text(r.schema_name, r.table_name),
        'role', r.node_role,
        'scheme', r.scheme,
        'fingerprint', r.fingerprint,
        'buckets', (SELECT count(*) FROM syncguard.bucket b WHERE b.reg_id = r.reg_id AND b.row_count IS NOT NULL),
        'rows', (SELECT coalesce(sum(b.row_count), 0) FROM syncguard.bucket b WHERE b.reg_id = r.reg_id),
        'dirtyBuckets', (SELECT count(DISTINCT d.bucket) FROM syncguard.dirty d WHERE d.reg_id = r.reg_id),
        'oldestDirtyAgeMs', (SELECT floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint
                               FROM syncguard.dirty d WHERE d.reg_id = r.reg_id),
        'sweepProgress', syncguard._sweep_progress(r),
        'sweepPass', (SELECT s.pass FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'firstSweepFinishedAt', (SELECT s.first_finished_at FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'lastSweepFinishedAt', (SELECT s.finished_at FROM syncguard.sweep s WHERE s.reg_id = r.reg_id),
        'partitions', syncguard._partition_status(r),
        'hashProblem', syncguard._v2_problem(r),
        'fault', (SELECT string_agg(format('%s: %s', f.kind, f.message), '; ' ORDER BY f.kind) FROM syncguard.fault f WHERE f.reg_id = r.reg_id))
        ORDER BY r.schema_name, r.table_name) FROM syncguard.registration r WHERE r.node_id = syncguard.node_id()), '[]'::jsonb))
  FROM (SELECT 1) one LEFT JOIN syncguard.drain_state d ON true
$function$;

CREATE OR REPLACE FUNCTION syncguard.schema_version()
RETURNS integer LANGUAGE sql STABLE SECURITY DEFINER
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT max(version) FROM syncguard.migration WHERE node_id = syncguard.node_id() $function$;
