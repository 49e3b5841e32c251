// Lambda: the only entry point for approvals, and the only function that completes the
// workflow's task tokens.
//   { "action": "await", "planId": 7, "taskToken": "..." }   the workflow's approval step stores its token
//   { "action": "status", "planId": 7 }                       whether the token is stored (the workflow notifies only then),
//                                                              the plan's checksum and this deployment (what a decision signs)
//   { "action": "decide", "planId": 7, "decision": "approved" | "rejected", "checksum": "sha256:...", "identity": {...}, "comment"?: "..." }
// The approver is the AWS principal STS verifies the decision's signed identity to be
// (commons/aws-identity.ts), never a name in the event; the identity must be signed for this
// deployment (the control plane's deployment_id), this plan, the checksum and the decision. The
// control plane records the decision only if that checksum is the one it computes from the stored
// plan, and enforces four-eyes (its policy, or
// SYNCGUARD_FOUR_EYES), comparing AWS principals. Then the stored token is completed:
// SendTaskSuccess when approved, SendTaskFailure (error PlanRejectedError) when rejected. A
// decision made before the token was stored completes the token as soon as it is stored.

import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import type { Context } from 'aws-lambda';
import { bindingOf, verifyIdentity } from './commons/aws-identity.js';
import { loadRepairConfig } from './commons/config.js';
import { connectionFor } from './commons/connections.js';
import { lambdaHandler } from './commons/handler.js';
import { logger } from './commons/observability.js';
import { ERROR_NAMES, InputError } from './core/errors.js';
import type { Client } from './db/connect.js';
import { deploymentId, loadPlan, setTaskToken, takeTaskToken, taskTokenStored } from './db/plans.js';
import { parseEvent } from './events.js';
import { decidePlan } from './flows/plans.js';

let sfn: SFNClient | undefined;
const sfnClient = () => {
  sfn ??= new SFNClient({});
  return sfn;
};

/**
 * Completes a decided plan's token with its decision: the one given (the plan was decided before the
 * workflow waited, so the control plane did not store it) or else the stored one, taken once.
 */
async function completeToken(control: Client, planId: number, given?: string): Promise<boolean> {
  const plan = await loadPlan(control, planId);
  if (plan === null || plan.approval === null) return false;
  const token = given ?? (await takeTaskToken(control, planId));
  if (token === null) return false;
  if (plan.approval.decision === 'approved') {
    const output = JSON.stringify({ planId, decision: 'approved', checksum: plan.approval.checksum });
    await sfnClient().send(new SendTaskSuccessCommand({ taskToken: token, output }));
  } else {
    const cause = `plan ${planId} was rejected by ${plan.approval.by}`;
    await sfnClient().send(new SendTaskFailureCommand({ taskToken: token, error: ERROR_NAMES.PlanRejectedError, cause }));
  }
  return true;
}

export async function approvalHandler(
  event: unknown,
  _context: Context,
): Promise<{ planId: number; status: string; approver?: string; waiting?: boolean; checksum?: string; deployment?: string }> {
  const e = parseEvent('approval', event);
  const config = loadRepairConfig();
  const control = await connectionFor('control', config.controlSecretId);
  if (e.action === 'await') {
    const state = await setTaskToken(control, e.planId, e.taskToken);
    if (state === null) throw new InputError(`plan ${e.planId} does not exist in this control plane`);
    // decided before the workflow waited: the control plane stores no token then; complete this one now
    if (state !== 'proposed' && (await completeToken(control, e.planId, e.taskToken))) {
      logger.info('decided before the workflow waited', { planId: e.planId, state });
      return { planId: e.planId, status: state };
    }
    logger.info('waiting for a decision', { planId: e.planId });
    return { planId: e.planId, status: 'waiting' };
  }
  if (e.action === 'status') {
    const s = await taskTokenStored(control, e.planId);
    if (s === null) throw new InputError(`plan ${e.planId} does not exist in this control plane`);
    return {
      planId: e.planId,
      status: s.state,
      waiting: s.stored || s.state !== 'proposed',
      checksum: s.checksum,
      deployment: await deploymentId(control),
    };
  }
  const binding = { deployment: await deploymentId(control), planId: e.planId, checksum: e.checksum, decision: e.decision };
  const approver = await verifyIdentity(e.identity, bindingOf(binding));
  const d = await decidePlan(control, {
    planId: e.planId,
    decision: e.decision,
    checksum: e.checksum,
    ...(e.comment !== undefined ? { comment: e.comment } : {}),
    fourEyes: config.fourEyes,
    awsApprover: approver,
  });
  const completed = await completeToken(control, e.planId);
  logger.info('decision recorded', { planId: d.planId, decision: d.decision, approver: d.by, workflow: completed });
  return { planId: d.planId, status: d.decision, approver: d.by };
}

export const handler = lambdaHandler(approvalHandler);
