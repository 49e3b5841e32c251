// Who is calling, verified by AWS (docs/deploy.md "Approving a repair"). A Lambda invoked directly
// is not told who invoked it, so the approver proves it: `syncguard approve --function` signs an
// STS GetCallerIdentity request with the approver's own credentials (SigV4, nothing is sent by
// the CLI) and puts the signed request in the event; the approval function sends it to STS
// itself, and the ARN STS answers with is the approver. The signature covers a header naming the
// deployment (its control plane's deployment_id), the plan, the checksum of the plan the approver
// reviewed and the decision, so a signed request is good for that decision on that plan as
// reviewed, in that deployment only (and for the 15 minutes STS accepts a signature): it cannot be
// replayed against another deployment's plan of the same number, or a plan made again under that
// number. The function sends it only to an STS endpoint, only as a
// GetCallerIdentity call: the event chooses nothing else. (HashiCorp Vault's AWS auth method
// and the EKS IAM authenticator verify callers the same way.)

import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { z } from 'zod';
import { InputError } from '../core/errors.js';

/** The signed header that binds a signed identity to one decision. */
export const BINDING_HEADER = 'x-syncguard-approval';

/** What a signed decision names: the deployment, the plan, the plan's checksum as reviewed, and the decision. */
export interface Binding {
  readonly deployment: string;
  readonly planId: number;
  readonly checksum: string;
  readonly decision: string;
}

export const bindingOf = (d: Binding) => `deployment=${d.deployment};plan=${d.planId};checksum=${d.checksum};decision=${d.decision}`;

export const SignedIdentitySchema = z.strictObject({
  headers: z.record(z.string().min(1).max(100), z.string().max(4096)),
  body: z.string().max(200),
});
export type SignedIdentity = z.infer<typeof SignedIdentitySchema>;

class Captured extends Error {}

/** Signs (does not send) an STS GetCallerIdentity request bound to `binding`, with the caller's credentials. */
export async function signIdentity(binding: string, region?: string): Promise<SignedIdentity> {
  let captured: SignedIdentity | undefined;
  const sts = new STSClient({
    ...(region !== undefined ? { region } : {}),
    requestHandler: {
      handle: async (request: { headers: Record<string, string>; body?: unknown }) => {
        captured = { headers: { ...request.headers }, body: String(request.body ?? '') };
        throw new Captured('signed, not sent');
      },
    } as never,
    maxAttempts: 1,
  });
  sts.middlewareStack.add(
    (next) => async (args) => {
      (args.request as { headers: Record<string, string> }).headers[BINDING_HEADER] = binding;
      return next(args);
    },
    { step: 'build', name: 'syncguardApprovalBinding' },
  );
  // the command's own handler stack (what send runs): serialise, sign, and hand to the handler above
  const command = new GetCallerIdentityCommand({});
  const handler = command.resolveMiddleware(sts.middlewareStack as never, sts.config as never, {});
  try {
    await handler({ input: command.input } as never);
  } catch (err) {
    if (!(err instanceof Captured) && captured === undefined) {
      throw new InputError(
        `could not sign your AWS identity for the approval function: ${(err as Error).message}; configure AWS credentials (AWS_PROFILE, or the AWS_ACCESS_KEY_ID variables) and a region (AWS_REGION)`,
        { cause: err },
      );
    }
  } finally {
    sts.destroy();
  }
  if (captured === undefined) throw new InputError('could not sign an STS request with your AWS credentials');
  return captured;
}

const STS_HOST = /^sts(\.[a-z0-9-]+)?\.amazonaws\.com(\.cn)?$/;

/**
 * The principal ARN STS verifies a signed identity to be, for the decision `binding` names.
 * Refuses, before sending anything, an identity for another decision or another endpoint.
 */
export async function verifyIdentity(identity: SignedIdentity, binding: string, send: typeof fetch = fetch): Promise<string> {
  const h = Object.fromEntries(Object.entries(identity.headers).map(([k, v]) => [k.toLowerCase(), v]));
  const host = h.host ?? '';
  const refuse = (why: string): never => {
    throw new InputError(`the approver's AWS identity is not verified: ${why}; decide with syncguard approve --function, which signs it`);
  };
  if (!STS_HOST.test(host)) refuse(`it is signed for ${JSON.stringify(host)}, not an STS endpoint`);
  if (h[BINDING_HEADER] !== binding) refuse(`it was signed for another decision (${h[BINDING_HEADER] ?? 'none'}, this is ${binding})`);
  const signed = /SignedHeaders=([^,\s]+)/.exec(h.authorization ?? '')?.[1]?.split(';') ?? [];
  if (!signed.includes(BINDING_HEADER) || !signed.includes('host')) refuse('its signature does not cover the decision');
  const params = new URLSearchParams(identity.body);
  if (params.get('Action') !== 'GetCallerIdentity' || [...params.keys()].some((k) => k !== 'Action' && k !== 'Version')) {
    refuse('it is not a GetCallerIdentity request');
  }
  const headers = Object.fromEntries(
    Object.entries(identity.headers).filter(([k]) => !['host', 'content-length'].includes(k.toLowerCase())),
  );
  let text: string;
  let status: number;
  try {
    const r = await send(`https://${host}/`, { method: 'POST', headers, body: identity.body });
    status = r.status;
    text = await r.text();
  } catch (err) {
    return refuse(`STS could not be reached (${(err as Error).message})`);
  }
  const arn = /<Arn>([^<]+)<\/Arn>/.exec(text)?.[1];
  if (status !== 200 || arn === undefined) {
    return refuse(`STS refused it (HTTP ${status}: ${/<Message>([^<]*)<\/Message>/.exec(text)?.[1] ?? 'no message'})`);
  }
  return arn;
}

let own: Promise<string> | undefined;

/** This function's own principal, from STS (what a plan the workflow makes is recorded as made by). */
export function ownPrincipal(): Promise<string> {
  own ??= new STSClient({})
    .send(new GetCallerIdentityCommand({}))
    .then((r) => {
      if (r.Arn === undefined) throw new InputError('STS returned no ARN for this function');
      return r.Arn;
    })
    .catch((err: unknown) => {
      own = undefined;
      throw err;
    });
  return own;
}

/** Forgets the cached principal (tests). */
export function clearOwnPrincipal(): void {
  own = undefined;
}
