// Hierarchical comparison of two catalogues (pure). Bucket values are additive, so a table whose
// totals agree (and has no dirty or never-computed bucket) is in sync without reading further.
// Otherwise the verifier starts at a width that splits the table's bucket extent into at most
// FANOUT ranges and, level by level, reads only the children of the ranges that differ or hold a
// flagged bucket, FANOUT times narrower, down to single buckets. What it reads grows with the
// number of differences times FANOUT times the depth, not with the catalogue.
// The node sends each range as [buckets, digest]; syncguard.verify_level (node migration 0019)
// computes the digest as rangeDigest does.

import { createHash } from 'node:crypto';
import { type BucketValue, rangeOf, sameValue } from './compare.js';

export interface RangeSum extends BucketValue {
  readonly buckets: number;
}

/** A range as verify_level sends it: how many clean buckets it holds, and the digest of its value. */
export interface LevelRange {
  readonly buckets: number;
  readonly digest: string;
}

export const FANOUT = 4n;

/** The first 11 base64 characters (66 bits) of sha256('<rows>:<sum>'). */
export function rangeDigest(v: BucketValue): string {
  return createHash('sha256').update(`${v.rows}:${v.sum}`).digest('base64').slice(0, 11);
}

/** A range one side does not list holds no clean bucket with rows: its value is empty. */
const EMPTY_DIGEST = rangeDigest({ rows: 0n, sum: 0n });

/** Whether a table is settled by its totals: equal, and no bucket flagged on either side. */
function settledByTotals(p: RangeSum, s: RangeSum, flagged: ReadonlySet<string>): boolean {
  return flagged.size === 0 && sameValue(p, s);
}

/** The smallest power of FANOUT that splits [lo, hi] into at most FANOUT ranges. */
export function startWidth(lo: bigint, hi: bigint): bigint {
  if (hi < lo) throw new RangeError(`empty extent [${lo}, ${hi}]`);
  let w = 1n;
  while (rangeOf(hi, w) - rangeOf(lo, w) + 1n > FANOUT) w *= FANOUT;
  return w;
}

/**
 * The ranges of one level to read further: those whose digests differ, and those that hold a
 * flagged (dirty or never-computed) bucket; and how many buckets the others hold (equal on both
 * sides, so compared).
 */
export function levelToInspect(
  p: ReadonlyMap<string, LevelRange>,
  s: ReadonlyMap<string, LevelRange>,
  flagged: ReadonlySet<string>,
  width: bigint,
): { inspect: string[]; equalBuckets: number } {
  const flaggedRanges = new Set([...flagged].map((b) => rangeOf(BigInt(b), width).toString()));
  const inspect: string[] = [];
  let equalBuckets = 0;
  for (const r of new Set([...p.keys(), ...s.keys(), ...flaggedRanges])) {
    const a = p.get(r);
    const b = s.get(r);
    if (flaggedRanges.has(r) || (a?.digest ?? EMPTY_DIGEST) !== (b?.digest ?? EMPTY_DIGEST)) inspect.push(r);
    else equalBuckets += Math.max(a?.buckets ?? 0, b?.buckets ?? 0);
  }
  return { inspect: inspect.sort((x, y) => (BigInt(x) < BigInt(y) ? -1 : BigInt(x) > BigInt(y) ? 1 : 0)), equalBuckets };
}

/** The mean rows per bucket of a table, from its totals (1 when it is empty). */
export function meanRowsPerBucket(t: RangeSum): number {
  return t.buckets === 0 ? 1 : Math.max(1, Number(t.rows) / t.buckets);
}

/** A side's overview of a table, as far as the descent needs it. */
export interface TableOverview {
  readonly dirty: ReadonlySet<string>;
  readonly uncomputed: ReadonlySet<string>;
  readonly totals: RangeSum;
  readonly extent: { readonly lo: bigint; readonly hi: bigint } | null;
}

export type LevelReader = (
  width: bigint,
  parents: { readonly width: bigint; readonly ranges: readonly string[] } | null,
) => Promise<{ publisher: ReadonlyMap<string, LevelRange>; subscriber: ReadonlyMap<string, LevelRange> }>;

/**
 * The buckets whose detail must be read: those that differ, or are dirty or never computed on
 * either side, found by descending from the totals through the levels where they differ; and how
 * many buckets were found equal on the way. `read` reads one level from both sides.
 */
export async function findDifferingBuckets(
  p: TableOverview,
  s: TableOverview,
  read: LevelReader,
): Promise<{ buckets: string[]; equalBuckets: number }> {
  const flagged = new Set([...p.dirty, ...p.uncomputed, ...s.dirty, ...s.uncomputed]);
  if (settledByTotals(p.totals, s.totals, flagged)) return { buckets: [], equalBuckets: Math.max(p.totals.buckets, s.totals.buckets) };
  const ends = [p.extent, s.extent].filter((e) => e !== null);
  if (ends.length === 0) return { buckets: [...flagged], equalBuckets: 0 };
  const order = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
  let width = startWidth(ends.map((e) => e.lo).sort(order)[0] as bigint, ends.map((e) => e.hi).sort(order)[ends.length - 1] as bigint);
  let parents: { width: bigint; ranges: string[] } | null = null;
  let equalBuckets = 0;
  for (;;) {
    const sides = await read(width, parents);
    const level = levelToInspect(sides.publisher, sides.subscriber, flagged, width);
    equalBuckets += level.equalBuckets;
    if (width === 1n || level.inspect.length === 0) return { buckets: width === 1n ? level.inspect : [], equalBuckets };
    parents = { width, ranges: level.inspect };
    width /= FANOUT;
  }
}
