// Repair plans and approvals in the control plane (sql/control/0003_repair_plans.sql, and 0005:
// every write goes through a SECURITY DEFINER function that records who acts and checks the
// plan), and the divergence lifecycle they move: inspected -> approved -> repaired -> verified.

import {
  FourEyesError,
  InputError,
  PlanAlreadyAppliedError,
  PlanClaimedError,
  PlanExpiredError,
  PlanNotApprovedError,
  PlanRejectedError,
  PlanTamperedError,
} from '../core/errors.js';
import { type TableRef, tableFromText } from '../core/identifiers.js';
import type { PlannedChange, StoredPlan } from '../core/repair-plan.js';
import type { Client } from './connect.js';

export interface NewPlan {
  readonly pair: string;
  readonly table: TableRef;
  readonly bucket: string;
  readonly fingerprint: string;
  readonly changes: readonly PlannedChange[];
  readonly expiresAt: string;
  /** The inspection probe's id (flows/repair.ts): covered by the checksum with the rest of the body. */
  readonly inspection?: string;
  readonly sql: string;
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
  body: { changes: PlannedChange[]; sql: string; inspection?: string };
  state: StoredPlan['state'];
  decision: 'approved' | 'rejected' | null;
  decided_by: string | null;
  approved_checksum: string | null;
  divergence_id: string | null;
  outcome: unknown;
  claim_id: string | null;
  claimed_by: string | null;
  lease_until: string | null;
  lease_ended: boolean;
};

/**
 * The named error a control-plane function raised (SQLSTATE SGE01..SGE07, sql/control/0005; SGE08, 0006), or
 * the error as it was.
 */
const CONTROL_ERRORS: Readonly<Record<string, new (m: string, o?: ErrorOptions) => Error>> = {
  SGE01: InputError,
  SGE02: PlanTamperedError,
  SGE03: PlanAlreadyAppliedError,
  SGE04: PlanRejectedError,
  SGE05: PlanNotApprovedError,
  SGE06: PlanExpiredError,
  SGE07: FourEyesError,
  SGE08: PlanClaimedError,
};

async function call<R>(c: Client, sql: string, params: unknown[]): Promise<R> {
  try {
    const { rows } = await c.query<{ r: R }>(sql, params);
    return rows[0]?.r as R;
  } catch (err) {
    const named = CONTROL_ERRORS[(err as { code?: string }).code ?? ''];
    if (named !== undefined) throw new named((err as Error).message, { cause: err });
    throw err;
  }
}

/**
 * Stores a plan through the control plane, which records who made it (the login, or the AWS
 * principal the caller verified), refuses a preview that does not show the changes, computes the
 * checksum, and links the plan to the bucket's divergence in flight (now 'inspected').
 */
export async function insertPlan(
  c: Client,
  p: NewPlan,
  awsCreator: string | null = null,
): Promise<{ planId: number; divergenceId: number | null; checksum: string; createdBy: string }> {
  const r = await call<{ planId: string; divergenceId: string | null; checksum: string; createdBy: string }>(
    c,
    'SELECT syncguard_control.create_plan($1, $2) AS r',
    [
      JSON.stringify({
        pair: p.pair,
        table: p.table.text,
        bucket: p.bucket,
        fingerprint: p.fingerprint,
        expiresAt: p.expiresAt,
        body: {
          changes: p.changes,
          sql: p.sql,
          ...(p.inspection === undefined ? {} : { inspection: p.inspection }),
        },
      }),
      awsCreator,
    ],
  );
  return {
    planId: Number(r.planId),
    divergenceId: r.divergenceId === null ? null : Number(r.divergenceId),
    checksum: r.checksum,
    createdBy: r.createdBy,
  };
}

export async function loadPlan(
  c: Client,
  planId: number,
): Promise<
  | (StoredPlan & {
      sql: string;
      divergenceId: string | null;
      outcome: unknown;
      claimId: string | null;
      claim: { by: string | null; leaseUntil: string | null; leaseEnded: boolean } | null;
    })
  | null
> {
  const { rows } = await c.query<Row>(
    `SELECT p.plan_id::text, p.pair, p.table_name, p.bucket, p.fingerprint, p.created_by,
            to_char(p.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS expires_at, p.checksum, p.body, p.state,
            a.decision, a.decided_by, a.checksum AS approved_checksum, p.divergence_id::text, p.outcome, p.claim_id,
            p.claimed_by, to_char(p.lease_until AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') AS lease_until,
            coalesce(p.lease_until <= now(), true) AS lease_ended
       FROM syncguard_control.repair_plan p LEFT JOIN syncguard_control.plan_approval a ON a.plan_id = p.plan_id
      WHERE p.plan_id = $1`,
    [planId],
  );
  const r = rows[0];
  if (r === undefined) return null;
  return {
    planId: Number(r.plan_id),
    pair: r.pair,
    // the control plane's row names the table as reports do: it is read once, here
    table: tableFromText(r.table_name),
    bucket: r.bucket,
    fingerprint: r.fingerprint,
    changes: r.body.changes,
    ...(typeof r.body.inspection === 'string' ? { inspection: r.body.inspection } : {}),
    expiresAt: r.expires_at,
    checksum: r.checksum,
    createdBy: r.created_by,
    state: r.state,
    approval: r.decision === null ? null : { decision: r.decision, by: r.decided_by as string, checksum: r.approved_checksum as string },
    sql: r.body.sql,
    divergenceId: r.divergence_id,
    outcome: r.outcome,
    claimId: r.claim_id,
    claim: r.claim_id === null ? null : { by: r.claimed_by, leaseUntil: r.lease_until, leaseEnded: r.lease_ended },
  };
}

/**
 * Records a decision as the caller (the login, or the AWS principal it verified) against the
 * checksum of the plan as stored; four-eyes is on when the control plane's policy or the caller
 * asks for it. One decision per plan.
 */
export async function recordDecision(
  c: Client,
  p: {
    planId: number;
    decision: 'approved' | 'rejected';
    comment: string | null;
    fourEyes: boolean;
    awsApprover: string | null;
    /** The checksum the approver reviewed (and signed, through the approval function): refused unless it is the plan's. */
    checksum?: string | null;
  },
): Promise<{ planId: number; decision: string; checksum: string; by: string }> {
  const r = await call<{ planId: string; decision: string; checksum: string; by: string }>(
    c,
    'SELECT syncguard_control.decide_plan($1, $2, $3, $4, $5, $6) AS r',
    [p.planId, p.decision, p.comment, p.fourEyes, p.awsApprover, p.checksum ?? null],
  );
  return { planId: Number(r.planId), decision: r.decision, checksum: r.checksum, by: r.by };
}

export interface ClaimedPlan {
  /** 'applying': apply it; 'applied': this run recorded its outcome already (a retry). */
  readonly state: 'applying' | 'applied';
  readonly table: TableRef;
  readonly bucket: string;
  readonly fingerprint: string;
  readonly body: { changes: PlannedChange[]; sql: string; inspection?: string };
  readonly outcome: unknown;
  /** Who holds the claim (the login the control plane recorded) and until when its lease runs. */
  readonly claimedBy: string | null;
  readonly leaseUntil: string | null;
}

/**
 * Takes an approved plan for one run, with a lease (seconds; the control plane's default is ten
 * minutes), after the control plane checked it (its checksum against the approval's, the
 * approval, expiry, state). The same run, as the same login, may take it again (a retry, or the
 * renewal of its lease before each request it sends); another run is refused with
 * PlanClaimedError, naming who holds the claim and until when (sql/control/0006).
 */
export async function claimPlan(c: Client, planId: number, claim: string, leaseSeconds: number | null = null): Promise<ClaimedPlan> {
  return claimed(await call<RawClaimed>(c, 'SELECT syncguard_control.claim_plan($1, $2, $3) AS r', [planId, claim, leaseSeconds]));
}

/** A claim as the control plane returns it: the table named as reports name it. */
type RawClaimed = Omit<ClaimedPlan, 'table'> & { readonly table: string };
const claimed = (r: RawClaimed): ClaimedPlan => ({ ...r, table: tableFromText(r.table) });

/**
 * Takes a plan over from run `from`, whose lease has ended without an outcome. The caller has
 * checked that the publisher holds no repair request of the plan.
 */
export async function takeOverPlan(
  c: Client,
  p: { planId: number; claim: string; from: string; leaseSeconds: number | null },
): Promise<ClaimedPlan> {
  return claimed(
    await call<RawClaimed>(c, 'SELECT syncguard_control.take_over_plan($1, $2, $3, $4) AS r', [p.planId, p.claim, p.from, p.leaseSeconds]),
  );
}

/** This control plane's identity, which a decision signed for the approval function names. */
export async function deploymentId(c: Client): Promise<string> {
  return call<string>(c, 'SELECT syncguard_control.deployment_id() AS r', []);
}

/** Records a repair's outcome for the run that claimed the plan; false when it was recorded already. */
export async function finishPlan(
  c: Client,
  p: { planId: number; claim: string; outcome: unknown; bucketEqual: boolean | null },
): Promise<boolean> {
  return call<boolean>(c, 'SELECT syncguard_control.finish_plan($1, $2, $3, $4) AS r', [
    p.planId,
    p.claim,
    JSON.stringify(p.outcome),
    p.bucketEqual,
  ]);
}

/** Gives a claimed plan back when applying it failed before anything was sent. */
export async function releasePlan(c: Client, planId: number, claim: string): Promise<void> {
  await call<boolean>(c, 'SELECT syncguard_control.release_plan($1, $2) AS r', [planId, claim]);
}

/** Stores the workflow's task token for a plan's decision; the plan's state, or null when there is no such plan. */
export async function setTaskToken(c: Client, planId: number, token: string): Promise<StoredPlan['state'] | null> {
  return (await call<StoredPlan['state'] | null>(c, 'SELECT syncguard_control.set_task_token($1, $2) AS r', [planId, token])) ?? null;
}

/** The task token waiting for a plan's decision, taken (cleared) so that it is completed once. */
export async function takeTaskToken(c: Client, planId: number): Promise<string | null> {
  return (await call<string | null>(c, 'SELECT syncguard_control.take_task_token($1) AS r', [planId])) ?? null;
}

/** Whether a plan's task token is stored (the workflow notifies approvers only then), with the plan's state and checksum. */
export async function taskTokenStored(c: Client, planId: number): Promise<{ stored: boolean; state: string; checksum: string } | null> {
  const { rows } = await c.query<{ stored: boolean; state: string; checksum: string }>(
    'SELECT task_token IS NOT NULL AS stored, state, checksum FROM syncguard_control.repair_plan WHERE plan_id = $1',
    [planId],
  );
  return rows[0] ?? null;
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
