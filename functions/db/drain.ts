// A drain run on one node: recompute dirty buckets in short batches, then advance the sweep,
// until nothing is left or the time box is used up. Each batch is one statement (one short
// transaction) under a statement_timeout that ends inside the box, so a drain never overruns it,
// and a drain that dies mid-batch rolls back: its marks come back, no catalogue row is half written.
// The drainer only reads user tables (ACCESS SHARE), so application writers never wait for it.

import { BatchSizer } from '../core/batch-sizer.js';
import { batchBudgetMs, type DrainSummary, defaultMarginMs, type StopReason, type TimeBox } from '../core/drain.js';
import { TimeLimitError } from '../core/errors.js';
import type { TableRef } from '../core/identifiers.js';
import { TIME } from '../core/time-limits.js';
import type { Client } from './connect.js';
import type { Deadline } from './deadline.js';
import { requireInstalled } from './installed.js';
import { SQLSTATE, sqlstateOf } from './sqlstate.js';
import { nodeStatus } from './status.js';

export interface DrainProgress {
  readonly phase: 'dirty' | 'sweep';
  readonly bucketsRecomputed: number;
  readonly rowsHashed: number;
  readonly elapsedMs: number;
  readonly boxMs: number;
  readonly batchSize: number;
  /** The table being swept (sweep phase). */
  readonly table?: string;
}

export interface DrainOptions {
  /** The end of the time box. */
  readonly deadline: Deadline;
  readonly marginMs?: number;
  /** Start a full re-sweep of every table now. */
  readonly fullResweep?: boolean;
  /** Start a full re-sweep when the last began longer ago than this; null: never. */
  readonly resweepIntervalMs?: number | null;
  readonly onProgress?: (p: DrainProgress) => void;
  readonly now?: () => number;
  /** Only the dirty buckets of these tables, and no sweep (what a verification of them needs). */
  readonly only?: readonly TableRef[];
}

export async function drain(client: Client, opts: DrainOptions): Promise<DrainSummary> {
  const now = opts.now ?? Date.now;
  const start = now();
  const boxMs = opts.deadline.remainingMs(start);
  if (!(boxMs > 0)) {
    throw new TimeLimitError(
      `the drain time box must be positive, got ${boxMs} ms: its deadline passed before it started (connecting took the time?); nothing was drained; give it a longer time limit`,
    );
  }
  const box: TimeBox = { deadlineMs: opts.deadline.atMs, marginMs: opts.marginMs ?? defaultMarginMs(boxMs) };
  // Every query gets a client-side deadline at the end of the box (plus a grace for the final
  // status), so a frozen backend or a partitioned network cannot hold the drain past its box.
  const clientBound = opts.deadline.withGrace(TIME.drainClientGraceMs);
  return client.withQueryTimeout(
    () => Math.max(TIME.drainMinQueryTimeoutMs, clientBound.remainingMs(now())),
    () => drainWithin(client, opts, box, start, now),
  );
}

async function drainWithin(client: Client, opts: DrainOptions, box: TimeBox, start: number, now: () => number): Promise<DrainSummary> {
  const boxMs = box.deadlineMs - start;
  await requireInstalled(client, client.label);

  // The session's own settings come back at the end: the connection may be shared.
  const saved = await client.query<{ st: string; lt: string; it: string }>(
    "SELECT current_setting('statement_timeout') AS st, current_setting('lock_timeout') AS lt, current_setting('idle_in_transaction_session_timeout') AS it",
  );
  const restore = async () => {
    const r = saved.rows[0];
    if (r === undefined) return;
    await client
      .query('SELECT set_config($1, $2, false), set_config($3, $4, false), set_config($5, $6, false)', [
        'statement_timeout',
        r.st,
        'lock_timeout',
        r.lt,
        'idle_in_transaction_session_timeout',
        r.it,
      ])
      .catch(() => {});
  };
  try {
    await client.query('SELECT set_config($1, $2, false), set_config($3, $4, false)', [
      'lock_timeout',
      `${Math.max(50, Math.min(2000, Math.floor(boxMs / 4)))}ms`,
      'idle_in_transaction_session_timeout',
      `${Math.min(TIME.maxServerTimeoutMs, Math.max(1000, boxMs))}ms`,
    ]);
    const setup = await client.query<{ lost: boolean; resweep: boolean }>(
      `SELECT syncguard.check_state() AS lost,
              CASE WHEN $1 THEN syncguard.request_full_sweep() >= 0
                   WHEN $2::bigint IS NULL THEN false
                   ELSE syncguard.maybe_full_sweep(make_interval(secs => $2::bigint / 1000.0)) END AS resweep`,
      [opts.fullResweep === true, opts.resweepIntervalMs === undefined ? TIME.resweepIntervalMs : opts.resweepIntervalMs],
    );
    const stateLost = setup.rows[0]?.lost ?? false;
    const fullResweepStarted = (setup.rows[0]?.resweep ?? false) || stateLost;

    let buckets = 0;
    let rows = 0;
    let stopped: StopReason = 'empty';
    let error: string | undefined;
    const sizer = new BatchSizer();

    const runPhase = async (phase: 'dirty' | 'sweep'): Promise<boolean> => {
      for (;;) {
        const budget = batchBudgetMs(box, now());
        const size = sizer.nextWithin(budget);
        if (size < 1) {
          stopped = 'time';
          return false;
        }
        const t0 = now();
        let result: { buckets: number; rows: number; table?: string; busy?: boolean } | null;
        try {
          await client.query('SELECT set_config($1, $2, false)', ['statement_timeout', `${Math.max(1, budget)}ms`]);
          const only = opts.only;
          const { rows: out } = await client.query<{ r: { buckets: number; rows: number; table?: string; busy?: boolean } | null }>(
            phase === 'sweep'
              ? 'SELECT syncguard.sweep_batch($1) AS r'
              : only === undefined
                ? 'SELECT syncguard.drain_batch($1) AS r'
                : 'SELECT syncguard.drain_batch($1, $2, $3) AS r',
            phase === 'dirty' && only !== undefined ? [size, only.map((t) => t.schema), only.map((t) => t.table)] : [size],
          );
          result = out[0]?.r ?? null;
        } catch (err) {
          if (sqlstateOf(err) === SQLSTATE.queryCanceled) {
            stopped = 'time';
            return false;
          }
          if (sqlstateOf(err) === SQLSTATE.lockNotAvailable) continue; // another drainer held a row briefly: try again
          throw err;
        }
        const elapsed = now() - t0;
        if (result === null || Number(result.buckets) === 0) {
          if (phase === 'dirty' || result === null) return true;
          // other workers hold every free lane right now: wait a moment; else a sweep step that
          // only found its table finished
          if (result.busy === true) await new Promise((r) => setTimeout(r, TIME.drainBusyWaitMs));
          continue;
        }
        sizer.record(Number(result.buckets), elapsed);
        buckets += Number(result.buckets);
        rows += Number(result.rows);
        opts.onProgress?.({
          phase,
          bucketsRecomputed: buckets,
          rowsHashed: rows,
          elapsedMs: now() - start,
          boxMs,
          batchSize: size,
          ...(result.table !== undefined ? { table: result.table } : {}),
        });
      }
    };

    try {
      if ((await runPhase('dirty')) && opts.only === undefined) await runPhase('sweep');
    } catch (err) {
      stopped = 'error';
      error = err instanceof Error ? err.message : String(err);
    }
    await client
      .query('SELECT set_config($1, $2, false)', ['statement_timeout', `${Math.max(TIME.drainFinalStatusMs, box.marginMs)}ms`])
      .catch(() => {});
    // The final look decides what the summary claims: without it (the node froze or went away)
    // the drain is an error that names the node, never "an unknown number of dirty buckets left".
    const status = await nodeStatus(client).catch((err: unknown) => {
      if (stopped !== 'error') {
        stopped = 'error';
        error = err instanceof Error ? err.message : String(err);
      }
      return null;
    });
    const faultyTables = (status?.tables ?? []).filter((t) => t.fault !== null).map((t) => t.table);
    const tables = (status?.tables ?? []).filter((t) => t.fault === null);
    const sweepProgress = tables.length === 0 ? 1 : tables.reduce((a, t) => a + Number(t.sweepProgress), 0) / tables.length;
    // 'empty' is only claimed when the final look confirms it: writers may have added work.
    if (stopped === 'empty' && opts.only === undefined && (status === null || status.remainingDirty > 0 || sweepProgress < 1))
      stopped = 'time';
    return {
      bucketsRecomputed: buckets,
      rowsHashed: rows,
      sweepProgress,
      remainingDirty: status?.remainingDirty ?? null,
      oldestDirtyAgeMs: status?.oldestDirtyAgeMs ?? null,
      stoppedBecause: stopped,
      stateLost,
      fullResweepStarted,
      faultyTables,
      durationMs: now() - start,
      ...(error !== undefined ? { error } : {}),
    };
  } finally {
    await restore();
  }
}
