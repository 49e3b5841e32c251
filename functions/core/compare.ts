// Comparing one table's catalogues (pure). Bucket values are additive, so a verifier can first
// compare sums over ranges of buckets and read bucket detail only where a range differs; this
// module holds both steps. A bucket is compared only when it is clean on both sides: dirty
// (a mark waiting for the drain), never computed, or not yet reached by the first sweep are
// reasons to skip it, and skipped buckets lower the coverage instead of passing as equal.

export interface BucketValue {
  readonly rows: bigint;
  readonly sum: bigint;
}

export const EMPTY: BucketValue = Object.freeze({ rows: 0n, sum: 0n });

export const sameValue = (a: BucketValue, b: BucketValue): boolean => a.rows === b.rows && a.sum === b.sum;

/** One side's catalogue of one table, as read in one snapshot. */
export interface SideCatalogue {
  readonly fingerprint: string;
  /** The first sweep finished: a bucket missing from `buckets` is empty, not unknown. */
  readonly swept: boolean;
  /** Computed buckets; null = claimed but never computed. */
  readonly buckets: ReadonlyMap<string, BucketValue | null>;
  /** Buckets with a dirty mark (their stored value may be stale). */
  readonly dirty: ReadonlySet<string>;
}

/** A side's bucket detail, with each clean bucket's generation (raised by every recompute). */
export interface DetailCatalogue extends SideCatalogue {
  readonly generations: ReadonlyMap<string, string>;
}

/** Why a bucket was not compared; 'not_probed': a probe could not resolve it (the report names why). */
export type SkipReason = 'dirty' | 'not_swept' | 'never_computed' | 'not_probed';

export interface Mismatch {
  readonly bucket: string;
  readonly publisher: BucketValue;
  readonly subscriber: BucketValue;
}

export interface TableComparison {
  readonly bucketsCompared: number;
  readonly bucketsSkipped: Readonly<Record<SkipReason, number>>;
  /** The skipped buckets and why. */
  readonly skippedBuckets: ReadonlyMap<string, SkipReason>;
  readonly mismatches: readonly Mismatch[];
  /** Compared buckets as a share of all buckets either side knows, 0..100 (100 when none). */
  readonly coveragePct: number;
}

/** A side's value of a bucket, or why it cannot be compared. */
function sideValue(side: SideCatalogue, bucket: string): BucketValue | SkipReason {
  if (side.dirty.has(bucket)) return 'dirty';
  const v = side.buckets.get(bucket);
  if (v === undefined) return side.swept ? EMPTY : 'not_swept';
  return v === null ? 'never_computed' : v;
}

const byBucket = (a: string, b: string): number => {
  const x = BigInt(a);
  const y = BigInt(b);
  return x < y ? -1 : x > y ? 1 : 0;
};

/** Compares every bucket either side knows or marks dirty. */
export function compareTable(pub: SideCatalogue, sub: SideCatalogue): TableComparison {
  const all = new Set<string>([...pub.buckets.keys(), ...sub.buckets.keys(), ...pub.dirty, ...sub.dirty]);
  const skipped: Record<SkipReason, number> = { dirty: 0, not_swept: 0, never_computed: 0, not_probed: 0 };
  const skippedBuckets = new Map<string, SkipReason>();
  const mismatches: Mismatch[] = [];
  let compared = 0;
  for (const bucket of [...all].sort(byBucket)) {
    const p = sideValue(pub, bucket);
    const s = sideValue(sub, bucket);
    if (typeof p === 'string' || typeof s === 'string') {
      // dirty wins over the other reasons: it is the one a drain resolves
      const reason: SkipReason = p === 'dirty' || s === 'dirty' ? 'dirty' : typeof p === 'string' ? p : (s as SkipReason);
      skipped[reason]++;
      skippedBuckets.set(bucket, reason);
      continue;
    }
    compared++;
    if (!sameValue(p, s)) mismatches.push({ bucket, publisher: p, subscriber: s });
  }
  return {
    bucketsCompared: compared,
    bucketsSkipped: skipped,
    skippedBuckets,
    mismatches,
    coveragePct: all.size === 0 ? 100 : (compared * 100) / all.size,
  };
}

/** The sum of several bucket values (bucket values are additive). */
export function sumValues(values: Iterable<BucketValue>): BucketValue {
  let rows = 0n;
  let sum = 0n;
  for (const v of values) {
    rows += v.rows;
    sum += v.sum;
  }
  return { rows, sum };
}

/** The coarse range a bucket belongs to, when ranges span `width` consecutive bucket ids. */
export function rangeOf(bucket: bigint, width: bigint): bigint {
  const q = bucket / width;
  return bucket < 0n && q * width !== bucket ? q - 1n : q;
}

/**
 * Ranges whose summed values differ between the sides (a range missing on one side sums to
 * zero). Only these need bucket detail; equal sums are taken as equal buckets, which the 64-bit
 * row hashes make a false match as unlikely as a hash collision.
 */
export function differingRanges(pub: ReadonlyMap<string, BucketValue>, sub: ReadonlyMap<string, BucketValue>): string[] {
  const keys = new Set([...pub.keys(), ...sub.keys()]);
  return [...keys].filter((k) => !sameValue(pub.get(k) ?? EMPTY, sub.get(k) ?? EMPTY)).sort(byBucket);
}
