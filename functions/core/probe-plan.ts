// Planning probes (pure). A probe holds writers to its table back while the publisher computes
// its buckets, so each probe is sized to hold them for at most `maxHoldMs`: its rows (the
// catalogue's estimate) times the measured cost of a row. The cost is a moving average per table,
// like the drain's batch sizer; before the first measurement a conservative rate is assumed.
// A bucket too big to probe within the budget on its own is not probed; it is left out, named,
// with the reason. A hash-bucketed table is read whole by any probe, so all its buckets go in one.

import type { BucketScheme } from './buckets.js';
import type { BucketValue } from './compare.js';

export interface ProbeTarget {
  readonly bucket: string;
  /** Estimated rows (the larger of the two catalogues' counts; the table's mean for an unknown bucket). */
  readonly rows: number;
}

export interface ProbeBatch {
  readonly buckets: readonly string[];
  readonly rows: number;
}

export interface ProbePlan {
  readonly batches: readonly ProbeBatch[];
  /** Buckets not probed, with the reason. */
  readonly tooBig: readonly { readonly bucket: string; readonly reason: string }[];
}

export interface ProbeBudget {
  /** The longest a probe may hold writers back (lock held while computing). */
  readonly maxHoldMs: number;
  /** Buckets per probe, at most (the subscriber refuses more). */
  readonly maxBuckets: number;
  /** Rows per probe, at most (the subscriber refuses more). */
  readonly maxRows: number;
}

export const DEFAULT_PROBE_BUDGET: ProbeBudget = Object.freeze({ maxHoldMs: 25, maxBuckets: 2000, maxRows: 500_000 });

/** Rows per millisecond assumed before a table's first probe (measured sweeps run at 350-400). */
export const INITIAL_ROWS_PER_MS = 150;
/** Share of the hold budget that the compute may plan for (the insert and commit take the rest). */
const SAFETY = 0.6;

/** A moving average of one table's probe speed, in rows per millisecond of compute. */
export class ProbeRate {
  private rate: number | null = null;

  record(rows: number, computeMs: number): void {
    if (rows < 100 || !(computeMs > 0)) return; // too small to say anything about speed
    const sample = rows / computeMs;
    this.rate = this.rate === null ? sample : 0.5 * sample + 0.5 * this.rate;
  }

  rowsPerMs(): number {
    return Math.max(1, this.rate ?? INITIAL_ROWS_PER_MS);
  }

  /** Rows one probe may read to stay within the hold budget. */
  rowsWithin(budget: ProbeBudget): number {
    return Math.min(budget.maxRows, Math.floor(budget.maxHoldMs * SAFETY * this.rowsPerMs()));
  }
}

const byBucket = (a: ProbeTarget, b: ProbeTarget): number => {
  const x = BigInt(a.bucket);
  const y = BigInt(b.bucket);
  return x < y ? -1 : x > y ? 1 : 0;
};

/**
 * Splits the buckets of one table into probes of at most `rowsPerProbe` estimated rows (in bucket
 * order, so a range probe reads neighbouring keys). For a hash-bucketed table every probe reads
 * the whole table (`tableRows`): one probe, or none when the table is over the budget.
 */
export function planProbes(
  scheme: BucketScheme,
  targets: readonly ProbeTarget[],
  rowsPerProbe: number,
  budget: ProbeBudget,
  tableRows: number,
): ProbePlan {
  const sorted = [...targets].sort(byBucket);
  if (sorted.length === 0) return { batches: [], tooBig: [] };
  const holdMs = (rows: number) => Math.ceil((rows / Math.max(rowsPerProbe, 1)) * budget.maxHoldMs * SAFETY);
  if (scheme === 'hash') {
    if (tableRows > rowsPerProbe) {
      const reason = `a probe of this hash-bucketed table reads all its ~${tableRows} rows and would hold writers back for about ${holdMs(tableRows)} ms, over the ${budget.maxHoldMs} ms budget; raise the probe hold budget or register the table with a range scheme`;
      return { batches: [], tooBig: sorted.map((t) => ({ bucket: t.bucket, reason })) };
    }
    const batches: ProbeBatch[] = [];
    for (let i = 0; i < sorted.length; i += budget.maxBuckets) {
      batches.push({ buckets: sorted.slice(i, i + budget.maxBuckets).map((t) => t.bucket), rows: tableRows });
    }
    return { batches, tooBig: [] };
  }
  const batches: ProbeBatch[] = [];
  const tooBig: { bucket: string; reason: string }[] = [];
  let current: string[] = [];
  let rows = 0;
  const flush = () => {
    if (current.length > 0) batches.push({ buckets: current, rows });
    current = [];
    rows = 0;
  };
  for (const t of sorted) {
    if (t.rows > rowsPerProbe) {
      tooBig.push({
        bucket: t.bucket,
        reason: `the bucket holds ~${t.rows} rows; probing it would hold writers back for about ${holdMs(t.rows)} ms, over the ${budget.maxHoldMs} ms budget; raise the probe hold budget or register the table with smaller buckets`,
      });
      continue;
    }
    if (current.length >= budget.maxBuckets || rows + t.rows > rowsPerProbe) flush();
    current.push(t.bucket);
    rows += t.rows;
  }
  flush();
  return { batches, tooBig };
}

/** Wait before the n-th retry (0-based) of a probe whose lock was busy: 50, 100, 200, ... ms, capped. */
export function lockRetryDelayMs(attempt: number): number {
  return Math.min(1000, 50 * 2 ** attempt);
}

/** What probing one bucket found: equal or different at the probe's position, or why it was left out. */
export type BucketOutcome =
  | {
      readonly bucket: string;
      readonly state: 'equal' | 'differ';
      readonly publisher: BucketValue;
      readonly subscriber: BucketValue;
      /** The publisher's WAL position right after the probe committed. */
      readonly lsn: string;
    }
  | {
      readonly bucket: string;
      readonly state: 'left_out';
      readonly reason: string;
      /** Too big to probe within the hold budget: a clean candidate can still be confirmed in two rounds. */
      readonly tooBig?: boolean;
    };
