// Issue 17 item 24: an incomplete run in which no table could be compared shows coverage 0 %,
// not 100 % beside tables that each show 0.0 %.

import { describe, expect, it } from 'vitest';
import { overallCoverage, tableReport, uncomparable } from '../../functions/core/report.js';

const none = { publisher: null, subscriber: null };

describe('overallCoverage', () => {
  it('is 0 when tables could not be compared and no bucket is known', () => {
    expect(overallCoverage([uncomparable('public.a', 'no replication barrier', none, 0), uncomparable('public.b', 'x', none, 0)])).toBe(0);
  });
  it('is 100 for compared tables without buckets, and for no table at all', () => {
    expect(overallCoverage([tableReport('public.a', none, [], 0)])).toBe(100);
    expect(overallCoverage([])).toBe(100);
  });
  it('counts compared buckets over all known ones otherwise', () => {
    expect(overallCoverage([tableReport('public.a', none, [], 3), uncomparable('public.b', 'x', none, 1)])).toBe(75);
  });
});
