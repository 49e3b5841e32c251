// A read snapshot held open across several reads of one node: verify reads a side's catalogue
// overview and then its buckets in the same REPEATABLE READ, read-only transaction, so the two
// reads agree. Ending it never waits long: a frozen node would not answer the ROLLBACK.

import type { Client } from './connect.js';

/** Starts a REPEATABLE READ, read-only transaction: later reads on this client see its snapshot. */
export async function beginSnapshot(c: Client): Promise<void> {
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
}

/** Ends a snapshot that was read through. */
export async function endSnapshot(c: Client): Promise<void> {
  await c.query('COMMIT');
}

/** Ends a snapshot left open by an error, waiting at most waitMs (the server ends it with the connection anyway). */
export async function abandonSnapshot(c: Client, waitMs: number): Promise<void> {
  await c.withQueryTimeout(waitMs, () => c.query('ROLLBACK').catch(() => {}));
}
