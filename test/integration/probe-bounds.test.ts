// Issue 17 item 14, the subscriber's side: probes target dirty or never computed buckets, whose
// catalogue counts are stale (0 after a loss, or rows the catalogue never saw), and the cap of a
// probe (syncguard._probe_caps, 500 000 rows) was checked against those counts. The subscriber's
// trigger, inside the apply worker, then read the whole bucket, however large it really was,
// holding up replication for as long. Both sides now count the rows a probe reads, up to one more
// than the cap: the subscriber answers "not ok" (and replication goes on), the publisher refuses
// before it takes its lock.

import { describe, expect, it } from 'vitest';
import { parseTableName, TableRef } from '../../functions/core/identifiers.js';
import type { Client } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { sendProbe } from '../../functions/db/probe.js';
import { resolveByProbes } from '../../functions/flows/probes.js';
import { applyErrorCount, rowArrives } from '../support/replication.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.wide';
const CAP = 500_000;

const ctx = usePair({
  label: 'probe_bounds',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' FROM generate_series(1, 10) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 1_000_000 });
    await settle(pub);
    await settle(sub);
  },
});

const nodeId = async (c: Client) => (await c.query<{ id: string }>('SELECT syncguard.node_id()::text AS id')).rows[0]?.id as string;
const catalogueRows = async (c: Client, bucket: number) =>
  Number(
    (
      await c.query<{ n: string }>(
        `SELECT coalesce(sum(b.row_count), 0) AS n FROM syncguard.bucket b JOIN syncguard.registrations g USING (reg_id)
          WHERE g.table_name = 'wide' AND b.bucket = $1`,
        [bucket],
      )
    ).rows[0]?.n,
  );

describe('a probe of a bucket whose catalogue count is stale', () => {
  it('the subscriber answers not ok when the bucket really holds more rows than the cap, and replication keeps running', async () => {
    // rows the subscriber's catalogue never saw (its marking trigger off while they were written,
    // as after a loss of the unlogged state): bucket 0 holds 10 rows on the publisher, more than
    // the cap on the subscriber, whose catalogue still says 10
    await ctx.pair.sub.query(`ALTER TABLE ${T} DISABLE TRIGGER syncguard_insert`);
    await ctx.pair.sub.query(`INSERT INTO ${T} SELECT i, 'local' FROM generate_series(1000, 1000 + ${CAP}) i`);
    await ctx.pair.sub.query(`ALTER TABLE ${T} ENABLE ALWAYS TRIGGER syncguard_insert`);
    expect(await catalogueRows(ctx.sub, 0)).toBe(10);

    const out = await resolveByProbes(
      ctx.pub,
      ctx.sub,
      [{ table: parseTableName(T), scheme: 'int', subscription: ctx.pair.name, targets: [{ bucket: '0', rows: 0 }], tableRows: 0 }],
      { origin: await nodeId(ctx.pub), target: await nodeId(ctx.sub), deadline: Deadline.after(30_000) },
    );
    const [o] = out.get(parseTableName(T)) ?? [];
    expect(o?.state).toBe('left_out');
    expect(o && 'reason' in o ? o.reason : '').toMatch(
      new RegExp(`the subscriber could not answer the probe: the probe would read about ${CAP + 1} rows, more than the cap of ${CAP}`),
    );
    expect(await rowArrives(ctx.pair, T, 900)).toBe(true);
    expect(await applyErrorCount(ctx.pair)).toBe(0);
    await ctx.pair.sub.query(`DELETE FROM ${T} WHERE v = 'local'`);
  });

  it('the publisher refuses such a bucket before it takes its lock, by the same count', async () => {
    // bucket 1 on the publisher: more rows than the cap, none of them in its catalogue yet
    await ctx.pair.pub.query(`INSERT INTO ${T} SELECT i, 'p' FROM generate_series(1000000, 1000000 + ${CAP}) i`);
    expect(await catalogueRows(ctx.pub, 1)).toBe(0);
    const target = await nodeId(ctx.sub);
    const sent = sendProbe(ctx.pub, {
      table: TableRef.of('public', 'wide'),
      buckets: ['1'],
      target,
      subscription: ctx.pair.name,
      lockTimeoutMs: 1000,
    });
    await expect(sent).rejects.toMatchObject({ code: '54000' });
    await expect(sent).rejects.toThrow(new RegExp(`would read about ${CAP + 1} rows, more than the cap of ${CAP}`));
    // nothing was sent: no probe of bucket 1 waits for an answer
    const { rows } = await ctx.pair.pub.query<{ id: string }>("SELECT id::text FROM syncguard.probe WHERE request->'buckets' = '[1]'");
    expect(rows).toEqual([]);
    await ctx.pair.catchUp();
    expect(await rowArrives(ctx.pair, T, 901)).toBe(true);
    expect(await applyErrorCount(ctx.pair)).toBe(0);
  });
});
