// Assembling a verification's report (pure): the tables' reports, the fallback's rounds and the
// divergences probes confirmed become the verdict (core/verdict.ts) and the report that
// `syncguard verify --json` prints and the verify Lambda records.

import type { Finding } from './parity.js';
import {
  type LocalWrite,
  leftOutText,
  mismatchReport,
  overallCoverage,
  type ProbeSummary,
  type TableReport,
  type VerifyReport,
} from './report.js';
import { type Confirmed, confirm, decide, type TableRounds } from './verdict.js';

/** What a run found; only `tables`, `lsn` and `barrierMs` are always known. */
export interface RunOutcome {
  readonly tables: readonly TableReport[];
  readonly rounds?: readonly TableRounds[];
  readonly probed?: readonly Confirmed[];
  readonly blocked?: readonly string[];
  readonly lsn: string | null;
  readonly barrierMs: number;
  readonly barrierFailure?: string;
}

/** What a run knows before it compares anything. */
export interface RunContext {
  readonly minCoveragePct: number;
  readonly schemaDrift?: readonly string[];
  readonly warnings: readonly string[];
  readonly parity: readonly Finding[];
  readonly localWrites: readonly LocalWrite[];
  readonly probes: ProbeSummary;
  readonly durationMs: number;
  /** What the verdict covers: the pair's tables, or one (verify --table). */
  readonly only?: string;
  /** Tables the subscription carries that are not registered: each keeps the verdict from in sync. */
  readonly unmonitored?: readonly string[];
  /** Such tables the user left out on purpose (verify --exclude): named, not blocking. */
  readonly excluded?: readonly string[];
}

/** Why a published table that is not monitored keeps the verdict from in sync, and the two ways out. */
export const unmonitoredText = (t: string): string =>
  `${t} is published but not monitored, so the verdict cannot cover it: register it (syncguard register --table ${t}), or leave it out with --exclude ${t}`;

const byTable = (a: TableReport, b: TableReport) => (a.table < b.table ? -1 : a.table > b.table ? 1 : 0);

export function verifyReport(run: RunOutcome, ctx: RunContext): VerifyReport {
  const tables = [...run.tables].sort(byTable);
  const confirmation = confirm(run.rounds ?? [], run.probed ?? []);
  const verdict = decide({
    ...(run.barrierFailure !== undefined ? { barrierFailure: run.barrierFailure } : {}),
    tableCoverage: tables.filter((t) => t.state === 'compared').map((t) => ({ table: t.table, coveragePct: t.coveragePct })),
    minCoveragePct: ctx.minCoveragePct,
    ...(ctx.schemaDrift !== undefined ? { schemaDrift: ctx.schemaDrift } : {}),
    blocked: [...(ctx.unmonitored ?? []).map(unmonitoredText), ...(run.blocked ?? [])],
    leftOut: tables.flatMap((t) => leftOutText(t)),
    confirmation,
    uncomparableTables: tables.filter((t) => t.state === 'uncomparable').map((t) => `${t.table} (${t.reason})`),
  });
  return {
    status: verdict.status,
    reasons: verdict.reasons,
    coveragePct: overallCoverage(tables),
    tables,
    mismatches: confirmation.confirmed.map((m) => mismatchReport(m.table, m)),
    candidates: confirmation.candidates.map((m) => ({ ...mismatchReport(m.table, m), why: m.why })),
    warnings: ctx.warnings,
    parity: ctx.parity,
    localWrites: ctx.localWrites,
    verifiedLsn: run.lsn,
    durationMs: ctx.durationMs,
    barrierMs: run.barrierMs,
    probes: ctx.probes,
    only: ctx.only ?? null,
    unmonitored: ctx.unmonitored ?? [],
    excluded: ctx.excluded ?? [],
  };
}

/** The probes' cost, summed up for the report. */
export function probeSummary(s: {
  probes: number;
  answered: number;
  lockRetries: number;
  lockWaitMs: readonly number[];
  holdMs: readonly number[];
  applyMs: readonly number[];
}): ProbeSummary {
  const max = (xs: readonly number[]) => xs.reduce((a, b) => Math.max(a, b), 0);
  return {
    probes: s.probes,
    answered: s.answered,
    lockRetries: s.lockRetries,
    maxLockWaitMs: max(s.lockWaitMs),
    maxHoldMs: max(s.holdMs),
    maxApplyMs: max(s.applyMs),
  };
}

/** A local-writes warning line, when there are any. */
export function localWriteWarning(count: number): string[] {
  return count > 0 ? [`${count} local (non-replicated) write(s) to monitored tables on the subscriber: the usual cause of drift`] : [];
}

/** "bucket(s) ... hold(s) local writes on the subscriber and <what>": such a table is not in sync. */
export function localWriteText(table: string, buckets: readonly string[], what: string): string {
  const n = buckets.length;
  return `${table}: bucket${n === 1 ? '' : 's'} ${buckets.slice(0, 10).join(', ')} hold${n === 1 ? 's' : ''} local writes on the subscriber and ${what}`;
}
