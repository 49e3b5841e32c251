// Issue 17 item 24: an expired plan that was never approved is reported as expired (approving it
// would be refused as expired too), not as "not approved; run approve".

import { describe, expect, it } from 'vitest';
import { PlanExpiredError } from '../../functions/core/errors.js';
import { checkApplicable, type PlanContent, planChecksum, type StoredPlan } from '../../functions/core/repair-plan.js';

const content: PlanContent = {
  pair: 'p -> s',
  table: 'public.t',
  bucket: '0',
  fingerprint: 'f',
  changes: [],
  expiresAt: '2026-01-01T00:00:00.000Z',
};

describe('repair --plan on an expired plan (item 24)', () => {
  it('says expired before not approved', () => {
    const plan = {
      ...content,
      planId: 7,
      checksum: planChecksum(content),
      createdBy: 'alice',
      state: 'proposed',
      approval: null,
    } as unknown as StoredPlan;
    expect(() => checkApplicable(plan, Date.parse('2026-02-01T00:00:00Z'))).toThrow(PlanExpiredError);
    expect(() => checkApplicable(plan, Date.parse('2026-02-01T00:00:00Z'))).toThrow(/plan 7 expired at .*make a new plan/);
    expect(() => checkApplicable(plan, Date.parse('2025-12-01T00:00:00Z'))).toThrow(/not approved; run syncguard approve --plan 7/);
  });
});
