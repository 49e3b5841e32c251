// The order of a keyless table's copy changes (core/repair-plan.ts copyOrder): each change's
// precondition counts the copies, so copies go in counting up and out counting down.

import { describe, expect, it } from 'vitest';
import { planChanges, type RowValues } from '../../functions/core/repair-plan.js';

const A = 'a'.repeat(32);
const B = 'b'.repeat(32);
const none: RowValues = { columns: ['v'], keyColumns: [], identityAlways: [], generated: [], content: '', rows: new Map() };

describe('copyOrder', () => {
  it('inserts copies of one row by ascending copy number (10 after 9, not after 1) and deletes them descending', () => {
    const missing = [2, 10, 9, 3].map((n) => ({
      key: `${A}#${n}`,
      kind: 'missing_on_subscriber' as const,
      publisherHash: '1',
      subscriberHash: null,
    }));
    const extra = [2, 11, 3].map((n) => ({
      key: `${B}#${n}`,
      kind: 'extra_on_subscriber' as const,
      publisherHash: null,
      subscriberHash: '2',
    }));
    const keys = planChanges([...missing, ...extra], none, none).map((c) => `${c.op} ${c.key.slice(31)}`);
    expect(keys).toEqual(['delete b#11', 'delete b#3', 'delete b#2', 'upsert a#2', 'upsert a#3', 'upsert a#9', 'upsert a#10']);
  });

  it('keeps text order for keys of keyed tables', () => {
    const diffs = ['(10)', '(2)', '(1)'].map((key) => ({ key, kind: 'changed' as const, publisherHash: '1', subscriberHash: '2' }));
    expect(planChanges(diffs, none, none).map((c) => c.key)).toEqual(['(1)', '(10)', '(2)']);
  });
});
