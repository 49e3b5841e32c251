// Deciding on a plan through a deployment's approval function (the CLI's `approve --function`).
// The approver is who AWS says the caller is: the event carries an STS GetCallerIdentity request
// signed with the caller's credentials and bound to this decision, which the function has STS
// verify (aws-identity.ts). Nothing in the event names the approver. What is signed names the
// deployment and the plan's checksum as well as the plan and the decision: the CLI asks the
// function for both first ({"action": "status"}), and refuses before signing anything when the
// plan is not the one the approver reviewed (--checksum).

import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { PlanTamperedError, SyncGuardError } from '../core/errors.js';
import { bindingOf, signIdentity } from './aws-identity.js';

export interface RemoteDecision {
  readonly functionName: string;
  readonly planId: number;
  readonly decision: 'approved' | 'rejected';
  readonly comment?: string;
  /** The checksum of the plan as the approver reviewed it (the notification and syncguard plan show it). */
  readonly checksum?: string;
}

async function invoke(lambda: LambdaClient, functionName: string, event: unknown): Promise<Record<string, unknown> | null> {
  const r = await lambda.send(new InvokeCommand({ FunctionName: functionName, Payload: Buffer.from(JSON.stringify(event)) }));
  const body = r.Payload === undefined ? null : (JSON.parse(Buffer.from(r.Payload).toString('utf8')) as Record<string, unknown> | null);
  if (r.FunctionError !== undefined) {
    const err = new SyncGuardError(String(body?.errorMessage ?? r.FunctionError));
    err.name = String(body?.errorType ?? 'SyncGuardError');
    throw err;
  }
  return body;
}

/** Invokes the approval function; returns its answer, or throws its error with the error's name. */
export async function decideRemotely(d: RemoteDecision): Promise<{ approver: string; planId: number; status: string; checksum: string }> {
  const lambda = new LambdaClient({});
  const status = await invoke(lambda, d.functionName, { action: 'status', planId: d.planId });
  const checksum = String(status?.checksum ?? '');
  const deployment = String(status?.deployment ?? '');
  if (checksum === '' || deployment === '')
    throw new SyncGuardError(
      `the approval function ${d.functionName} did not say which plan ${d.planId} is (no checksum or deployment in its status); deploy this version of syncguard, then approve again`,
    );
  if (d.checksum !== undefined && d.checksum !== checksum)
    throw new PlanTamperedError(
      `plan ${d.planId} in this deployment is ${checksum}, not the ${d.checksum} you reviewed; nothing was signed: review plan ${d.planId} again`,
    );
  const identity = await signIdentity(bindingOf({ deployment, planId: d.planId, checksum, decision: d.decision }));
  const event = {
    action: 'decide',
    planId: d.planId,
    decision: d.decision,
    checksum,
    identity,
    ...(d.comment !== undefined ? { comment: d.comment } : {}),
  };
  const body = await invoke(lambda, d.functionName, event);
  return { approver: String(body?.approver), planId: Number(body?.planId), status: String(body?.status), checksum };
}
