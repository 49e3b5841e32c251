// The decisions of a verification (pure): which buckets a probe must resolve, how the time limit
// is split, and what a probed table's report says (which ranges to read: verify-levels.ts).
// flows/verify.ts reads and writes; everything it decides comes from here.

import type { Mismatch, SkipReason, TableComparison } from './compare.js';
import type { BucketOutcome, ProbeTarget } from './probe-plan.js';
import type { TableReport } from './report.js';
import { TIME } from './time-limits.js';

/**
 * The buckets a probe must resolve: every candidate mismatch and every bucket skipped (dirty or
 * never computed on either side), with the larger of the two stored row counts as the estimate
 * of its size (the table's mean when neither side has one).
 */
export function probeTargets(
  cmp: TableComparison,
  rowsOf: (bucket: string) => { publisher: bigint | null; subscriber: bigint | null },
  meanRows: number,
): ProbeTarget[] {
  const buckets = [...cmp.mismatches.map((m) => m.bucket), ...cmp.skippedBuckets.keys()];
  return [...new Set(buckets)].map((bucket) => {
    const r = rowsOf(bucket);
    const known = [r.publisher, r.subscriber].filter((x): x is bigint => x !== null).map(Number);
    return { bucket, rows: known.length > 0 ? Math.max(...known) : Math.ceil(meanRows) };
  });
}

/**
 * The clean candidate mismatches that were too big to probe: the two-round confirmation decides
 * them instead (a mismatch in a hash-bucketed table, which every probe reads whole, stays
 * confirmable as before the probe existed).
 */
export function twoRoundCandidates(cmp: TableComparison, outcomes: readonly BucketOutcome[]): Mismatch[] {
  const tooBig = new Set(outcomes.filter((o) => o.state === 'left_out' && o.tooBig === true).map((o) => o.bucket));
  return cmp.mismatches.filter((m) => tooBig.has(m.bucket));
}

/**
 * A probed table's report: buckets equal at range level, the clean equal buckets of the detail,
 * and the probes' answers. Each probed bucket that differs is a confirmed divergence; each one
 * left out is named with its reason and lowers the coverage, except the clean candidates handed
 * to the two-round confirmation (`twoRounds`), which count as compared as in the fallback.
 */
export function probedTable(
  table: string,
  fingerprints: TableReport['fingerprints'],
  equalBuckets: number,
  cmp: TableComparison,
  outcomes: readonly BucketOutcome[],
  twoRounds: readonly Mismatch[] = [],
): { report: TableReport; diverged: (Mismatch & { readonly lsn: string })[] } {
  const probedAway = new Set(cmp.mismatches.map((m) => m.bucket));
  const deferred = new Set(twoRounds.map((m) => m.bucket));
  let compared = equalBuckets + cmp.bucketsCompared - probedAway.size + deferred.size;
  const diverged: (Mismatch & { lsn: string })[] = [];
  const leftOut: { bucket: string; reason: string }[] = [];
  let probed = 0;
  for (const o of outcomes) {
    if (deferred.has(o.bucket)) continue;
    if (o.state === 'left_out') {
      leftOut.push({ bucket: o.bucket, reason: o.reason });
      continue;
    }
    probed++;
    compared++;
    if (o.state === 'differ') diverged.push({ bucket: o.bucket, publisher: o.publisher, subscriber: o.subscriber, lsn: o.lsn });
  }
  const skipped: Record<SkipReason, number> = { dirty: 0, not_swept: 0, never_computed: 0, not_probed: leftOut.length };
  const total = compared + leftOut.length;
  return {
    report: {
      table,
      state: 'compared',
      method: 'probe',
      bucketsCompared: compared,
      bucketsProbed: probed,
      bucketsSkipped: leftOut.length,
      skipped,
      coveragePct: total === 0 ? 100 : (compared * 100) / total,
      leftOut,
      fingerprints,
    },
    diverged,
  };
}

/** How a verification splits its time limit: the length of each part (ms). */
export interface VerifySchedule {
  /** The end of the publisher's drain, then of the subscriber's. */
  readonly drainMs: number;
  /** The longest wait for the subscriber to reach the first barrier. */
  readonly barrierMs: number;
  /** Kept free at the end for the report. */
  readonly marginMs: number;
}

/** Drains get up to 15 % of the limit each (10 s at most), a barrier up to 40 % (30 s at most). */
export function splitTimeLimit(limitMs: number): VerifySchedule {
  return {
    drainMs: Math.max(1, Math.min(TIME.verifyDrainMaxMs, Math.floor(limitMs * 0.15))),
    barrierMs: Math.max(1, Math.min(TIME.verifyBarrierMaxMs, Math.floor(limitMs * 0.4))),
    marginMs: Math.min(TIME.verifyMaxMarginMs, Math.max(TIME.verifyMinMarginMs, Math.floor(limitMs * 0.05))),
  };
}

/** A PostgreSQL LSN (`X/Y`, hex) as a number, for comparing positions. */
function lsnValue(lsn: string): bigint {
  const [hi, lo] = lsn.split('/');
  return (BigInt(`0x${hi ?? '0'}`) << 32n) + BigInt(`0x${lo ?? '0'}`);
}

/** The later of two LSNs. */
export const laterLsn = (a: string, b: string): string => (lsnValue(b) > lsnValue(a) ? b : a);

/** What one side's catalogue of a table says about whether it can be compared. */
export interface CatalogueState {
  readonly fingerprint: string;
  readonly swept: boolean;
}

/** Why a table cannot be compared after the reads (problems found, fingerprints, first sweep), or null. */
export function whyNotCompared(p: CatalogueState | undefined, s: CatalogueState | undefined, found: readonly string[]): string | null {
  if (p === undefined || s === undefined) return 'the registration changed during verification; run verify again';
  if (found.length > 0) return found.join('; ');
  if (s.fingerprint !== p.fingerprint) return `registration fingerprints differ: publisher ${p.fingerprint}, subscriber ${s.fingerprint}`;
  if (!p.swept || !s.swept) return `the first sweep has not finished on the ${p.swept ? 'subscriber' : 'publisher'}; run syncguard drain`;
  return null;
}
