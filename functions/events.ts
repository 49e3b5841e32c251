// The events each Lambda accepts (docs/events.md has an example of each, which a test parses).
// Unknown keys are refused; a malformed event fails with a zod message naming the field.

import { z } from 'zod';
import { InputError } from './core/errors.js';

export const DrainEventSchema = z.strictObject({ database: z.string().min(1).optional() });

export const VerifyEventSchema = z.strictObject({ pair: z.string().min(1), table: z.string().min(1).optional() });

export const InspectEventSchema = z.union([
  z.strictObject({ divergenceIds: z.array(z.number().int().positive()).min(1).max(50) }),
  z.strictObject({ pair: z.string().min(1), table: z.string().min(1), bucket: z.string().regex(/^-?\d{1,19}$/) }),
]);

export const ApprovalEventSchema = z.discriminatedUnion('action', [
  z.strictObject({ action: z.literal('await'), planId: z.number().int().positive(), taskToken: z.string().min(1).max(2048) }),
  z.strictObject({
    action: z.literal('decide'),
    planId: z.number().int().positive(),
    decision: z.enum(['approved', 'rejected']),
    approver: z.string().min(1).max(200),
    comment: z.string().max(2000).optional(),
  }),
]);

export const RepairEventSchema = z.strictObject({ planId: z.number().int().positive() });

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
