import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BucketValue, compareTable, differingRanges, rangeOf, type SideCatalogue, sumValues } from '../../functions/core/compare.js';
import { confirm, decide, secondLook } from '../../functions/core/verdict.js';

const v = (rows: number, sum: bigint): BucketValue => ({ rows: BigInt(rows), sum });
const side = (buckets: Record<string, BucketValue | null>, dirty: string[] = [], swept = true): SideCatalogue => ({
  fingerprint: 'fp',
  swept,
  buckets: new Map(Object.entries(buckets)),
  dirty: new Set(dirty),
});

const value = fc.record({ rows: fc.bigInt({ min: 1n, max: 1000n }), sum: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }) });

describe('compareTable', () => {
  it('finds nothing and full coverage for equal clean catalogues', () => {
    const c = side({ '0': v(3, 10n), '1': v(1, -5n) });
    expect(compareTable(c, c)).toEqual({
      bucketsCompared: 2,
      bucketsSkipped: { dirty: 0, not_swept: 0, never_computed: 0, not_probed: 0 },
      skippedBuckets: new Map(),
      mismatches: [],
      coveragePct: 100,
    });
  });

  it('reports exactly the changed buckets that are clean on both sides', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.integer({ min: -50, max: 500 }).map(String), value, { minKeys: 1, maxKeys: 60 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        fc.array(fc.nat(), { maxLength: 10 }),
        (buckets, changedIdx, dirtyIdx) => {
          const keys = Object.keys(buckets);
          const changed = new Set(changedIdx.map((i) => keys[i % keys.length] as string));
          const dirty = new Set(dirtyIdx.map((i) => keys[i % keys.length] as string));
          const sub = Object.fromEntries(
            keys.map((k) => [
              k,
              changed.has(k) ? { ...(buckets[k] as BucketValue), sum: (buckets[k] as BucketValue).sum + 1n } : buckets[k],
            ]),
          );
          const r = compareTable(side(buckets), side(sub as Record<string, BucketValue>, [...dirty]));
          const expected = [...changed].filter((k) => !dirty.has(k)).sort((a, b) => Number(a) - Number(b));
          expect(r.mismatches.map((m) => m.bucket)).toEqual(expected);
          expect(r.bucketsCompared + r.bucketsSkipped.dirty).toBe(keys.length);
          expect(r.coveragePct).toBeCloseTo(((keys.length - dirty.size) * 100) / keys.length);
        },
      ),
    );
  });

  it('treats a missing bucket as empty only once the side is swept', () => {
    const pub = side({ '0': v(2, 7n), '1': v(1, 1n) });
    expect(compareTable(pub, side({ '0': v(2, 7n) })).mismatches).toEqual([{ bucket: '1', publisher: v(1, 1n), subscriber: v(0, 0n) }]);
    const r = compareTable(pub, side({ '0': v(2, 7n) }, [], false));
    expect(r.mismatches).toEqual([]);
    expect(r.bucketsSkipped.not_swept).toBe(1);
    expect(r.coveragePct).toBe(50);
  });

  it('skips buckets dirty on either side and buckets never computed', () => {
    const r = compareTable(side({ '0': v(1, 1n), '1': null, '2': v(1, 2n) }, ['2']), side({ '0': v(1, 9n), '1': v(1, 1n), '2': v(1, 3n) }));
    expect(r.mismatches.map((m) => m.bucket)).toEqual(['0']);
    expect(r.bucketsSkipped).toEqual({ dirty: 1, not_swept: 0, never_computed: 1, not_probed: 0 });
    expect([...r.skippedBuckets].sort()).toEqual([...r.skippedBuckets].sort()); // named: the probes' targets
    expect(r.skippedBuckets.size).toBe(2);
  });
});

describe('range sums', () => {
  it('a range differs exactly when one of its buckets does (additivity)', () => {
    fc.assert(
      fc.property(fc.array(value, { minLength: 1, maxLength: 200 }), fc.integer({ min: 0, max: 199 }), (values, at) => {
        const i = at % values.length;
        const pub = values.map((x, b) => [BigInt(b), x] as const);
        const sub = pub.map(([b, x]) => [b, b === BigInt(i) ? { ...x, rows: x.rows + 1n } : x] as const);
        const ranges = (rows: ReadonlyArray<readonly [bigint, BucketValue]>) => {
          const m = new Map<string, BucketValue[]>();
          for (const [b, x] of rows) m.set(String(rangeOf(b, 16n)), [...(m.get(String(rangeOf(b, 16n))) ?? []), x]);
          return new Map([...m].map(([k, xs]) => [k, sumValues(xs)]));
        };
        expect(differingRanges(ranges(pub), ranges(sub))).toEqual([String(rangeOf(BigInt(i), 16n))]);
      }),
    );
  });

  it('floors negative bucket ids into ranges', () => {
    expect(rangeOf(-1n, 16n)).toBe(-1n);
    expect(rangeOf(-16n, 16n)).toBe(-1n);
    expect(rangeOf(-17n, 16n)).toBe(-2n);
    expect(rangeOf(15n, 16n)).toBe(0n);
  });
});

describe('verdict', () => {
  const m = { bucket: '4', publisher: v(2, 10n), subscriber: v(2, 11n) };
  const clean = (p: BucketValue, s: BucketValue) => new Map([['4', { publisher: p, subscriber: s, clean: true }]]);

  it('confirms a mismatch only when the second round repeats it with the publisher unchanged', () => {
    expect(confirm([{ table: 't', first: [m], second: clean(v(2, 10n), v(2, 11n)) }]).confirmed).toHaveLength(1);
    const moved = confirm([{ table: 't', first: [m], second: clean(v(3, 12n), v(2, 11n)) }]);
    expect(moved.confirmed).toHaveLength(0);
    expect(moved.candidates[0]?.why).toMatch(/publisher bucket changed/);
    const caughtUp = confirm([{ table: 't', first: [m], second: clean(v(2, 10n), v(2, 10n)) }]);
    expect(caughtUp).toEqual({ confirmed: [], candidates: [] });
    const dirtyAgain = confirm([{ table: 't', first: [m], second: new Map() }]);
    expect(dirtyAgain.candidates[0]?.why).toMatch(/not clean/);
  });

  const base = {
    tableCoverage: [
      { table: 'a', coveragePct: 100 },
      { table: 'b', coveragePct: 99 },
    ],
    minCoveragePct: 95,
    confirmation: { confirmed: [], candidates: [] },
    uncomparableTables: [],
    blocked: [],
  };

  it('is in sync only with full enough coverage in every table, nothing confirmed and nothing pending', () => {
    expect(decide(base)).toEqual({ status: 'in_sync', reasons: [] });
    // one table below the minimum is incomplete, however well the others are covered
    const low = {
      ...base,
      tableCoverage: [...base.tableCoverage, ...Array(50).fill({ table: 'big', coveragePct: 100 }), { table: 'c', coveragePct: 80 }],
    };
    expect(decide(low)).toEqual({ status: 'incomplete', reasons: ['c: coverage 80.00 % is below the minimum 95 %'] });
    expect(decide({ ...base, blocked: ['b: bucket 3 holds a local write and was not compared'] }).status).toBe('incomplete');
    expect(decide({ ...base, uncomparableTables: ['public.t'] }).status).toBe('incomplete');
    expect(decide({ ...base, confirmation: { confirmed: [], candidates: [{ ...m, table: 't', why: 'x' }] } }).status).toBe('incomplete');
  });

  it('never gives a data verdict without a barrier, and reports confirmed divergence', () => {
    const diverged = { ...base, confirmation: { confirmed: [{ ...m, table: 't', how: 'two_rounds' as const }], candidates: [] } };
    expect(decide({ ...diverged, barrierFailure: 'subscription disabled' })).toEqual({
      status: 'incomplete',
      reasons: ['no replication barrier: subscription disabled'],
    });
    expect(decide(diverged).status).toBe('diverged');
    expect(decide({ ...diverged, tableCoverage: [{ table: 't', coveragePct: 10 }] }).status).toBe('diverged'); // a proven difference stands at any coverage
  });
});

describe('secondLook (a candidate in round two)', () => {
  const detail = (
    values: Record<string, [BucketValue, string]>,
    opts: { dirty?: string[]; swept?: boolean; fingerprint?: string } = {},
  ) => ({
    fingerprint: opts.fingerprint ?? 'fp',
    swept: opts.swept ?? true,
    buckets: new Map(Object.entries(values).map(([k, [val]]) => [k, val])),
    dirty: new Set(opts.dirty ?? []),
    generations: new Map(Object.entries(values).map(([k, [, g]]) => [k, g])),
  });
  const gen1 = new Map([['7', '3']]);
  const pub = detail({ '7': [v(2, 10n), '3'] });
  const sub = detail({ '7': [v(2, 11n), '9'] });

  it('is clean when the publisher keeps the generation of round one in both reads', () => {
    expect(secondLook('7', 'fp', gen1, pub, sub, pub)).toEqual({ publisher: v(2, 10n), subscriber: v(2, 11n), clean: true });
  });

  it('is not clean when the publisher bucket was recomputed, even if its value came back (a row toggled A -> B -> A)', () => {
    const toggled = detail({ '7': [v(2, 10n), '5'] }); // same value, two recomputes later
    expect(secondLook('7', 'fp', gen1, toggled, sub, toggled).clean).toBe(false);
    expect(secondLook('7', 'fp', gen1, pub, sub, toggled).clean).toBe(false);
  });

  it('never reads an absent bucket as empty from a catalogue that is not swept, or of another registration', () => {
    const lost = detail({}, { swept: false }); // unlogged state lost between the rounds
    expect(secondLook('7', 'fp', gen1, pub, lost, pub).clean).toBe(false);
    expect(secondLook('7', 'fp', gen1, pub, detail({ '7': [v(2, 11n), '9'] }, { fingerprint: 'other' }), pub).clean).toBe(false);
    expect(secondLook('7', 'fp', gen1, pub, detail({ '7': [v(2, 11n), '9'] }, { dirty: ['7'] }), pub).clean).toBe(false);
  });
});
