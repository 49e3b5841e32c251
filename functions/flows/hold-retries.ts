// Trying a locked publisher call again after it was cancelled at the hold limit (db/repair.ts,
// lockedCall): the cancelled call rolled back and changed nothing, and a host busy for a moment
// (CPU, I/O) can make one call that fits the limit overrun it. A call too large for the limit
// fails every time, so it is tried only twice more. Inspection and repair share this.

import { setTimeout as sleep } from 'node:timers/promises';
import { HoldLimitError } from '../db/repair.js';

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
