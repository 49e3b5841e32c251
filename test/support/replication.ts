// What a test reads of the pair's replication: whether the subscription's apply worker failed,
// and whether a new row still arrives.

import type { Pair } from '../../dev/pair.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Apply and sync errors the pair's subscription has counted. */
export async function applyErrorCount(pair: Pair): Promise<number> {
  const { rows } = await pair.sub.query<{ n: string }>(
    'SELECT apply_error_count + sync_error_count AS n FROM pg_stat_subscription_stats WHERE subname = $1',
    [pair.name],
  );
  return Number(rows[0]?.n);
}

/** A row (id, 'late') inserted on the publisher arrives on the subscriber within 15 s. */
export async function rowArrives(pair: Pair, table: string, id: number): Promise<boolean> {
  await pair.pub.query(`INSERT INTO ${table} VALUES ($1, 'late')`, [id]);
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if ((await pair.sub.query(`SELECT 1 FROM ${table} WHERE id = $1`, [id])).rowCount === 1) return true;
    await sleep(100);
  }
  return false;
}
