// A crash of the subscriber between inspection and repair (issue 17 review, 4b), against real
// replication on a subscriber server of this file's own: a backend killed with SIGKILL makes the
// postmaster run crash recovery, as after an immediate shutdown, which empties every UNLOGGED
// table, syncguard.local_write among them. A local write made after the inspection was then no
// longer recorded, so the repair took the moved row for one moved by replication and overwrote it.
// Now the inspection is gone with it (syncguard.inspection is unlogged too, and carries
// local_write's epoch), and the repair is refused.

import { afterAll, describe, expect, it } from 'vitest';
import { startCluster, superuserDsn } from '../../dev/cluster.js';
import { plainNode } from '../../dev/plain-node.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.crash_rows';

const ctx = usePair({
  label: 'rcrash',
  tables: [T],
  subscriber: () => startCluster('crash-subscriber', 18),
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i, 0 FROM generate_series(0, 999) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const opened: Client[] = [];

async function superuser(): Promise<Client> {
  const c = await plainNode(superuserDsn(ctx.pair.subscriber, ctx.pair.name));
  opened.push(c);
  return c;
}

afterAll(async () => {
  // the pair's own superuser connection died in the crash: drop the subscription here, so that the
  // shared publisher's slot and database can be dropped after this file
  const c = await superuser().catch(() => null);
  await c?.query(`DROP SUBSCRIPTION IF EXISTS ${ctx.pair.name}`).catch(() => {});
  await Promise.all(opened.map((o) => o.close().catch(() => {})));
});

/** Kills one backend of the subscriber with SIGKILL and waits until the server and its apply worker are back. */
async function crashSubscriber(): Promise<void> {
  const victim = await superuser();
  const pid = Number((await victim.query<{ p: number }>('SELECT pg_backend_pid() AS p')).rows[0]?.p);
  process.kill(pid, 'SIGKILL');
  const deadline = Date.now() + 60_000;
  for (;;) {
    if (Date.now() > deadline) throw new Error('the subscriber did not come back from crash recovery within 60 s');
    await sleep(200);
    try {
      const c = await superuser();
      const { rows } = await c.query<{ pid: number | null }>('SELECT pid FROM pg_stat_subscription WHERE subname = $1', [ctx.pair.name]);
      if (rows.some((r) => r.pid !== null)) return;
    } catch {
      // still in recovery
    }
  }
}

describe('4b: a crash between inspection and repair', () => {
  it('refuses the repair instead of overwriting a local write made after the inspection', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = 10`);
    await settle(ctx.sub);
    const { plan } = await planBucket(ctx.pub, ctx.sub, parseTableName(T), '0', { pair: 'c' });
    expect(plan.changes.map((c) => c.key)).toEqual(['(10)']);
    await ctx.pair.pub.query(`UPDATE ${T} SET n = n + 1 WHERE id = 10`); // the row also moves by an applied change
    await ctx.pair.catchUp();
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'local after inspection' WHERE id = 10`);
    const before = await superuser();
    expect((await before.query('SELECT count(*)::int AS n FROM syncguard.local_write')).rows[0]?.n).toBeGreaterThan(0);
    await crashSubscriber();
    const after = await superuser();
    expect((await after.query('SELECT count(*)::int AS n FROM syncguard.local_write')).rows[0]?.n).toBe(0); // emptied by recovery
    await ctx.pair.catchUp();
    const sub = await connect(ctx.pair.subscriberDsn, 'subscriber');
    opened.push(sub);
    const o = await applyPlan(ctx.pub, sub, { id: 'after-crash', ...plan }, { deadline: Deadline.after(30_000) });
    expect(o.changes).toEqual([expect.objectContaining({ key: '(10)', outcome: 'failed', error: expect.stringMatching(/not known/) })]);
    const { rows } = await after.query(`SELECT v FROM ${T} WHERE id = 10`);
    expect(rows).toEqual([{ v: 'local after inspection' }]); // before the fix: overwritten with the publisher's row
  });
});
