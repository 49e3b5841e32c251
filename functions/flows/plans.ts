// Plans in the control plane: store, decide (approve or reject, four-eyes optional) and apply
// (docs/repair.md "Approval"). Every check is in core/repair-plan.ts; this module reads and writes.

import { InputError, PlanAlreadyAppliedError, PreconditionFailedError } from '../core/errors.js';
import { checkApplicable, checkApprover, planChecksum } from '../core/repair-plan.js';
import type { Client } from '../db/connect.js';
import { claimPlan, finishPlan, insertPlan, loadPlan, recordDecision, releasePlan } from '../db/plans.js';
import { applyPlan, type Plan, type RepairOutcome, recoverPlan } from './repair.js';

export async function storePlan(control: Client, plan: Plan, createdBy: string): Promise<{ planId: number; divergenceId: number | null }> {
  return insertPlan(control, { ...plan, createdBy });
}

async function planOrFail(control: Client, planId: number) {
  if (!Number.isSafeInteger(planId) || planId < 1) throw new InputError(`a plan id is a positive integer, got ${planId}`);
  const p = await loadPlan(control, planId);
  if (p === null) throw new InputError(`plan ${planId} does not exist in this control plane`);
  return p;
}

export async function decidePlan(
  control: Client,
  d: { planId: number; by: string; decision: 'approved' | 'rejected'; comment?: string; fourEyes: boolean; now?: number },
): Promise<{ planId: number; decision: string; checksum: string }> {
  const p = await planOrFail(control, d.planId);
  checkApprover(p, d.by, d.fourEyes && d.decision === 'approved', d.now ?? Date.now());
  await recordDecision(control, {
    planId: p.planId,
    checksum: p.checksum,
    decision: d.decision,
    by: d.by,
    comment: d.comment ?? null,
    divergenceId: p.divergenceId,
  });
  return { planId: p.planId, decision: d.decision, checksum: p.checksum };
}

/**
 * Applies an approved plan once: checks it (checksum, approval of that checksum, expiry, state),
 * claims it so no other run applies it at the same time, repairs, and records the outcome.
 * Throws PreconditionFailedError when nothing could be applied because every row changed.
 */
export async function applyStoredPlan(
  control: Client,
  pub: Client,
  sub: Client,
  a: { planId: number; by: string; now?: number; timeLimitMs?: number },
): Promise<RepairOutcome & { planId: number }> {
  const p = await planOrFail(control, a.planId);
  if (p.state === 'applying' && p.outcome === null && planChecksum(p) === p.checksum && p.approval?.checksum === p.checksum) {
    // a run that claimed the plan died after it sent the request (item 22): its answer is on the nodes
    const recovered = await recoverPlan(
      pub,
      sub,
      { id: String(p.planId), ...p },
      a.timeLimitMs === undefined ? {} : { timeLimitMs: a.timeLimitMs },
    );
    if (recovered !== null && !recovered.changes.some((c) => c.outcome === 'not_answered')) {
      const bucketEqual = recovered.bucketAfter === 'unknown' ? null : recovered.bucketAfter === 'equal';
      await finishPlan(control, {
        planId: p.planId,
        by: a.by,
        outcome: { ...recovered, recovered: true },
        bucketEqual,
        divergenceId: p.divergenceId,
      });
      return { ...recovered, planId: p.planId };
    }
    if (recovered !== null) {
      throw new PlanAlreadyAppliedError(
        `plan ${p.planId} is being applied: its repair request was sent, but the subscriber has not applied it yet (${recovered.changes.find((c) => c.outcome === 'not_answered')?.error ?? 'no answer'}); run the repair again later to record its outcome`,
      );
    }
  }
  checkApplicable(p, a.now ?? Date.now());
  if (!(await claimPlan(control, p.planId, a.by)))
    throw new PlanAlreadyAppliedError(`plan ${p.planId} is being applied or was applied by another run`);
  let outcome: RepairOutcome;
  try {
    outcome = await applyPlan(pub, sub, { id: String(p.planId), ...p }, a.timeLimitMs === undefined ? {} : { timeLimitMs: a.timeLimitMs });
  } catch (err) {
    // nothing is lost by trying again: the subscriber skips what is already equal
    await releasePlan(control, p.planId);
    throw err;
  }
  const bucketEqual = outcome.bucketAfter === 'unknown' ? null : outcome.bucketAfter === 'equal';
  await finishPlan(control, { planId: p.planId, by: a.by, outcome, bucketEqual, divergenceId: p.divergenceId });
  const applied = (outcome.counts.applied ?? 0) + (outcome.counts.already_equal ?? 0);
  if (applied === 0 && outcome.changes.length > 0) {
    throw new PreconditionFailedError(
      `plan ${p.planId}: no change applied, every row changed since inspection (${JSON.stringify(outcome.counts)}); inspect again`,
    );
  }
  return { ...outcome, planId: p.planId };
}
