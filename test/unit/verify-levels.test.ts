import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { type BucketValue, rangeOf } from '../../functions/core/compare.js';
import {
  FANOUT,
  findDifferingBuckets,
  type LevelRange,
  levelToInspect,
  rangeDigest,
  startWidth,
  type TableOverview,
} from '../../functions/core/verify-levels.js';

/** One side as the node holds it: bucket -> value (null: never computed), and its dirty buckets. */
interface Side {
  readonly buckets: Map<bigint, BucketValue | null>;
  readonly dirty: Set<bigint>;
}

/** What syncguard.verify_level returns for a side (clean, computed buckets within the parents). */
function level(side: Side, width: bigint, parents: { width: bigint; ranges: readonly string[] } | null): Map<string, LevelRange> {
  const sums = new Map<string, { n: number; rows: bigint; sum: bigint }>();
  for (const [b, v] of side.buckets) {
    if (v === null || side.dirty.has(b)) continue;
    if (parents !== null && !parents.ranges.includes(rangeOf(b, parents.width).toString())) continue;
    const r = rangeOf(b, width).toString();
    const s = sums.get(r) ?? { n: 0, rows: 0n, sum: 0n };
    sums.set(r, { n: s.n + 1, rows: s.rows + v.rows, sum: s.sum + v.sum });
  }
  return new Map([...sums].map(([r, s]) => [r, { buckets: s.n, digest: rangeDigest({ rows: s.rows, sum: s.sum }) }]));
}

function overview(side: Side): TableOverview {
  const clean = [...side.buckets].filter(([b, v]) => v !== null && !side.dirty.has(b)) as [bigint, BucketValue][];
  const all = [...side.buckets.keys(), ...side.dirty].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0));
  return {
    dirty: new Set([...side.dirty].map(String)),
    uncomputed: new Set([...side.buckets].filter(([, v]) => v === null).map(([b]) => b.toString())),
    totals: {
      buckets: clean.length,
      rows: clean.reduce((a, [, v]) => a + v.rows, 0n),
      sum: clean.reduce((a, [, v]) => a + v.sum, 0n),
    },
    extent: all.length === 0 ? null : { lo: all[0] as bigint, hi: all[all.length - 1] as bigint },
  };
}

const value = fc.record({ rows: fc.bigInt({ min: 0n, max: 1000n }), sum: fc.bigInt({ min: -(2n ** 70n), max: 2n ** 70n }) });

/** A publisher catalogue and a subscriber that differs in some buckets, with dirty and never-computed ones. */
const pair = fc
  .record({
    buckets: fc.uniqueArray(fc.bigInt({ min: -50_000n, max: 2_000_000n }), { minLength: 0, maxLength: 300 }),
    values: fc.array(value, { minLength: 300, maxLength: 300 }),
    changed: fc.array(fc.nat(299), { maxLength: 8 }),
    dirty: fc.array(fc.nat(299), { maxLength: 4 }),
    uncomputed: fc.array(fc.nat(299), { maxLength: 2 }),
    extra: fc.array(fc.bigInt({ min: -60_000n, max: 3_000_000n }), { maxLength: 3 }),
  })
  .map(({ buckets, values, changed, dirty, uncomputed, extra }) => {
    const pub: Side = { buckets: new Map(buckets.map((b, i) => [b, values[i] as BucketValue])), dirty: new Set() };
    const sub: Side = { buckets: new Map(pub.buckets), dirty: new Set() };
    for (const i of changed) {
      const b = buckets[i];
      if (b !== undefined) sub.buckets.set(b, { rows: 1n + (pub.buckets.get(b)?.rows ?? 0n), sum: 7n });
    }
    for (const i of dirty) if (buckets[i] !== undefined) (i % 2 ? pub : sub).dirty.add(buckets[i] as bigint);
    for (const i of uncomputed) if (buckets[i] !== undefined) pub.buckets.set(buckets[i] as bigint, null);
    for (const b of extra) if (!pub.buckets.has(b)) sub.buckets.set(b, { rows: 3n, sum: 11n });
    return { pub, sub };
  });

/** What a full comparison of every bucket would have to look at: differing values, and flagged buckets. */
function expected(pub: Side, sub: Side): string[] {
  const out = new Set<bigint>([...pub.dirty, ...sub.dirty]);
  for (const b of new Set([...pub.buckets.keys(), ...sub.buckets.keys()])) {
    const [a, c] = [pub.buckets.get(b), sub.buckets.get(b)];
    if (a === null || c === null) out.add(b);
    else if ((a?.rows ?? 0n) !== (c?.rows ?? 0n) || (a?.sum ?? 0n) !== (c?.sum ?? 0n)) out.add(b);
  }
  return [...out].sort((x, y) => (x < y ? -1 : x > y ? 1 : 0)).map(String);
}

describe('hierarchical comparison', () => {
  it('finds exactly the buckets a full comparison would, and reads only a few ranges per level', async () => {
    await fc.assert(
      fc.asyncProperty(pair, async ({ pub, sub }) => {
        let reads = 0;
        let maxPerLevel = 0;
        const found = await findDifferingBuckets(overview(pub), overview(sub), async (width, parents) => {
          reads++;
          const r = { publisher: level(pub, width, parents), subscriber: level(sub, width, parents) };
          maxPerLevel = Math.max(maxPerLevel, r.publisher.size, r.subscriber.size);
          return r;
        });
        const want = expected(pub, sub);
        expect(found.buckets).toEqual(want);
        // every level reads at most FANOUT children of each range it descends into
        const parentsAtMost = Math.max(1, want.length);
        expect(maxPerLevel).toBeLessThanOrEqual(Number(FANOUT) * parentsAtMost);
        if (want.length === 0) expect(reads).toBe(0); // equal totals settle the table
      }),
      { numRuns: 300 },
    );
  });

  it('counts every clean bucket of an in-sync table as compared, without reading a level', async () => {
    const side: Side = {
      buckets: new Map([...Array(5000).keys()].map((i) => [BigInt(i), { rows: 3n, sum: BigInt(i) }])),
      dirty: new Set(),
    };
    const r = await findDifferingBuckets(overview(side), overview(side), async () => {
      throw new Error('no level may be read');
    });
    expect(r).toEqual({ buckets: [], equalBuckets: 5000 });
  });

  it('starts at the smallest power of the fanout that splits the extent into at most FANOUT ranges', () => {
    expect(startWidth(0n, FANOUT - 1n)).toBe(1n);
    expect(startWidth(0n, FANOUT)).toBe(FANOUT);
    expect(startWidth(0n, 999_999n)).toBe(FANOUT ** 9n); // 4^9 = 262,144: 4 ranges
    expect(startWidth(-2n, 1n)).toBe(1n);
    fc.assert(
      fc.property(fc.bigInt({ min: -(2n ** 62n), max: 2n ** 62n }), fc.bigInt({ min: 0n, max: 2n ** 62n }), (lo, span) => {
        const w = startWidth(lo, lo + span);
        expect(rangeOf(lo + span, w) - rangeOf(lo, w) + 1n).toBeLessThanOrEqual(FANOUT);
        if (w > 1n) expect(rangeOf(lo + span, w / FANOUT) - rangeOf(lo, w / FANOUT) + 1n).toBeGreaterThan(FANOUT);
      }),
    );
  });

  it('treats a range one side does not list as empty', () => {
    const empty = new Map([['3', { buckets: 2, digest: rangeDigest({ rows: 0n, sum: 0n }) }]]);
    expect(levelToInspect(empty, new Map(), new Set(), 16n)).toEqual({ inspect: [], equalBuckets: 2 });
    expect(levelToInspect(empty, new Map(), new Set(['50']), 16n).inspect).toEqual(['3']);
  });
});
