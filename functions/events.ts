// The events each Lambda accepts (docs/events.md has an example of each, which a test parses).
// Unknown keys are refused; a malformed event fails with a zod message naming the field.

import { z } from 'zod';
import { SignedIdentitySchema } from './commons/aws-identity.js';
import { InputError } from './core/errors.js';

export const DrainEventSchema = z.strictObject({ database: z.string().min(1).optional() });

export const VerifyEventSchema = z.strictObject({ pair: z.string().min(1), table: z.string().min(1).optional() });

export const InspectEventSchema = z.union([
  z.strictObject({ divergenceIds: z.array(z.number().int().positive()).min(1).max(50) }),
  z.strictObject({ pair: z.string().min(1), table: z.string().min(1), bucket: z.string().regex(/^-?\d{1,19}$/) }),
]);

// A decision names no approver: it carries the approver's signed STS request (identity), which
// the approval function has STS verify (functions/commons/aws-identity.ts).
export const ApprovalEventSchema = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('await'), planId: z.number().int().positive(), taskToken: z.string().min(1).max(2048) }),
  z.strictObject({ action: z.literal('status'), planId: z.number().int().positive() }),
  z.strictObject({
    action: z.literal('decide'),
    planId: z.number().int().positive(),
    decision: z.enum(['approved', 'rejected']),
    // the checksum of the plan the approver reviewed, which the identity is signed for
    checksum: z.string().regex(/^sha256:[0-9a-f]{64}$/),
    identity: SignedIdentitySchema,
    comment: z.string().max(2000).optional(),
  }),
]);

// claim: the run applying the plan (the workflow passes its execution id), so that a retry of
// the same run continues its claim and any other run is refused.
export const RepairEventSchema = z.strictObject({ planId: z.number().int().positive(), claim: z.string().min(1).max(2048).optional() });

export const EVENT_SCHEMAS = Object.freeze({
  drain: DrainEventSchema,
  verify: VerifyEventSchema,
  inspect: InspectEventSchema,
  approval: ApprovalEventSchema,
  repair: RepairEventSchema,
});

/** Parses an event, or throws the message a console user sees (the field and what is wrong). */
export function parseEvent<K extends keyof typeof EVENT_SCHEMAS>(kind: K, event: unknown): z.infer<(typeof EVENT_SCHEMAS)[K]> {
  const parsed = EVENT_SCHEMAS[kind].safeParse(event ?? {});
  if (!parsed.success) return invalid(kind, parsed.error);
  return parsed.data as z.infer<(typeof EVENT_SCHEMAS)[K]>;
}

function invalid(kind: string, error: z.ZodError): never {
  throw new InputError(`invalid ${kind} event: ${z.prettifyError(error).replaceAll('\n', '; ')}`);
}
