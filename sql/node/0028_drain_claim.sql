-- syncguard node schema 0028: parallel drains recompute each bucket once.
-- drain_batch (0019) claims candidates with FOR UPDATE SKIP LOCKED where a mark still EXISTS. Under
-- READ COMMITTED that EXISTS is judged on the claiming statement's snapshot. When worker A held a
-- bucket, recomputed it, deleted its marks and committed between worker B's snapshot and B reaching
-- the row, B found it unlocked, locked it and (its snapshot still showing the marks) recomputed the
-- bucket again: wasted work, measured as 62 recomputes for 31 dirty buckets with three workers. The
-- marks are now checked again after the claim, by a new statement that sees A's commit.

-- As in 0019, with the check after the claim.
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
END
$$;
