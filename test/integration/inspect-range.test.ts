// Issue 17 demo: inspecting one range bucket of a composite-key table (150,000 rows, 150 buckets
// of 1,000) was cancelled at the 50 ms hold limit every time: the bucket's rows were found through
// the key index, but each was also checked with the generated bucket function (a SECURITY DEFINER
// plpgsql lookup, ~60 us a row). Since 0027 the check is inline record comparisons, and the probe
// stays within the limit; it still lists exactly the bucket's rows (first, middle, last bucket).

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { sendRowsProbe } from '../../functions/db/repair.js';
import { regId, register } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const ctx = usePair({
  label: 'inspect_range',
  tables: ['public.order_lines'],
  async prepare(pair) {
    await pair.both('CREATE TABLE public.order_lines (order_id bigint, line int, sku text, qty int, PRIMARY KEY (order_id, line))');
    await pair.pub.query(
      `INSERT INTO public.order_lines SELECT i / 3, i % 3, 'SKU-' || (i % 250), 1 + i % 4 FROM generate_series(3, 150000) i`,
    );
  },
  async ready({ pub, sub }) {
    await register(pub, sub, 'public.order_lines', { bucketSize: 1000 });
    await pub.query('ANALYZE public.order_lines');
  },
});

describe('inspect a range bucket of a composite-key table', () => {
  it('lists the bucket within the hold limit, exactly the rows the bucket function puts there', async () => {
    const id = await regId(ctx.pub, 'public.order_lines');
    const reg = await ctx.pub.query<{ scheme: string; n: number }>(
      'SELECT scheme, bucket_count AS n FROM syncguard.registration WHERE reg_id = $1',
      [id],
    );
    expect(reg.rows[0]).toEqual({ scheme: 'range', n: 150 });
    const target = (await ctx.sub.query<{ id: string }>('SELECT syncguard.node_id()::text AS id')).rows[0]?.id as string;
    for (const bucket of ['94', '0', '149']) {
      const { rows: expected } = await ctx.pub.query<{ k: string }>(
        // the bucket function over the bucket's order ids and one either side (it is slow: not the whole table)
        `SELECT ROW(t.order_id, t.line)::text AS k FROM public.order_lines t, syncguard.registration g
          WHERE g.reg_id = $2 AND syncguard.bucket_of_${id}(t.order_id, t.line) = $1
            AND ($1 = 0 OR t.order_id >= (g.bounds -> ($1::int - 1) ->> 0)::bigint - 1)
            AND ($1 = g.bucket_count - 1 OR t.order_id <= (g.bounds -> $1::int ->> 0)::bigint + 1)`,
        [Number(bucket), id],
      );
      const got = await sendRowsProbe(ctx.pub, {
        table: parseTableName('public.order_lines'),
        bucket,
        target,
        subscription: ctx.pair.name,
        lockTimeoutMs: 20,
        scheme: 'range',
      });
      expect([...got.rows.keys()].sort()).toEqual(expected.map((r) => r.k).sort());
      expect(got.rows.size).toBeGreaterThan(500);
      expect(got.computeMs).toBeLessThan(25);
    }
  });
});
