// Lambda: the only entry point for approvals, and the only function that completes the
// workflow's task tokens.
//   { "action": "await", "planId": 7, "taskToken": "..." }   the workflow's approval step stores its token
//   { "action": "decide", "planId": 7, "decision": "approved" | "rejected", "approver": "alice", "comment"?: "..." }
// A decision is recorded against the plan's checksum (four-eyes: SYNCGUARD_FOUR_EYES), then the
// stored token is completed: SendTaskSuccess when approved, SendTaskFailure (error
// PlanRejectedError) when rejected. Who may invoke this function is what IAM allows.

import { injectLambdaContext } from '@aws-lambda-powertools/logger/middleware';
import { logMetrics } from '@aws-lambda-powertools/metrics/middleware';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import middy from '@middy/core';
import type { Context } from 'aws-lambda';
import { loadRepairConfig } from './commons/config.js';
import { connectionFor } from './commons/connections.js';
import { logger, metrics } from './commons/observability.js';
import { ERROR_NAMES, InputError } from './core/errors.js';
import { loadPlan, setTaskToken, takeTaskToken } from './db/plans.js';
import { parseEvent } from './events.js';
import { decidePlan } from './flows/plans.js';

let sfn: SFNClient | undefined;
const sfnClient = () => {
  sfn ??= new SFNClient({});
  return sfn;
};

export async function approvalHandler(event: unknown, _context: Context): Promise<{ planId: number; status: string }> {
  const e = parseEvent('approval', event);
  const config = loadRepairConfig();
  const control = await connectionFor('control', config.controlSecretId);
  if (e.action === 'await') {
    if ((await loadPlan(control, e.planId)) === null) throw new InputError(`plan ${e.planId} does not exist in this control plane`);
    if (!(await setTaskToken(control, e.planId, e.taskToken))) throw new InputError(`plan ${e.planId} is no longer waiting for a decision`);
    logger.info('waiting for a decision', { planId: e.planId });
    return { planId: e.planId, status: 'waiting' };
  }
  const d = await decidePlan(control, {
    planId: e.planId,
    by: e.approver,
    decision: e.decision,
    ...(e.comment !== undefined ? { comment: e.comment } : {}),
    fourEyes: config.fourEyes,
  });
  const token = await takeTaskToken(control, e.planId);
  if (token !== null) {
    if (e.decision === 'approved') {
      const output = JSON.stringify({ planId: d.planId, decision: d.decision, checksum: d.checksum });
      await sfnClient().send(new SendTaskSuccessCommand({ taskToken: token, output }));
    } else {
      const cause = `plan ${d.planId} was rejected by ${e.approver}`;
      await sfnClient().send(new SendTaskFailureCommand({ taskToken: token, error: ERROR_NAMES.PlanRejectedError, cause }));
    }
  }
  logger.info('decision recorded', { planId: d.planId, decision: d.decision, approver: e.approver, workflow: token !== null });
  return { planId: d.planId, status: d.decision };
}

export const handler = middy(approvalHandler).use(injectLambdaContext(logger)).use(logMetrics(metrics));
