// The pure parts of a drain run: the stop decision and the summary it returns.

import { TIME } from './time-limits.js';

export type StopReason = 'empty' | 'time' | 'error';

export interface DrainSummary {
  readonly bucketsRecomputed: number;
  readonly rowsHashed: number;
  /** Mean sweep progress of the registered tables, 0..1 (1 when there are none). */
  readonly sweepProgress: number;
  /** Dirty buckets left (committed marks only); null when the final status could not be read
   * (unknown, never 0: a 0 would keep a "dirty buckets" alarm green). */
  readonly remainingDirty: number | null;
  readonly oldestDirtyAgeMs: number | null;
  /** 'empty' only when no dirty bucket and no unswept table was left: never after a time stop. */
  readonly stoppedBecause: StopReason;
  /** The node's unlogged state had been emptied (crash recovery, failover): a full sweep restarted. */
  readonly stateLost: boolean;
  /** A full re-sweep (periodic or requested) was started by this run. */
  readonly fullResweepStarted: boolean;
  /** Tables the drain skipped because a fault is recorded for them (verify says how to fix it). */
  readonly faultyTables: readonly string[];
  readonly durationMs: number;
  readonly error?: string;
}

/** The time box split into its parts; the margin is kept free for the summary and the return. */
export interface TimeBox {
  readonly deadlineMs: number;
  readonly marginMs: number;
}

/** A safety margin for a box of the given length: 10 %, between 50 ms and 2 s. */
export function defaultMarginMs(boxMs: number): number {
  return Math.min(TIME.drainMaxMarginMs, Math.max(TIME.drainMinMarginMs, Math.floor(boxMs * 0.1)));
}

/** Milliseconds a batch may still use; 0 means stop now. */
/** The most connections one drain may use at once (drain --workers, SYNCGUARD_DRAIN_WORKERS, config drainWorkers). */
export const MAX_DRAIN_WORKERS = 16;

export function batchBudgetMs(box: TimeBox, nowMs: number): number {
  return Math.max(0, box.deadlineMs - box.marginMs - nowMs);
}

/**
 * One summary for a drain run by several workers at once (drain --workers N): counts are summed;
 * the node's state (dirty buckets left, sweep progress, faults) and the stop reason are those of
 * the worker that finished last, whose final look came after every other worker had stopped;
 * an error of any worker makes the whole run an error.
 */
export function mergeDrains(runs: readonly DrainSummary[], last: number, durationMs: number): DrainSummary {
  const final = runs[last];
  if (final === undefined) throw new RangeError(`no drain run ${last} among ${runs.length}`);
  const failed = runs.find((r) => r.stoppedBecause === 'error');
  return {
    ...final,
    bucketsRecomputed: runs.reduce((a, r) => a + r.bucketsRecomputed, 0),
    rowsHashed: runs.reduce((a, r) => a + r.rowsHashed, 0),
    stoppedBecause: failed !== undefined ? 'error' : final.stoppedBecause,
    stateLost: runs.some((r) => r.stateLost),
    fullResweepStarted: runs.some((r) => r.fullResweepStarted),
    durationMs,
    ...(failed?.error !== undefined ? { error: failed.error } : {}),
  };
}
