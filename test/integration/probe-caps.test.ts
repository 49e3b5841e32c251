// Issue 17 item 14: probes are sized from the catalogue's row counts, which are stale for exactly
// the buckets probes target (dirty, never computed, 0 after lost state). A bucket that holds many
// more rows than its count says kept the publisher's SHARE lock, and writers waiting, for as long
// as reading it took. The probe statement is now bounded (statement_timeout: the lock wait plus
// twice the hold budget): it is cancelled, nothing is sent, writers go on, and the bucket is left
// out with the reason.

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import type { Client } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { resolveByProbes } from '../../functions/flows/probes.js';
import { register } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const ctx = usePair({
  label: 'probe_caps',
  tables: ['public.big'],
  async prepare(pair) {
    await pair.both('CREATE TABLE public.big (id int PRIMARY KEY, a text, b text)');
    await pair.pub.query(`INSERT INTO public.big SELECT i, md5(i::text), md5((i * 7)::text) FROM generate_series(1, 300000) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, 'public.big', { bucketSize: 1_000_000 });
  },
});

const nodeId = async (c: Client) => (await c.query<{ id: string }>('SELECT syncguard.node_id()::text AS id')).rows[0]?.id as string;

describe('probe caps', () => {
  it('a bucket whose count is stale (0) does not hold writers back for as long as reading it takes', async () => {
    const w = await ctx.pair.ownerClient('publisher');
    let stop = false;
    let worst = 0;
    let n = 0;
    const writer = (async () => {
      while (!stop) {
        const t = Date.now();
        await w.query('INSERT INTO public.big VALUES (1000000 + $1, $2, $2)', [n++, 'w']);
        worst = Math.max(worst, Date.now() - t);
        await new Promise((r) => setTimeout(r, 5));
      }
    })();
    await new Promise((r) => setTimeout(r, 200));
    const t0 = Date.now();
    const out = await resolveByProbes(
      ctx.pub,
      ctx.sub,
      [
        {
          table: parseTableName('public.big'),
          scheme: 'int',
          subscription: ctx.pair.name,
          targets: [{ bucket: '0', rows: 0 }],
          tableRows: 0,
        },
      ],
      { origin: await nodeId(ctx.pub), target: await nodeId(ctx.sub), deadline: Deadline.after(20_000) },
    );
    const took = Date.now() - t0;
    await new Promise((r) => setTimeout(r, 200));
    stop = true;
    await writer;
    await w.close();
    const [o] = out.get(parseTableName('public.big')) ?? [];
    expect(o?.state).toBe('left_out');
    expect(o && 'reason' in o ? o.reason : '').toMatch(/took longer than 70 ms, so the probe was cancelled and writers released/);
    expect(took).toBeLessThan(1000);
    expect(worst).toBeLessThan(400);
  });
});
