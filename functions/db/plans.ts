// Repair plans and approvals in the control plane (sql/control/0003_repair_plans.sql), and the
// divergence lifecycle they move: inspected -> approved -> repaired -> verified (or open again).

import type { PlannedChange, StoredPlan } from '../core/repair-plan.js';
import { type Client, inTransaction } from './connect.js';

export interface NewPlan {
  readonly pair: string;
  readonly table: string;
  readonly bucket: string;
  readonly fingerprint: string;
  readonly changes: readonly PlannedChange[];
  readonly expiresAt: string;
  readonly subscriberSnapshot?: string;
  readonly checksum: string;
  readonly sql: string;
  readonly rowCount: number;
  readonly createdBy: string;
}

type Row = {
  plan_id: string;
  pair: string;
  table_name: string;
  bucket: string;
  fingerprint: string;
  created_by: string;
  expires_at: string;
  checksum: string;
  body: { changes: PlannedChange[]; sql: string; subscriberSnapshot?: string };
  state: StoredPlan['state'];
  decision: 'approved' | 'rejected' | null;
  decided_by: string | null;
  approved_checksum: string | null;
  divergence_id: string | null;
  outcome: unknown;
};

async function moveDivergence(c: Client, id: string | null, to: string, actor: string, note: string): Promise<void> {
  if (id === null) return;
  await c.query(
    `WITH d AS (SELECT state FROM syncguard_control.divergence WHERE divergence_id = $1 FOR UPDATE),
          u AS (UPDATE syncguard_control.divergence SET state = $2, updated_at = now() WHERE divergence_id = $1 RETURNING divergence_id)
     INSERT INTO syncguard_control.divergence_event (divergence_id, from_state, to_state, actor, note)
     SELECT $1, d.state, $2, $3, $4 FROM d, u`,
    [id, to, actor, note],
  );
}

/** Stores a plan; links it to the bucket's divergence in flight, which becomes 'inspected'. */
export async function insertPlan(c: Client, p: NewPlan): Promise<{ planId: number; divergenceId: number | null }> {
  return inTransaction(c, async () => {
    const { rows: d } = await c.query<{ id: string }>(
      `SELECT divergence_id::text AS id FROM syncguard_control.divergence
        WHERE pair = $1 AND table_name = $2 AND bucket = $3 AND state NOT IN ('verified', 'ignored')`,
      [p.pair, p.table, p.bucket],
    );
    const divergenceId = d[0]?.id ?? null;
    const { rows } = await c.query<{ id: string }>(
      `INSERT INTO syncguard_control.repair_plan (pair, table_name, bucket, fingerprint, divergence_id, created_by, expires_at, row_count, checksum, body)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING plan_id::text AS id`,
      [
        p.pair,
        p.table,
        p.bucket,
        p.fingerprint,
        divergenceId,
        p.createdBy,
        p.expiresAt,
        p.rowCount,
        p.checksum,
        JSON.stringify({
          changes: p.changes,
          sql: p.sql,
          ...(p.subscriberSnapshot === undefined ? {} : { subscriberSnapshot: p.subscriberSnapshot }),
        }),
      ],
    );
    const planId = rows[0]?.id as string;
    await moveDivergence(c, divergenceId, 'inspected', p.createdBy, `plan ${planId}`);
    return { planId: Number(planId), divergenceId: divergenceId === null ? null : Number(divergenceId) };
  });
}

export async function loadPlan(
  c: Client,
  planId: number,
): Promise<(StoredPlan & { sql: string; divergenceId: string | null; outcome: unknown }) | null> {
  const { rows } = await c.query<Row>(
    `SELECT p.plan_id::text, p.pair, p.table_name, p.bucket, p.fingerprint, p.created_by,
            to_char(p.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS expires_at, p.checksum, p.body, p.state,
            a.decision, a.decided_by, a.checksum AS approved_checksum, p.divergence_id::text, p.outcome
       FROM syncguard_control.repair_plan p LEFT JOIN syncguard_control.plan_approval a ON a.plan_id = p.plan_id
      WHERE p.plan_id = $1`,
    [planId],
  );
  const r = rows[0];
  if (r === undefined) return null;
  return {
    planId: Number(r.plan_id),
    pair: r.pair,
    table: r.table_name,
    bucket: r.bucket,
    fingerprint: r.fingerprint,
    changes: r.body.changes,
    expiresAt: r.expires_at,
    ...(typeof r.body.subscriberSnapshot === 'string' ? { subscriberSnapshot: r.body.subscriberSnapshot } : {}),
    checksum: r.checksum,
    createdBy: r.created_by,
    state: r.state,
    approval: r.decision === null ? null : { decision: r.decision, by: r.decided_by as string, checksum: r.approved_checksum as string },
    sql: r.body.sql,
    divergenceId: r.divergence_id,
    outcome: r.outcome,
  };
}

/** Records a decision against the plan's checksum (one per plan: the unique index refuses a second). */
export async function recordDecision(
  c: Client,
  p: {
    planId: number;
    checksum: string;
    decision: 'approved' | 'rejected';
    by: string;
    comment: string | null;
    divergenceId: string | null;
  },
): Promise<void> {
  await inTransaction(c, async () => {
    await c.query(
      'INSERT INTO syncguard_control.plan_approval (plan_id, checksum, decision, decided_by, comment) VALUES ($1, $2, $3, $4, $5)',
      [p.planId, p.checksum, p.decision, p.by, p.comment],
    );
    await c.query("UPDATE syncguard_control.repair_plan SET state = $2 WHERE plan_id = $1 AND state = 'proposed'", [p.planId, p.decision]);
    if (p.decision === 'approved') await moveDivergence(c, p.divergenceId, 'approved', p.by, `plan ${p.planId}`);
  });
}

/** Takes an approved plan for applying; false when another run took it first (or it is no longer approved). */
export async function claimPlan(c: Client, planId: number, by: string): Promise<boolean> {
  const { rowCount } = await c.query(
    "UPDATE syncguard_control.repair_plan SET state = 'applying', applied_by = $2 WHERE plan_id = $1 AND state = 'approved'",
    [planId, by],
  );
  return rowCount === 1;
}

/** Records a repair's outcome; the divergence becomes repaired, then verified (bucket equal) or open again. */
export async function finishPlan(
  c: Client,
  p: { planId: number; by: string; outcome: unknown; bucketEqual: boolean | null; divergenceId: string | null },
): Promise<void> {
  await inTransaction(c, async () => {
    await c.query("UPDATE syncguard_control.repair_plan SET state = 'applied', applied_at = now(), outcome = $2 WHERE plan_id = $1", [
      p.planId,
      JSON.stringify(p.outcome),
    ]);
    await moveDivergence(c, p.divergenceId, 'repaired', p.by, `plan ${p.planId}`);
    if (p.bucketEqual === true) await moveDivergence(c, p.divergenceId, 'verified', p.by, `bucket equal at a probe after plan ${p.planId}`);
    if (p.bucketEqual === false) await moveDivergence(c, p.divergenceId, 'open', p.by, `bucket still differs after plan ${p.planId}`);
  });
}

/** Gives a claimed plan back when applying it failed before anything was sent. */
export async function releasePlan(c: Client, planId: number): Promise<void> {
  await c.query(
    "UPDATE syncguard_control.repair_plan SET state = 'approved', applied_by = NULL WHERE plan_id = $1 AND state = 'applying'",
    [planId],
  );
}

/** Stores the workflow's task token for a plan's decision. */
export async function setTaskToken(c: Client, planId: number, token: string): Promise<boolean> {
  const { rowCount } = await c.query("UPDATE syncguard_control.repair_plan SET task_token = $2 WHERE plan_id = $1 AND state = 'proposed'", [
    planId,
    token,
  ]);
  return rowCount === 1;
}

/** The task token waiting for a plan's decision, taken (cleared) so that it is completed once. */
export async function takeTaskToken(c: Client, planId: number): Promise<string | null> {
  const { rows } = await c.query<{ t: string | null }>(
    `WITH o AS (SELECT task_token AS t FROM syncguard_control.repair_plan WHERE plan_id = $1 FOR UPDATE)
     UPDATE syncguard_control.repair_plan p SET task_token = NULL FROM o WHERE p.plan_id = $1 RETURNING o.t`,
    [planId],
  );
  return rows[0]?.t ?? null;
}

/** The buckets of some divergences: what an investigation inspects. */
export async function divergencesById(
  c: Client,
  ids: readonly number[],
): Promise<{ id: number; pair: string; table: string; bucket: string; state: string }[]> {
  const { rows } = await c.query<{ id: string; pair: string; table_name: string; bucket: string; state: string }>(
    'SELECT divergence_id::text AS id, pair, table_name, bucket, state FROM syncguard_control.divergence WHERE divergence_id = ANY($1) ORDER BY divergence_id',
    [ids],
  );
  return rows.map((r) => ({ id: Number(r.id), pair: r.pair, table: r.table_name, bucket: r.bucket, state: r.state }));
}
