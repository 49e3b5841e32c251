// The verification report (what `syncguard verify --json` prints and the verify Lambda returns).
// Built from the pure comparison results; bigint values become decimal strings for JSON.

import type { BucketValue, Mismatch, SkipReason, TableComparison } from './compare.js';
import type { Finding } from './parity.js';
import type { Status } from './verdict.js';

export interface JsonValue {
  readonly rows: string;
  readonly hash: string;
}

export interface TableReport {
  readonly table: string;
  /** 'uncomparable': a registration problem (see core/health.ts), fingerprints differ, or a first sweep unfinished. */
  readonly state: 'compared' | 'uncomparable';
  readonly reason?: string;
  /** How candidates and dirty buckets were resolved: exactly by probes, or by two catalogue rounds
   * (the fallback when probes cannot reach the table). */
  readonly method?: 'probe' | 'two_rounds';
  readonly bucketsCompared: number;
  /** Buckets compared by a probe (part of bucketsCompared). */
  readonly bucketsProbed?: number;
  readonly bucketsSkipped: number;
  readonly skipped: Readonly<Record<SkipReason, number>>;
  readonly coveragePct: number;
  /** Buckets a probe could not resolve, each with the reason. */
  readonly leftOut?: readonly { readonly bucket: string; readonly reason: string }[];
  readonly fingerprints: { readonly publisher: string | null; readonly subscriber: string | null };
}

export interface MismatchReport {
  readonly table: string;
  readonly bucket: string;
  readonly publisher: JsonValue;
  readonly subscriber: JsonValue;
  /** How it was confirmed: by a probe (at `lsn`), or in two catalogue rounds. */
  readonly how?: 'probe' | 'two_rounds';
  readonly lsn?: string;
}

/** What the probes of a verification cost (docs/performance.md). */
export interface ProbeSummary {
  readonly probes: number;
  readonly answered: number;
  readonly lockRetries: number;
  /** Milliseconds: the longest wait for a table lock, hold of it, and subscriber compute (apply delay). */
  readonly maxLockWaitMs: number;
  readonly maxHoldMs: number;
  readonly maxApplyMs: number;
}

/** Local (non-replicated) writes on the subscriber, per table and writing role. */
export interface LocalWrite {
  readonly table: string;
  readonly role: string;
  /** (bucket, transaction) pairs written. */
  readonly writes: number;
  readonly buckets: number;
  readonly first: string;
  readonly last: string;
  readonly applicationNames: readonly string[];
}

export interface VerifyReport {
  readonly status: Status;
  readonly reasons: readonly string[];
  /** The publisher LSN the verdict holds at (the last barrier); null without a barrier. */
  readonly verifiedLsn: string | null;
  readonly coveragePct: number;
  readonly tables: readonly TableReport[];
  readonly mismatches: readonly MismatchReport[];
  readonly candidates: readonly (MismatchReport & { readonly why: string })[];
  readonly warnings: readonly string[];
  /** Parity checks beside the data verdict (columns, publication, sequences). */
  readonly parity: readonly Finding[];
  /** Non-replicated writes on the subscriber's monitored tables, per table and role. */
  readonly localWrites: readonly LocalWrite[];
  readonly durationMs: number;
  readonly barrierMs: number;
  readonly probes: ProbeSummary;
  /** What the verdict covers: null for the pair (every table registered on either node and every
   * table the subscription carries), or the one table verify --table named. */
  readonly only: string | null;
  /** Tables the subscription carries that are registered on neither node (the result is then never in sync). */
  readonly unmonitored: readonly string[];
  /** Such tables left out on purpose (verify --exclude): not covered, and said so. */
  readonly excluded: readonly string[];
}

export const jsonValue = (v: BucketValue): JsonValue => ({ rows: v.rows.toString(), hash: v.sum.toString() });

export const mismatchReport = (table: string, m: Mismatch & { how?: 'probe' | 'two_rounds'; lsn?: string }): MismatchReport => ({
  table,
  bucket: m.bucket,
  publisher: jsonValue(m.publisher),
  subscriber: jsonValue(m.subscriber),
  ...(m.how !== undefined ? { how: m.how } : {}),
  ...(m.lsn !== undefined ? { lsn: m.lsn } : {}),
});

/** The buckets a table left out, grouped by reason, for a verdict's reasons: at most `max` named per reason. */
export function leftOutText(t: TableReport, max = 5): string[] {
  const byReason = new Map<string, string[]>();
  for (const l of t.leftOut ?? []) byReason.set(l.reason, [...(byReason.get(l.reason) ?? []), l.bucket]);
  return [...byReason].map(([reason, buckets]) => {
    const named = buckets.slice(0, max).join(', ');
    const more = buckets.length > max ? ` and ${buckets.length - max} more` : '';
    return `${t.table}: bucket${buckets.length === 1 ? '' : 's'} ${named}${more} not compared: ${reason}`;
  });
}

/** A table's report from the comparisons of its ranges and details. */
export function tableReport(
  table: string,
  fingerprints: TableReport['fingerprints'],
  parts: readonly TableComparison[],
  equalBuckets: number,
): TableReport {
  const skipped: Record<SkipReason, number> = { dirty: 0, not_swept: 0, never_computed: 0, not_probed: 0 };
  let compared = equalBuckets;
  for (const p of parts) {
    compared += p.bucketsCompared;
    for (const k of Object.keys(skipped) as SkipReason[]) skipped[k] += p.bucketsSkipped[k];
  }
  const skippedTotal = skipped.dirty + skipped.not_swept + skipped.never_computed + skipped.not_probed;
  const total = compared + skippedTotal;
  return {
    table,
    state: 'compared',
    method: 'two_rounds',
    bucketsCompared: compared,
    bucketsSkipped: skippedTotal,
    skipped,
    coveragePct: total === 0 ? 100 : (compared * 100) / total,
    fingerprints,
  };
}

export function uncomparable(table: string, reason: string, fingerprints: TableReport['fingerprints'], knownBuckets: number): TableReport {
  return {
    table,
    state: 'uncomparable',
    reason,
    bucketsCompared: 0,
    bucketsSkipped: knownBuckets,
    skipped: { dirty: 0, not_swept: 0, never_computed: 0, not_probed: 0 },
    coveragePct: 0,
    fingerprints,
  };
}

/** Coverage over all tables: compared buckets as a share of all buckets known. */
export function overallCoverage(tables: readonly TableReport[]): number {
  const compared = tables.reduce((a, t) => a + t.bucketsCompared, 0);
  const total = tables.reduce((a, t) => a + t.bucketsCompared + t.bucketsSkipped, 0);
  // no bucket known: full coverage only when every table was compared (an empty pair), never
  // when tables could not be compared at all
  if (total === 0) return tables.every((t) => t.state === 'compared') ? 100 : 0;
  return (compared * 100) / total;
}
