// Trying a locked publisher call again (inspection and repair share this; the probes of verify
// retry a busy lock inside their own batching loop, with the same delays, core/probe-plan.ts):
// - a busy lock (lock_not_available at the call's short lock_timeout): tried again a few times,
//   a little later each time, so that the call never queues behind a long transaction;
// - a cancellation at the hold limit (db/repair.ts, lockedCall): the cancelled call rolled back and
//   changed nothing, and a host busy for a moment (CPU, I/O) can make one call that fits the limit
//   overrun it. A call too large for the limit fails every time, so it is tried only twice more.

import { setTimeout as sleep } from 'node:timers/promises';
import { SyncGuardError } from '../core/errors.js';
import { lockRetryDelayMs } from '../core/probe-plan.js';
import { HoldLimitError } from '../db/repair.js';
import { SQLSTATE, sqlstateOf } from '../db/sqlstate.js';

/** How often a call cancelled at the hold limit is tried again. */
const HOLD_RETRIES = 2;

/**
 * Before hold retry `retry` (1, 2, ...): waits a little longer each time, or rethrows `err` when it
 * is not a hold-limit cancellation or the retries are used up.
 */
export async function beforeHoldRetry(err: unknown, retry: number): Promise<void> {
  if (!(err instanceof HoldLimitError) || retry > HOLD_RETRIES) throw err;
  await sleep(100 * retry);
}

/** Runs fn, trying it again (at most HOLD_RETRIES times) when it was cancelled at the hold limit. */
export async function withHoldRetries<T>(fn: () => Promise<T>): Promise<T> {
  for (let retry = 1; ; retry++) {
    try {
      return await fn();
    } catch (err) {
      await beforeHoldRetry(err, retry);
    }
  }
}

/** Runs a locked publisher call, retrying a busy lock a few times (never queueing behind a long transaction). */
export async function withLockRetries<T>(what: string, lockTimeoutMs: number, fn: () => Promise<T>, attempts = 6): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn();
    } catch (err) {
      if (sqlstateOf(err) !== SQLSTATE.lockNotAvailable) throw err;
      if (attempt + 1 >= attempts) {
        throw new SyncGuardError(
          `${what}: the table's SHARE lock could not be had within ${lockTimeoutMs} ms in ${attempts} attempts (a long transaction holds the table; see pg_locks); try again later`,
        );
      }
      await sleep(lockRetryDelayMs(attempt));
    }
  }
}
