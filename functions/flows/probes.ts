// Resolving buckets by probes (docs/verification.md "The probe"): for each table, send probes
// sized by core/probe-plan.ts, one short locked transaction each, retrying a busy lock a few times;
// then wait for the subscriber's answers, which exist once the probe's transaction was applied
// there. Equal answers are compared buckets, different answers are confirmed divergences, and
// everything that could not be probed or answered is left out with its reason.
// The same answers serve as the barrier (flows/verify.ts): a marker's answer means the subscriber
// applied everything the publisher committed before the marker, without waiting for a status message.

import { setTimeout as sleep } from 'node:timers/promises';
import type { BucketScheme } from '../core/buckets.js';
import { EMPTY, sameValue } from '../core/compare.js';
import { ConnectionError } from '../core/errors.js';
import type { TableRef } from '../core/identifiers.js';
import {
  type BucketOutcome,
  DEFAULT_PROBE_BUDGET,
  lockRetryDelayMs,
  type ProbeBudget,
  ProbeRate,
  type ProbeTarget,
  planProbes,
} from '../core/probe-plan.js';
import { TIME } from '../core/time-limits.js';
import { applyErrors, NO_ERROR_COUNTS, replicationStopped } from '../db/barrier.js';
import type { Client } from '../db/connect.js';
import type { Deadline } from '../db/deadline.js';
import { bucketValues, type ProbeAnswer, readAnswers, type SentProbe, sendProbe } from '../db/probe.js';
import { SQLSTATE, sqlstateOf } from '../db/sqlstate.js';

export interface ProbeRequest {
  readonly table: TableRef;
  readonly scheme: BucketScheme;
  /** The subscription that carries both the table and syncguard.probe. */
  readonly subscription: string;
  readonly targets: readonly ProbeTarget[];
  /** Rows in the table (for a hash-bucketed table, what each probe reads). */
  readonly tableRows: number;
}

export interface ProbeStats {
  probes: number;
  answered: number;
  lockRetries: number;
  readonly lockWaitMs: number[];
  readonly holdMs: number[];
  /** The subscriber's compute time per answer: the apply delay a probe adds. */
  readonly applyMs: number[];
}

export interface ProbeContext {
  /** The publisher's and the subscriber's node ids. */
  readonly origin: string;
  readonly target: string;
  readonly deadline: Deadline;
  readonly budget?: ProbeBudget;
  readonly lockTimeoutMs?: number;
  readonly lockAttempts?: number;
}

const message = (err: unknown): string => (err instanceof Error ? err.message : String(err));

/**
 * The bound on one probe statement on the publisher: the lock wait plus twice the hold budget (at
 * least 50 ms). Batches are planned to hold the lock for 60 % of the budget from the catalogue's
 * row counts; a batch whose real rows are many more is cancelled here instead of holding writers.
 */
function probeStatementTimeoutMs(lockTimeoutMs: number, maxHoldMs: number): number {
  return lockTimeoutMs + Math.max(50, 2 * maxHoldMs);
}

export function emptyStats(): ProbeStats {
  return { probes: 0, answered: 0, lockRetries: 0, lockWaitMs: [], holdMs: [], applyMs: [] };
}

/** Probes every target of every request and returns each bucket's outcome, per table. */
export async function resolveByProbes(
  pub: Client,
  sub: Client,
  requests: readonly ProbeRequest[],
  ctx: ProbeContext,
  stats: ProbeStats = emptyStats(),
): Promise<Map<TableRef, BucketOutcome[]>> {
  const budget = ctx.budget ?? DEFAULT_PROBE_BUDGET;
  const outcomes = new Map<TableRef, BucketOutcome[]>(requests.map((r) => [r.table, []]));
  const sent: { table: TableRef; probe: SentProbe; buckets: readonly string[] }[] = [];
  const leaveOut = (table: TableRef, buckets: readonly string[], reason: string, tooBig = false) =>
    outcomes.get(table)?.push(...buckets.map((bucket) => ({ bucket, state: 'left_out' as const, reason, ...(tooBig ? { tooBig } : {}) })));

  for (const req of requests) {
    const rate = new ProbeRate();
    let queue = [...req.targets];
    let attempt = 0;
    while (queue.length > 0) {
      if (ctx.deadline.remainingMs() < TIME.answerReserveMs) {
        leaveOut(
          req.table,
          queue.map((t) => t.bucket),
          'the time limit ran out before it could be probed',
        );
        break;
      }
      const plan = planProbes(req.scheme, queue, rate.rowsWithin(budget), budget, req.tableRows);
      const batch = plan.batches[0];
      if (batch === undefined) {
        for (const t of plan.tooBig) leaveOut(req.table, [t.bucket], t.reason, true);
        break;
      }
      try {
        const probe = await sendProbe(pub, {
          table: req.table,
          buckets: batch.buckets,
          target: ctx.target,
          subscription: req.subscription,
          lockTimeoutMs: ctx.lockTimeoutMs ?? 20,
          statementTimeoutMs: probeStatementTimeoutMs(ctx.lockTimeoutMs ?? 20, budget.maxHoldMs),
        });
        stats.probes++;
        stats.lockWaitMs.push(probe.lockWaitMs);
        stats.holdMs.push(probe.holdMs);
        rate.record(batch.rows, probe.computeMs);
        sent.push({ table: req.table, probe, buckets: batch.buckets });
        const inBatch = new Set(batch.buckets);
        queue = queue.filter((t) => !inBatch.has(t.bucket));
        attempt = 0;
      } catch (err) {
        if (err instanceof ConnectionError) throw err;
        if (sqlstateOf(err) === SQLSTATE.lockNotAvailable && attempt + 1 < (ctx.lockAttempts ?? 6)) {
          stats.lockRetries++;
          await sleep(lockRetryDelayMs(attempt++));
          continue;
        }
        const reason =
          sqlstateOf(err) === SQLSTATE.queryCanceled
            ? `reading it under the table's SHARE lock took longer than ${probeStatementTimeoutMs(ctx.lockTimeoutMs ?? 20, budget.maxHoldMs)} ms, so the probe was cancelled and writers released (the catalogue's row count for it is stale: it holds more rows than the probe was sized for; a drain brings the count up to date)`
            : sqlstateOf(err) === SQLSTATE.lockNotAvailable
              ? `the table's SHARE lock could not be had within ${ctx.lockTimeoutMs ?? 20} ms in ${attempt + 1} attempts (a long transaction holds the table; see pg_locks)`
              : `the probe failed on the publisher: ${message(err)}`;
        leaveOut(
          req.table,
          queue.map((t) => t.bucket),
          reason,
        );
        break;
      }
    }
  }

  const answers = await awaitAnswers(
    sub,
    ctx.origin,
    sent.map((s) => s.probe.id),
    ctx.deadline,
    [...new Set(requests.map((r) => r.subscription))],
  );
  for (const s of sent) {
    const a = answers.answers.get(s.probe.id);
    if (a === undefined) {
      leaveOut(s.table, s.buckets, `no answer to its probe: ${answers.failure ?? 'the subscriber has not applied it in time'}`);
      continue;
    }
    stats.answered++;
    if (a.computeMs !== null) stats.applyMs.push(a.computeMs);
    if (!a.ok) {
      leaveOut(s.table, s.buckets, `the subscriber could not answer the probe: ${a.error ?? 'unknown error'}`);
      continue;
    }
    const answered = bucketValues(a);
    for (const bucket of s.buckets) {
      const publisher = s.probe.values.get(bucket) ?? EMPTY;
      const subscriber = answered.get(bucket) ?? EMPTY;
      outcomes
        .get(s.table)
        ?.push({ bucket, state: sameValue(publisher, subscriber) ? 'equal' : 'differ', publisher, subscriber, lsn: s.probe.lsn });
    }
  }
  return outcomes;
}

/**
 * Waits until the subscriber answered every probe, the deadline passed, or a subscription
 * stopped; returns the answers it has and, when some are missing, why.
 */
export async function awaitAnswers(
  sub: Client,
  origin: string,
  ids: readonly string[],
  deadline: Deadline,
  subscriptions: readonly string[],
): Promise<{ answers: Map<string, ProbeAnswer>; waitedMs: number; failure?: string }> {
  const start = Date.now();
  let answers = new Map<string, ProbeAnswer>();
  let lastCheck = start;
  const errorsBefore = await applyErrors(sub, subscriptions);
  for (;;) {
    if (ids.length > 0) answers = await readAnswers(sub, origin, ids);
    if (answers.size >= ids.length) return { answers, waitedMs: Date.now() - start };
    if (Date.now() - lastCheck > 500) {
      lastCheck = Date.now();
      const stopped = await replicationStopped(sub, subscriptions);
      if (stopped !== null) return { answers, waitedMs: Date.now() - start, failure: stopped };
      const errorsNow = await applyErrors(sub, subscriptions);
      if (errorsBefore !== null && errorsNow !== null && errorsNow > errorsBefore) {
        const failure = `subscription ${subscriptions.join(', ')} is failing to apply changes (apply/sync error count rose to ${errorsNow})`;
        return { answers, waitedMs: Date.now() - start, failure };
      }
    }
    if (deadline.expired()) {
      return {
        answers,
        waitedMs: Date.now() - start,
        failure: `the subscriber did not apply the probe within ${Date.now() - start} ms (replication lag, or the time limit is too short)${errorsBefore === null ? NO_ERROR_COUNTS : ''}`,
      };
    }
    await sleep(Math.min(50, 5 + (Date.now() - start) / 20));
  }
}
