// The dirty queue loses no mark: writers and two drainers race for 20 s on the
// publisher (and replication applies the same changes on the subscriber, drained by its own
// session); after a final drain every stored hash equals a from-scratch recompute.

import { expect, it } from 'vitest';
import { plainNode } from '../../dev/plain-node.js';
import type { Client } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { drain } from '../../functions/db/drain.js';
import { catalogue, differingBuckets, fromScratch, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.hot';
const RACE_MS = 20_000;
/** deadlock_detected, unique_violation: conflicts between the writers themselves. */
const WRITER_CONFLICTS = new Set(['40P01', '23505']);
const ctx = usePair({
  label: 'race',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, n int NOT NULL, t text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 0, 'r' || i FROM generate_series(1, 2000) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 20 }); // 100 buckets
    await settle(pub);
    await settle(sub);
  },
});

async function loop(dsn: string, until: number, body: (c: Client, i: number) => Promise<void>): Promise<number> {
  const c = await plainNode(dsn);
  let i = 0;
  try {
    while (Date.now() < until) await body(c, i++);
  } finally {
    await c.close();
  }
  return i;
}

it(
  'leaves 0 stale buckets after writers and two drainers race for 20 s',
  async () => {
    const until = Date.now() + RACE_MS;
    const rnd = (n: number) => 1 + Math.floor(Math.random() * n);
    const writers = [0, 1, 2, 3].map((w) =>
      loop(ctx.pair.publisherDsn, until, async (c, i) => {
        // Multi-statement transactions touching several buckets, with inserts, deletes and key
        // moves. Writers may deadlock with each other or collide on a moved key; such a
        // transaction rolls back, as an application's would, and the race goes on.
        try {
          await c.query('BEGIN');
          await c.query(`UPDATE ${T} SET n = n + 1 WHERE id = $1`, [rnd(2000)]);
          await c.query(`UPDATE ${T} SET n = n + 1, t = md5(t) WHERE id BETWEEN $1 AND $1 + 3`, [rnd(2000)]);
          if (i % 5 === 0) await c.query(`DELETE FROM ${T} WHERE id = $1`, [rnd(2000)]);
          if (i % 5 === 1) await c.query(`INSERT INTO ${T} VALUES ($1, 0, 'new') ON CONFLICT (id) DO UPDATE SET t = 'again'`, [rnd(2000)]);
          if (i % 7 === 2)
            await c.query(`UPDATE ${T} SET id = id + 5000 WHERE id = $1 AND NOT EXISTS (SELECT 1 FROM ${T} WHERE id = $1 + 5000)`, [
              rnd(2000),
            ]);
          await c.query(w % 2 === 0 ? 'COMMIT' : i % 9 === 0 ? 'ROLLBACK' : 'COMMIT');
        } catch (err) {
          await c.query('ROLLBACK');
          if (!WRITER_CONFLICTS.has((err as { code?: string }).code ?? '')) throw err;
        }
      }),
    );
    // two drain runs of the real drainer (half-second boxes) on the publisher, and raw tiny
    // batches on the subscriber, where the apply worker is the writer
    const drainRuns = [0, 1].map(() =>
      loop(ctx.pair.publisherDsn, until, async (c) => {
        const s = await drain(c, { deadline: Deadline.at(Math.min(until, Date.now() + 500)), resweepIntervalMs: null });
        if (s.stoppedBecause === 'error') throw new Error(s.error);
      }),
    );
    const tiny = loop(ctx.pair.subscriberDsn, until, async (c) => {
      await c.query('SELECT syncguard.drain_batch(7)');
    });
    const [writes, runs, tinyBatches] = await Promise.all([Promise.all(writers), Promise.all(drainRuns), tiny]);
    expect(writes.reduce((a, b) => a + b)).toBeGreaterThan(500);
    expect(runs.every((n) => n > 10)).toBe(true);
    expect(tinyBatches).toBeGreaterThan(50);

    await ctx.pair.catchUp();
    await settle(ctx.pub);
    await settle(ctx.sub);
    const stored = await catalogue(ctx.pub, T);
    expect(differingBuckets(stored, await fromScratch(ctx.pub, T))).toEqual([]);
    expect(differingBuckets(await catalogue(ctx.sub, T), await fromScratch(ctx.sub, T))).toEqual([]);
    expect(differingBuckets(stored, await catalogue(ctx.sub, T))).toEqual([]);
  },
  RACE_MS + 60_000,
);
