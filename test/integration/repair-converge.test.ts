// A repair converges on rows the publisher keeps changing (issue 17, item 15), against real
// replication: seven drifts over int (one row with an out-of-line TOASTed value of incompressible
// data), uuid, composite and text keys; each diverged bucket is repaired once while a publisher
// writer updates two of the drifted rows every 10 ms and touches another column of the TOAST row.
// Afterwards the tables are equal and verify says in sync. A local write on the subscriber after the
// inspection is still never overwritten, even when the row also moved by applied changes.

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const INT = 'public.c_int';
const UUID = 'public.c_uuid';
const COMP = 'public.c_comp';
const TEXT = 'public.c_text';
const ALL = [INT, UUID, COMP, TEXT];

const ctx = usePair({
  label: 'rconv',
  tables: ALL,
  async prepare(pair) {
    await pair.both(`
      CREATE TABLE ${INT} (id int PRIMARY KEY, v text, n int NOT NULL DEFAULT 0, big text);
      ALTER TABLE ${INT} ALTER COLUMN big SET STORAGE EXTERNAL;
      CREATE TABLE ${UUID} (id uuid PRIMARY KEY, v text);
      CREATE TABLE ${COMP} (a int, b text COLLATE "C", v int, PRIMARY KEY (a, b));
      CREATE TABLE ${TEXT} (code text PRIMARY KEY, v jsonb);`);
    await pair.pub.query(`
      INSERT INTO ${INT} SELECT i, 'v' || i, 0, CASE WHEN i = 107
             THEN (SELECT string_agg(md5(random()::text || g), '') FROM generate_series(1, 400) g) END
        FROM generate_series(1, 1000) i;
      INSERT INTO ${UUID} SELECT md5('u' || i)::uuid, 'u' || i FROM generate_series(1, 1000) i;
      INSERT INTO ${COMP} SELECT i / 10, 'k' || (i % 10), i FROM generate_series(1, 1000) i;
      INSERT INTO ${TEXT} SELECT 'code-' || i, jsonb_build_object('i', i) FROM generate_series(1, 500) i;`);
  },
  async ready({ pub, sub }) {
    for (const t of ALL) await register(pub, sub, t, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function contents(side: 'pub' | 'sub', table: string): Promise<string> {
  const c = side === 'pub' ? ctx.pair.pub : ctx.pair.sub;
  const { rows } = await c.query<{ h: string }>(`SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h FROM ${table} t`);
  return rows[0]?.h ?? '';
}

describe('item 15: a repair converges on rows the publisher keeps changing', () => {
  it('repairs seven drifts once each while a writer updates two of them every 10 ms and touches the TOAST row', async () => {
    const uuids = (await ctx.pair.pub.query<{ id: string }>(`SELECT id::text FROM ${UUID} ORDER BY id LIMIT 2`)).rows.map((r) => r.id);
    const [busyUuid, lostUuid] = uuids as [string, string];
    await ctx.pair.sub.query(`
      UPDATE ${INT} SET v = 'drift' WHERE id = 15;
      DELETE FROM ${INT} WHERE id = 16;
      UPDATE ${INT} SET big = left(big, 100) WHERE id = 107;
      UPDATE ${UUID} SET v = 'drift' WHERE id = '${busyUuid}';
      DELETE FROM ${UUID} WHERE id = '${lostUuid}';
      UPDATE ${COMP} SET v = -1 WHERE a = 3 AND b = 'k5';
      DELETE FROM ${TEXT} WHERE code = 'code-8';`);
    await settle(ctx.sub);
    const buckets: [string, string][] = [];
    for (const t of ALL) {
      const v = await verifyPair(ctx.pub, ctx.sub, { table: parseTableName(t), deadline: Deadline.after(20_000) });
      expect(v.status).toBe('diverged');
      for (const m of v.mismatches) buckets.push([t, m.bucket]);
    }
    const writer = await connect(ctx.pair.publisherDsn, 'publisher');
    let stop = false;
    let writes = 0;
    const writing = (async () => {
      while (!stop) {
        await writer.query(`UPDATE ${INT} SET v = 'w' || $1, n = n + 1 WHERE id = 15`, [writes]);
        await writer.query(`UPDATE ${UUID} SET v = 'w' || $1 WHERE id = $2`, [writes, busyUuid]);
        await writer.query(`UPDATE ${INT} SET n = n + 1 WHERE id = 107`);
        writes++;
        await sleep(10);
      }
    })();
    const outcomes: string[] = [];
    try {
      await sleep(100);
      for (const [t, b] of buckets) {
        const { plan } = await planBucket(ctx.pub, ctx.sub, parseTableName(t), b, { pair: 'c' });
        await sleep(50); // the writer moves the busy rows between inspection and repair
        const o = await applyPlan(ctx.pub, ctx.sub, { id: `conv-${t}-${b}`, ...plan });
        outcomes.push(...o.changes.map((c) => `${t} ${c.key} ${c.outcome}`));
      }
    } finally {
      stop = true;
      await writing;
      await writer.close();
    }
    expect(writes).toBeGreaterThan(10);
    expect(outcomes.filter((o) => !/ (applied|already_equal)$/.test(o))).toEqual([]);
    await ctx.pair.catchUp();
    for (const t of ALL) {
      expect(await contents('sub', t), t).toBe(await contents('pub', t));
      expect((await verifyPair(ctx.pub, ctx.sub, { table: parseTableName(t), deadline: Deadline.after(20_000) })).status, t).toBe(
        'in_sync',
      );
    }
  });

  it('never overwrites a local write made after the inspection, also on a row that moved by applied changes', async () => {
    await ctx.pair.sub.query(`UPDATE ${INT} SET v = 'drift' WHERE id = 210`);
    await settle(ctx.sub);
    const { plan } = await planBucket(ctx.pub, ctx.sub, parseTableName(INT), '2', { pair: 'c' });
    expect(plan.rowCount).toBe(1);
    await ctx.pair.pub.query(`UPDATE ${INT} SET n = n + 1 WHERE id = 210`); // the row moves by an applied change
    await ctx.pair.catchUp();
    await ctx.pair.sub.query(`UPDATE ${INT} SET v = 'local after inspection' WHERE id = 210`);
    const o = await applyPlan(ctx.pub, ctx.sub, { id: 'local-after', ...plan });
    expect(o.changes.map((c) => c.outcome)).toEqual(['changed_since_inspection']);
    const { rows } = await ctx.pair.sub.query(`SELECT v FROM ${INT} WHERE id = 210`);
    expect(rows).toEqual([{ v: 'local after inspection' }]);
  });
});
