// Plans in the control plane: store, decide (approve or reject) and apply (docs/repair.md
// "Approve"). The control plane itself records who acts, computes and checks the checksum and
// enforces four-eyes (sql/control/0005_approvals.sql); this module calls it and repairs.

import { randomUUID } from 'node:crypto';
import { InputError, PlanAlreadyAppliedError, PlanClaimedError, PreconditionFailedError, TimeLimitError } from '../core/errors.js';
import { TIME } from '../core/time-limits.js';
import type { Client } from '../db/connect.js';
import { Deadline } from '../db/deadline.js';
import { type ClaimedPlan, claimPlan, finishPlan, insertPlan, loadPlan, recordDecision, releasePlan, takeOverPlan } from '../db/plans.js';
import { repairRequestsOf } from '../db/repair.js';
import { applyPlan, type ChangeOutcome, type Plan, type RepairOutcome, recoverPlan } from './repair.js';

/**
 * Stores a plan; its creator is the control-plane login, or `awsCreator` (an AWS principal the
 * caller verified, accepted from the roles the control plane trusts to verify one).
 */
export async function storePlan(
  control: Client,
  plan: Plan,
  awsCreator: string | null = null,
): Promise<{ planId: number; divergenceId: number | null; checksum: string; createdBy: string }> {
  return insertPlan(control, plan, awsCreator);
}

async function planOrFail(control: Client, planId: number) {
  if (!Number.isSafeInteger(planId) || planId < 1) throw new InputError(`a plan id is a positive integer, got ${planId}`);
  const p = await loadPlan(control, planId);
  if (p === null) throw new InputError(`plan ${planId} does not exist in this control plane`);
  return p;
}

/**
 * Records a decision as the caller. `fourEyes` can only make the control plane's policy stricter;
 * `awsApprover` is the approver's verified AWS principal (the approval function's path).
 */
export async function decidePlan(
  control: Client,
  d: {
    planId: number;
    decision: 'approved' | 'rejected';
    comment?: string;
    fourEyes: boolean;
    awsApprover?: string;
    /** The checksum the approver reviewed: the control plane refuses the decision unless it is the plan's. */
    checksum?: string;
  },
): Promise<{ planId: number; decision: string; checksum: string; by: string }> {
  if (!Number.isSafeInteger(d.planId) || d.planId < 1) throw new InputError(`a plan id is a positive integer, got ${d.planId}`);
  return recordDecision(control, {
    planId: d.planId,
    decision: d.decision,
    comment: d.comment ?? null,
    fourEyes: d.fourEyes,
    awsApprover: d.awsApprover ?? null,
    checksum: d.checksum ?? null,
  });
}

/**
 * Applies an approved plan once: the control plane checks it (checksum of the stored plan against
 * the approval's, approval, expiry, state) and hands it to this run (`claim`; a retry of the same
 * run continues it), the repair goes through the subscription, and the outcome is recorded.
 * The claim has a lease (`leaseSeconds`, the control plane's default otherwise), renewed before
 * each request is sent. A plan another run claimed is recovered from the nodes when its request
 * reached the publisher; when none did, it is taken over once that run's lease has ended, and
 * refused with PlanClaimedError (who holds it, until when) while the lease holds.
 * Throws PreconditionFailedError when nothing could be applied because every row changed.
 */
export async function applyStoredPlan(
  control: Client,
  pub: Client,
  sub: Client,
  a: { planId: number; claim?: string; deadline?: Deadline; leaseSeconds?: number },
): Promise<RepairOutcome & { planId: number; retried: boolean }> {
  // one deadline for the whole run: a recovery, a take-over and the repair share it
  const deadline = a.deadline ?? Deadline.after(TIME.defaultLimitMs);
  const p = await planOrFail(control, a.planId);
  const claim = a.claim ?? `run:${randomUUID()}`;
  const lease = a.leaseSeconds ?? null;
  let claimed: ClaimedPlan;
  try {
    claimed = await claimPlan(control, p.planId, claim, lease);
  } catch (err) {
    if (!(err instanceof PlanClaimedError) || p.state !== 'applying' || p.outcome !== null || p.claimId === null) throw err;
    // another run claimed it and died after it sent the request (item 22): its answer is on the nodes
    const recovered = await recoverStoredPlan(control, pub, sub, { ...p, claimId: p.claimId }, deadline);
    if (recovered !== null) return recovered;
    // or before any request reached the publisher: taken over once its lease has ended (refused before)
    claimed = await takeOverPlan(control, { planId: p.planId, claim, from: p.claimId, leaseSeconds: lease });
  }
  let outcome: RepairOutcome;
  if (claimed.state === 'applied') {
    // this run recorded the outcome already and lost the answer: report it again
    outcome = claimed.outcome as RepairOutcome;
  } else {
    const plan = {
      id: String(p.planId),
      table: claimed.table,
      bucket: claimed.bucket,
      fingerprint: claimed.fingerprint,
      changes: claimed.body.changes,
      ...(claimed.body.inspection === undefined ? {} : { inspection: claimed.body.inspection }),
    };
    const limit = { deadline };
    // the claim is renewed before each request: a run whose lease ended and was taken over sends nothing
    const renew = async () => {
      if ((await claimPlan(control, p.planId, claim, lease)).state !== 'applying')
        throw new PlanAlreadyAppliedError(`plan ${p.planId} was applied meanwhile; nothing more is sent`);
    };
    // this run's retry of a plan it had claimed: what it sent before is on the nodes; never send twice
    const retry = p.state === 'applying' && p.claimId === claim;
    const recovered = retry ? await recoverPlan(pub, sub, plan, limit) : null;
    if (recovered !== null) {
      outcome = { ...recovered, recovered: true } as RepairOutcome;
    } else {
      try {
        outcome = await applyPlan(pub, sub, plan, { ...limit, beforeSend: renew });
      } catch (err) {
        // released only when no request of the plan reached the publisher: a request sent is
        // answered on the subscriber whatever happened here, and is recovered, not sent again
        const sent = await repairRequestsOf(pub, claimed.table, String(p.planId)).then(
          (ids) => ids.length > 0,
          () => true,
        );
        if (!sent) await releasePlan(control, p.planId, claim).catch(() => {});
        throw err;
      }
    }
    requireAnswered(p.planId, outcome);
    const bucketEqual = outcome.bucketAfter === 'unknown' ? null : outcome.bucketAfter === 'equal';
    await finishPlan(control, { planId: p.planId, claim, outcome, bucketEqual });
  }
  requireSomeApplied(p.planId, outcome);
  return { ...outcome, planId: p.planId, retried: claimed.state === 'applied' || recoveredOutcome(outcome) };
}

const recoveredOutcome = (o: RepairOutcome) => (o as { recovered?: boolean }).recovered === true;

/** A plan with a change the subscriber has not answered is not recorded: it stays applying, to be recovered. */
function requireAnswered(planId: number, outcome: RepairOutcome): void {
  const missing = outcome.changes.filter((c) => c.outcome === 'not_answered');
  if (missing.length === 0) return;
  throw new TimeLimitError(
    `plan ${planId}: the subscriber has not answered ${missing.length} of ${outcome.changes.length} changes in time (${missing[0]?.error ?? 'no answer'}); the plan stays applying and nothing is sent again: run the repair of plan ${planId} again once replication has caught up to record its outcome`,
  );
}

function requireSomeApplied(planId: number, outcome: RepairOutcome): void {
  const applied = (outcome.counts.applied ?? 0) + (outcome.counts.already_equal ?? 0);
  if (applied === 0 && outcome.changes.length > 0) {
    throw new PreconditionFailedError(`plan ${planId}: no change applied: ${whyNoneApplied(outcome)} (${JSON.stringify(outcome.counts)})`);
  }
}

/** The real reason no change of a plan was applied, with what to do next. */
function whyNoneApplied(outcome: RepairOutcome): string {
  const n = (k: ChangeOutcome) => outcome.counts[k] ?? 0;
  const total = outcome.changes.length;
  const changed = n('changed_since_inspection') + n('publisher_changed');
  if (changed === total) return 'every row changed since inspection; inspect again';
  if (n('failed') === total)
    return `every change failed on the subscriber (${outcome.changes[0]?.error ?? 'no error given'}); see the outcome's errors`;
  if (n('refused') === total)
    return `the subscriber refused every change (${outcome.changes[0]?.error ?? 'no reason given'}); see the outcome`;
  if (n('applied_but_differs') === total) return 'every change was written but the row still differs from the publisher; inspect again';
  if (n('not_answered') === total) return 'the subscriber answered no change; run the repair again once replication has caught up';
  return 'the changes were skipped, refused or failed as counted; see the outcome, then inspect again';
}

/**
 * A plan left 'applying' by a run that died after it sent its request: the request and its answers
 * are on the nodes, so the outcome is read there and recorded under that run's claim. Nothing is
 * sent again. While the subscriber has not applied the request yet, this says so and records nothing.
 * Null when no request of the plan is on the publisher (the run died before sending).
 */
async function recoverStoredPlan(
  control: Client,
  pub: Client,
  sub: Client,
  p: NonNullable<Awaited<ReturnType<typeof loadPlan>>> & { claimId: string },
  deadline: Deadline,
): Promise<(RepairOutcome & { planId: number; retried: boolean }) | null> {
  const busy = (why: string) =>
    new PlanAlreadyAppliedError(
      `plan ${p.planId} is being applied by another run (${why}); run the repair again later to record its outcome`,
    );
  if (p.approval?.checksum !== p.checksum) throw busy('its approval does not match the plan as stored');
  const recovered = await recoverPlan(
    pub,
    sub,
    { id: String(p.planId), table: p.table, bucket: p.bucket, changes: p.changes },
    { deadline },
  );
  if (recovered === null) return null;
  const unanswered = recovered.changes.find((c) => c.outcome === 'not_answered');
  if (unanswered !== undefined)
    throw busy(`its request was sent, but the subscriber has not applied it yet: ${unanswered.error ?? 'no answer'}`);
  const bucketEqual = recovered.bucketAfter === 'unknown' ? null : recovered.bucketAfter === 'equal';
  await finishPlan(control, { planId: p.planId, claim: p.claimId, outcome: { ...recovered, recovered: true }, bucketEqual });
  requireSomeApplied(p.planId, recovered);
  return { ...recovered, planId: p.planId, retried: false };
}
