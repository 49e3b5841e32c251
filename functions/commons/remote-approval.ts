// Deciding on a plan through a deployment's approval function (the CLI's `approve --function`).
// The approver is who AWS says the caller is: the event carries an STS GetCallerIdentity request
// signed with the caller's credentials and bound to this decision, which the function has STS
// verify (aws-identity.ts). Nothing in the event names the approver.

import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { SyncGuardError } from '../core/errors.js';
import { bindingOf, signIdentity } from './aws-identity.js';

export interface RemoteDecision {
  readonly functionName: string;
  readonly planId: number;
  readonly decision: 'approved' | 'rejected';
  readonly comment?: string;
}

/** Invokes the approval function; returns its answer, or throws its error with the error's name. */
export async function decideRemotely(d: RemoteDecision): Promise<{ approver: string; planId: number; status: string }> {
  const identity = await signIdentity(bindingOf(d));
  const event = {
    action: 'decide',
    planId: d.planId,
    decision: d.decision,
    identity,
    ...(d.comment !== undefined ? { comment: d.comment } : {}),
  };
  const r = await new LambdaClient({}).send(
    new InvokeCommand({ FunctionName: d.functionName, Payload: Buffer.from(JSON.stringify(event)) }),
  );
  const body = r.Payload === undefined ? null : (JSON.parse(Buffer.from(r.Payload).toString('utf8')) as Record<string, unknown> | null);
  if (r.FunctionError !== undefined) {
    const err = new SyncGuardError(String(body?.errorMessage ?? r.FunctionError));
    err.name = String(body?.errorType ?? 'SyncGuardError');
    throw err;
  }
  return { approver: String(body?.approver), planId: Number(body?.planId), status: String(body?.status) };
}
