-- syncguard node schema 0019: hierarchical verification, so that what a verifier reads grows with
-- the number of differences, not with the size of the catalogue.
--   - verify_overview(): per table what verify_ranges() gave, without its ranges: the totals of the
--     clean buckets (count, rows, hash sum) and the extent of the catalogue (lowest and highest
--     bucket, dirty ones included). Equal totals and nothing dirty: the table is in sync, in one
--     call, whatever its size. Bucket values are additive, so the totals are sums like any range.
--   - verify_level(): the ranges of one table at one width, within given parent ranges, each as
--     [buckets, digest of (rows, sum)]. The verifier starts at a width that splits the extent into
--     a few ranges and descends, by a fixed fanout, only into ranges that differ or hold a dirty
--     bucket, down to single buckets; then it reads the detail of those buckets only.
-- The digest is the first 11 base64 characters (66 bits) of sha256('<rows>:<sum>'), so a range is
-- sent in about 25 bytes instead of three numbers.
-- And for drains with several workers (drain --workers N): a worker no longer recomputes a bucket
-- that another worker drained after it listed its candidates (the bench saw 12 % of the work
-- done twice with 2 workers).

CREATE FUNCTION syncguard.verify_overview() RETURNS jsonb
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
  SELECT coalesce(jsonb_agg(jsonb_build_object(
      'table', syncguard._table_text(r.schema_name, r.table_name),
      'fingerprint', r.fingerprint,
      'swept', s.first_finished_at IS NOT NULL,
      'dirty', (SELECT coalesce(jsonb_object_agg(x.bucket, x.age_ms), '{}') FROM (
                  SELECT d.bucket::text AS bucket, floor(extract(epoch FROM clock_timestamp() - min(d.marked_at)) * 1000)::bigint AS age_ms
                    FROM syncguard.dirty d WHERE d.reg_id = r.reg_id GROUP BY d.bucket) x),
      'uncomputed', (SELECT coalesce(jsonb_agg(b.bucket::text), '[]') FROM syncguard.bucket b
                      WHERE b.reg_id = r.reg_id AND b.row_count IS NULL),
      'localWrites', (SELECT coalesce(jsonb_agg(DISTINCT w.bucket::text), '[]') FROM syncguard.local_write w WHERE w.reg_id = r.reg_id),
      'totals', (SELECT jsonb_build_array(count(*)::text, coalesce(sum(b.row_count), 0)::text, coalesce(sum(b.hash_sum), 0)::text)
                   FROM syncguard.bucket b
                  WHERE b.reg_id = r.reg_id AND b.row_count IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = b.reg_id AND d.bucket = b.bucket)),
      'lo', (SELECT least(min(x.b), (SELECT min(d.bucket) FROM syncguard.dirty d WHERE d.reg_id = r.reg_id))::text
               FROM (SELECT min(b.bucket) AS b FROM syncguard.bucket b WHERE b.reg_id = r.reg_id) x),
      'hi', (SELECT greatest(max(x.b), (SELECT max(d.bucket) FROM syncguard.dirty d WHERE d.reg_id = r.reg_id))::text
               FROM (SELECT max(b.bucket) AS b FROM syncguard.bucket b WHERE b.reg_id = r.reg_id) x))
    ORDER BY r.schema_name, r.table_name), '[]')
  FROM syncguard.registration r LEFT JOIN syncguard.sweep s ON s.reg_id = r.reg_id
  WHERE r.node_id = syncguard.node_id()
$$;

-- The ranges of width p_width of one table's clean buckets, within the parent ranges p_parents of
-- width p_parent_width (NULL: every bucket): {range: [buckets, digest]}.
CREATE FUNCTION syncguard.verify_level(p_schema text, p_table text, p_width bigint, p_parent_width bigint, p_parents bigint[])
RETURNS jsonb
LANGUAGE plpgsql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_reg integer;
  v_out jsonb;
  v_lo bigint[] := ARRAY(SELECT syncguard.int_lo(p.v, p_parent_width) FROM unnest(p_parents) WITH ORDINALITY p(v, o) ORDER BY p.o);
  v_hi bigint[] := ARRAY(SELECT syncguard.int_hi(p.v, p_parent_width) FROM unnest(p_parents) WITH ORDINALITY p(v, o) ORDER BY p.o);
BEGIN
  IF p_width < 1 OR (p_parents IS NOT NULL AND (p_parent_width IS NULL OR p_parent_width < p_width)) THEN
    RAISE EXCEPTION 'verify_level needs a width of at least 1 and a parent width at least as large, got % and %', p_width, p_parent_width
      USING ERRCODE = 'invalid_parameter_value';
  END IF;
  SELECT g.reg_id INTO v_reg FROM syncguard.registration g
   WHERE g.node_id = syncguard.node_id() AND g.schema_name = p_schema AND g.table_name = p_table;
  IF v_reg IS NULL THEN
    RETURN NULL;
  END IF;
  WITH src AS (
    -- every bucket, or those of the parent ranges, each found through the catalogue's key
    SELECT b.bucket, b.row_count, b.hash_sum FROM syncguard.bucket b
     WHERE p_parents IS NULL AND b.reg_id = v_reg AND b.row_count IS NOT NULL
    UNION ALL
    -- each parent's span read through the catalogue's primary key (OFFSET 0 keeps the planner
    -- from flattening the lateral read into one scan of the whole catalogue per parent)
    SELECT b.bucket, b.row_count, b.hash_sum
      FROM unnest(v_lo, v_hi) x(lo, hi)
     CROSS JOIN LATERAL (SELECT b.bucket, b.row_count, b.hash_sum FROM syncguard.bucket b
                          WHERE b.reg_id = v_reg AND b.bucket >= x.lo AND b.bucket <= x.hi AND b.row_count IS NOT NULL
                         OFFSET 0) b
     WHERE p_parents IS NOT NULL
  ), clean AS (
    SELECT syncguard.int_bucket(s.bucket, p_width) AS rg, s.row_count, s.hash_sum FROM src s
     WHERE NOT EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = v_reg AND d.bucket = s.bucket)
  )
  SELECT coalesce(jsonb_object_agg(x.rg::text, jsonb_build_array(x.n,
           left(encode(sha256(convert_to(x.rows::text || ':' || x.total::text, 'UTF8')), 'base64'), 11))), '{}')
    INTO v_out
    FROM (SELECT c.rg, count(*) AS n, sum(c.row_count) AS rows, sum(c.hash_sum) AS total FROM clean c GROUP BY c.rg) x;
  RETURN v_out;
END
$$;

REVOKE ALL ON FUNCTION syncguard.verify_overview(), syncguard.verify_level(text, text, bigint, bigint, bigint[]) FROM PUBLIC;

-- As in 0014, and the verify and repair kinds get the two functions.
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
                 'syncguard.repair_request(text, text, bigint, jsonb, text, uuid, text)', 'syncguard.repair_privileges(text, text)']
         ELSE '{}' END
$$;

-- A verify or repair role that already had its grants gets the new functions.
DO $grants$
DECLARE
  v_role name;
BEGIN
  FOR v_role IN
    SELECT DISTINCT r.rolname FROM pg_proc p, aclexplode(p.proacl) a JOIN pg_roles r ON r.oid = a.grantee
     WHERE p.oid = 'syncguard.verify_ranges(bigint)'::regprocedure AND a.privilege_type = 'EXECUTE'
       AND r.rolname <> current_user
  LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION syncguard.verify_overview(), syncguard.verify_level(text, text, bigint, bigint, bigint[]) TO %I', v_role);
  END LOOP;
END
$grants$;

-- As in 0013, and a candidate is claimed only while it still has a mark: another worker may have
-- drained it between this worker's candidate list and its claim.
CREATE OR REPLACE FUNCTION syncguard.drain_batch(p_max_buckets integer, p_schemas name[], p_tables name[]) RETURNS jsonb
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
               AND EXISTS (SELECT 1 FROM syncguard.dirty d WHERE d.reg_id = b.reg_id AND d.bucket = b.bucket)
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
