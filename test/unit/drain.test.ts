import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BatchSizer } from '../../functions/core/batch-sizer.js';
import { batchBudgetMs, type DrainSummary, defaultMarginMs, mergeDrains } from '../../functions/core/drain.js';

const opts = { targetMs: 500, initial: 16, min: 1, max: 5000, smoothing: 0.5 };

describe('BatchSizer', () => {
  it('starts at the initial size, grows at most 2x per batch towards the target', () => {
    const s = new BatchSizer(opts);
    expect(s.next()).toBe(16);
    s.record(16, 16); // 1 ms per bucket: 500 would fit, but growth is capped
    expect(s.next()).toBe(32);
    s.record(32, 32);
    expect(s.next()).toBe(64);
  });

  it('shrinks at once after a slow batch (one huge bucket)', () => {
    const s = new BatchSizer(opts);
    s.record(16, 16);
    s.next();
    s.record(1, 4000); // msPerBucket ~ 2000.5
    expect(s.next()).toBe(1);
  });

  it('never leaves [min, max] and never plans past the budget', () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.integer({ min: 0, max: 10_000 }), fc.integer({ min: 0, max: 60_000 })), { maxLength: 30 }),
        fc.integer({ min: 0, max: 10_000 }),
        (batches, budget) => {
          const s = new BatchSizer(opts);
          for (const [b, ms] of batches) s.record(b, ms);
          const n = s.next();
          expect(n >= 1 && n <= 5000).toBe(true);
          const w = s.nextWithin(budget);
          if (budget <= 0) expect(w).toBe(0);
          expect(w <= 5000).toBe(true);
        },
      ),
    );
  });

  it('fits the batch into the remaining budget', () => {
    const s = new BatchSizer(opts);
    s.record(10, 100); // 10 ms per bucket
    expect(s.nextWithin(35)).toBe(3);
    expect(s.nextWithin(5)).toBe(0);
  });
});

describe('time box', () => {
  it('keeps 10 % as margin, between 50 ms and 2 s', () => {
    expect(defaultMarginMs(1000)).toBe(100);
    expect(defaultMarginMs(100)).toBe(50);
    expect(defaultMarginMs(900_000)).toBe(2000);
  });

  it('leaves no budget inside the margin', () => {
    expect(batchBudgetMs({ deadlineMs: 1000, marginMs: 100 }, 850)).toBe(50);
    expect(batchBudgetMs({ deadlineMs: 1000, marginMs: 100 }, 950)).toBe(0);
  });
});

describe('mergeDrains', () => {
  const run = (over: Partial<DrainSummary>): DrainSummary => ({
    bucketsRecomputed: 1,
    rowsHashed: 10,
    sweepProgress: 1,
    remainingDirty: 0,
    oldestDirtyAgeMs: null,
    stoppedBecause: 'empty',
    stateLost: false,
    fullResweepStarted: false,
    faultyTables: [],
    durationMs: 5,
    ...over,
  });

  it('sums the work, and takes the node state and stop reason of the worker that finished last', () => {
    const m = mergeDrains(
      [
        run({ bucketsRecomputed: 3, remainingDirty: 7, stoppedBecause: 'time', fullResweepStarted: true }),
        run({ rowsHashed: 5, remainingDirty: 0 }),
      ],
      1,
      42,
    );
    expect(m).toMatchObject({
      bucketsRecomputed: 4,
      rowsHashed: 15,
      remainingDirty: 0,
      stoppedBecause: 'empty',
      fullResweepStarted: true,
      durationMs: 42,
    });
  });

  it('is an error when any worker stopped on one, with its message', () => {
    const m = mergeDrains([run({}), run({ stoppedBecause: 'error', error: 'boom' }), run({})], 2, 9);
    expect(m).toMatchObject({ stoppedBecause: 'error', error: 'boom' });
  });
});
