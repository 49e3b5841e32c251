// A verification run as the control plane records it: the one flow that `syncguard verify
// --control-dsn` and the verify Lambda both go through, so that what a run records (who asked,
// for which pair and table, when it started and ended, the report), the divergences that
// record_run opens, refreshes and closes from it, and the figures the Lambda publishes as metrics
// cannot differ between the two.

import type { VerifyReport } from '../core/report.js';
import type { Client } from '../db/connect.js';
import { type RecordedRun, type RunMeta, recordRun } from '../db/control.js';
import { type VerifyOptions, verifyPair } from './verify.js';

/** Who asks for a run, and of what: what is recorded besides the report and its times. */
export type RunRequest = Omit<RunMeta, 'startedAt' | 'finishedAt'>;

/** A run's figures, from its report (the verify Lambda publishes each as a metric of the pair). */
export interface RunFigures {
  readonly divergentBuckets: number;
  readonly coveragePct: number;
  readonly durationMs: number;
  readonly barrierMs: number;
  readonly probesSent: number;
  readonly probeMaxHoldMs: number;
  /** Local writes on the subscriber, however the report groups them (record_run counts them the same way). */
  readonly localWrites: number;
}

export interface VerifyRun {
  readonly report: VerifyReport;
  /** When the verification started and ended, as recorded. */
  readonly startedAt: Date;
  readonly finishedAt: Date;
  readonly figures: RunFigures;
}

export function runFigures(report: VerifyReport): RunFigures {
  return {
    divergentBuckets: report.mismatches.length,
    coveragePct: report.coveragePct,
    durationMs: report.durationMs,
    barrierMs: report.barrierMs,
    probesSent: report.probes.probes,
    probeMaxHoldMs: report.probes.maxHoldMs,
    localWrites: report.localWrites.reduce((a, g) => a + g.writes, 0),
  };
}

/** Verifies the pair, timing the run as it is recorded. */
export async function verifyRun(pub: Client, sub: Client, opts: VerifyOptions): Promise<VerifyRun> {
  const startedAt = new Date();
  const report = await verifyPair(pub, sub, opts);
  return { report, startedAt, finishedAt: new Date(), figures: runFigures(report) };
}

/** Records the run in the control plane: its run id, and the divergences it opened or refreshed. */
export async function recordVerifyRun(control: Client, request: RunRequest, run: VerifyRun): Promise<RecordedRun> {
  return recordRun(control, { ...request, startedAt: run.startedAt, finishedAt: run.finishedAt }, run.report);
}
