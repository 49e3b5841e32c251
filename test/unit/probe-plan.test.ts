import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { compareTable, EMPTY } from '../../functions/core/compare.js';
import { DEFAULT_PROBE_BUDGET, lockRetryDelayMs, ProbeRate, planProbes } from '../../functions/core/probe-plan.js';
import { laterLsn, probedTable, probeTargets, splitTimeLimit, twoRoundCandidates } from '../../functions/core/verify-plan.js';

const budget = DEFAULT_PROBE_BUDGET;

describe('planProbes', () => {
  it('puts every bucket in exactly one probe or names it as too big, and keeps each probe within its rows', () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.integer({ min: -100, max: 5000 }), { maxLength: 300 }),
        fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 300, maxLength: 300 }),
        fc.integer({ min: 1, max: 10_000 }),
        (buckets, sizes, perProbe) => {
          const targets = buckets.map((b, i) => ({ bucket: String(b), rows: sizes[i] as number }));
          const plan = planProbes('int', targets, perProbe, budget, 0);
          const planned = plan.batches.flatMap((b) => b.buckets);
          expect([...planned, ...plan.tooBig.map((t) => t.bucket)].sort()).toEqual(targets.map((t) => t.bucket).sort());
          for (const b of plan.batches) {
            expect(b.rows).toBeLessThanOrEqual(perProbe);
            expect(b.buckets.length).toBeLessThanOrEqual(budget.maxBuckets);
          }
          for (const t of plan.tooBig) expect(targets.find((x) => x.bucket === t.bucket)?.rows).toBeGreaterThan(perProbe);
        },
      ),
    );
  });

  it('probes a hash-bucketed table in one probe that reads it whole, or not at all when it is over the budget', () => {
    const targets = [1, 7, 3].map((b) => ({ bucket: String(b), rows: 10 }));
    expect(planProbes('hash', targets, 1000, budget, 500)).toEqual({ batches: [{ buckets: ['1', '3', '7'], rows: 500 }], tooBig: [] });
    const over = planProbes('hash', targets, 1000, budget, 5000);
    expect(over.batches).toEqual([]);
    expect(over.tooBig.map((t) => t.bucket)).toEqual(['1', '3', '7']);
    expect(over.tooBig[0]?.reason).toMatch(/hash-bucketed table reads all its ~5000 rows/);
  });

  it('sizes probes from the measured speed, within the hold budget', () => {
    const rate = new ProbeRate();
    expect(rate.rowsWithin(budget)).toBe(Math.floor(25 * 0.6 * 150)); // before any measurement
    rate.record(10_000, 20); // 500 rows/ms
    expect(rate.rowsWithin(budget)).toBe(Math.floor(25 * 0.6 * 500));
    rate.record(50, 100); // too small to say anything
    expect(rate.rowsWithin(budget)).toBe(Math.floor(25 * 0.6 * 500));
    expect(rate.rowsWithin({ ...budget, maxHoldMs: 10_000 })).toBe(budget.maxRows);
  });

  it('backs off between lock attempts, capped at a second', () => {
    expect([0, 1, 2, 3, 10].map(lockRetryDelayMs)).toEqual([50, 100, 200, 400, 1000]);
  });
});

describe('verify plan', () => {
  const side = (values: Record<string, [number, bigint] | null>, dirty: string[] = []) => ({
    fingerprint: 'f',
    swept: true,
    buckets: new Map(Object.entries(values).map(([k, v]) => [k, v === null ? null : { rows: BigInt(v[0]), sum: v[1] }])),
    dirty: new Set(dirty),
  });

  it('probes every mismatch and every skipped bucket, sized by the larger catalogue', () => {
    const cmp = compareTable(
      side({ '1': [10, 1n], '2': [5, 2n], '3': [7, 3n], '4': null }, ['5']),
      side({ '1': [10, 1n], '2': [6, 9n], '3': [7, 3n] }),
    );
    const rows = (b: string) => ({ publisher: b === '2' ? 5n : null, subscriber: b === '2' ? 6n : null });
    expect(probeTargets(cmp, rows, 42.2).sort((a, b) => a.bucket.localeCompare(b.bucket))).toEqual([
      { bucket: '2', rows: 6 },
      { bucket: '4', rows: 43 },
      { bucket: '5', rows: 43 },
    ]);
  });

  it('counts probed buckets as compared, differing ones as confirmed, and names those left out', () => {
    const cmp = compareTable(side({ '1': [1, 1n], '2': [1, 2n] }, ['3']), side({ '1': [1, 1n], '2': [1, 5n] }));
    const { report, diverged } = probedTable('t', { publisher: 'f', subscriber: 'f' }, 10, cmp, [
      { bucket: '2', state: 'differ', publisher: { rows: 1n, sum: 2n }, subscriber: { rows: 1n, sum: 5n }, lsn: '0/10' },
      { bucket: '3', state: 'left_out', reason: 'busy' },
    ]);
    expect(diverged).toEqual([{ bucket: '2', publisher: { rows: 1n, sum: 2n }, subscriber: { rows: 1n, sum: 5n }, lsn: '0/10' }]);
    expect(report).toMatchObject({
      method: 'probe',
      bucketsCompared: 12,
      bucketsProbed: 1,
      bucketsSkipped: 1,
      leftOut: [{ bucket: '3', reason: 'busy' }],
    });
    expect(report.coveragePct).toBeCloseTo((12 * 100) / 13);
    const equal = probedTable('t', { publisher: 'f', subscriber: 'f' }, 10, cmp, [
      { bucket: '2', state: 'equal', publisher: EMPTY, subscriber: EMPTY, lsn: '0/10' },
      { bucket: '3', state: 'equal', publisher: EMPTY, subscriber: EMPTY, lsn: '0/10' },
    ]);
    expect(equal.report.coveragePct).toBe(100);
    expect(equal.diverged).toEqual([]);
  });

  it('hands clean candidates too big to probe to the two-round confirmation, counted as compared', () => {
    const cmp = compareTable(side({ '1': [1, 1n], '2': [1, 2n] }, ['3']), side({ '1': [1, 1n], '2': [1, 5n] }));
    const outcomes = [
      { bucket: '2', state: 'left_out' as const, reason: 'too big', tooBig: true },
      { bucket: '3', state: 'left_out' as const, reason: 'too big', tooBig: true },
    ];
    const deferred = twoRoundCandidates(cmp, outcomes);
    expect(deferred.map((m) => m.bucket)).toEqual(['2']); // 3 is dirty: two rounds cannot settle it either
    const { report } = probedTable('t', { publisher: 'f', subscriber: 'f' }, 0, cmp, outcomes, deferred);
    expect(report).toMatchObject({ bucketsCompared: 2, bucketsSkipped: 1, leftOut: [{ bucket: '3', reason: 'too big' }] });
  });

  it('compares LSNs as positions, not as text', () => {
    expect(laterLsn('0/9', '0/1A')).toBe('0/1A');
    expect(laterLsn('1/0', '0/FFFFFFFF')).toBe('1/0');
  });

  it('splits a time limit into drains, barriers and a margin that fit inside it', () => {
    fc.assert(
      fc.property(fc.integer({ min: 1000, max: 86_400_000 }), (limit) => {
        const s = splitTimeLimit(limit);
        expect(2 * s.drainMs + s.barrierMs + s.marginMs).toBeLessThanOrEqual(limit);
      }),
    );
  });
});
