// AWS identities for tests of the approval path (functions/commons/aws-identity.ts): decisions
// signed by the real SDK signer with test access keys, and STS as the approval function reaches
// it (fetch), which says who each access key is.

import { plainNode } from '../../dev/plain-node.js';
import { type Binding, bindingOf, signIdentity } from '../../functions/commons/aws-identity.js';

// STS as the approval function reaches it (fetch): who each access key id is. The real STS checks
// the signature; this one checks what the function may not skip (the binding is signed) and
// records every request, so a test sees which were never sent.
export const PRINCIPALS: Record<string, string> = {
  AKIDALICE: 'arn:aws:sts::000000000000:assumed-role/dba/alice',
  AKIDINSPECT: 'arn:aws:sts::000000000000:assumed-role/syncguard-inspect/another-session',
  AKIDMALLORY: 'arn:aws:sts::000000000000:assumed-role/dashboard/mallory',
};
/** Who the tests' control planes let approve through the approval function (approval_policy.aws_approvers). */
export const AWS_APPROVERS = ['arn:aws:sts::000000000000:assumed-role/dba/*', 'arn:aws:sts::000000000000:assumed-role/syncguard-inspect/*'];
export const stsRequests: { url: string; headers: Record<string, string> }[] = [];
export const fakeSts = async (url: string | URL | Request, init?: RequestInit) => {
  const headers = Object.fromEntries(Object.entries((init?.headers ?? {}) as Record<string, string>).map(([k, v]) => [k.toLowerCase(), v]));
  stsRequests.push({ url: String(url), headers });
  const akid = /Credential=([^/]+)\//.exec(headers.authorization ?? '')?.[1] ?? '';
  const signed = /SignedHeaders=([^,]+)/.exec(headers.authorization ?? '')?.[1]?.split(';') ?? [];
  const arn = PRINCIPALS[akid];
  if (arn === undefined || !signed.includes('x-syncguard-approval') || init?.body !== 'Action=GetCallerIdentity&Version=2011-06-15')
    return new Response(
      '<ErrorResponse><Error><Message>The security token included in the request is invalid</Message></Error></ErrorResponse>',
      {
        status: 403,
      },
    );
  return new Response(
    `<GetCallerIdentityResponse><GetCallerIdentityResult><Arn>${arn}</Arn></GetCallerIdentityResult></GetCallerIdentityResponse>`,
  );
};

let controlDsn: string | undefined;

/** The control plane whose plans `decide` signs for (its deployment id and the plan's checksum). */
export function signFor(dsn: string): void {
  controlDsn = dsn;
}

/** What a decision on a plan of the control plane given to signFor is signed for. */
export async function bindingFacts(planId: number): Promise<{ deployment: string; checksum: string }> {
  if (controlDsn === undefined) throw new Error('test setup: call signFor(control DSN) first');
  const c = await plainNode(controlDsn);
  try {
    const { rows } = await c.query<{ deployment: string; checksum: string }>(
      'SELECT syncguard_control.deployment_id() AS deployment, checksum FROM syncguard_control.repair_plan WHERE plan_id = $1',
      [planId],
    );
    if (rows[0] === undefined) throw new Error(`test setup: no plan ${planId}`);
    return rows[0];
  } finally {
    await c.close();
  }
}

/** A decision's identity, signed by the SDK with an access key's credentials (as `approve --function` does). */
export async function signedAs(akid: string, binding: Binding) {
  const saved = { id: process.env.AWS_ACCESS_KEY_ID, secret: process.env.AWS_SECRET_ACCESS_KEY };
  process.env.AWS_ACCESS_KEY_ID = akid;
  process.env.AWS_SECRET_ACCESS_KEY = 'test-secret';
  try {
    return await signIdentity(bindingOf(binding));
  } finally {
    process.env.AWS_ACCESS_KEY_ID = saved.id;
    process.env.AWS_SECRET_ACCESS_KEY = saved.secret;
  }
}

/** A decide event as `approve --function` sends it: signed for this deployment, the plan's checksum and the decision. */
export const decide = async (akid: string, planId: number, decision: 'approved' | 'rejected', extra: Record<string, unknown> = {}) => {
  const facts = await bindingFacts(planId);
  return {
    action: 'decide',
    planId,
    decision,
    checksum: facts.checksum,
    identity: await signedAs(akid, { ...facts, planId, decision }),
    ...extra,
  };
};
