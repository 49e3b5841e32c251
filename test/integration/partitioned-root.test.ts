// Partitioned tables published as their root (publish_via_partition_root = true), with the
// subscriber partitioned differently (range on the publisher, hash on the subscriber) or not at
// all, as in migrations (issue 11): register --all registers each root once, verify is exact under
// writes to the leaves, and a difference is found and repaired in its bucket.

import { describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { usePair } from '../support/use-pair.js';

const ctx = usePair({
  label: 'partroot',
  tables: ['public.orders', 'public.events'],
  publicationSql: (pair) => `CREATE PUBLICATION ${pair.name} FOR TABLE orders, events WITH (publish_via_partition_root = true)`,
  async prepare(pair) {
    await pair.asOwner(
      'publisher',
      `CREATE TABLE orders (id bigint PRIMARY KEY, region text NOT NULL, total numeric) PARTITION BY RANGE (id);
       CREATE TABLE orders_lo PARTITION OF orders FOR VALUES FROM (MINVALUE) TO (2000);
       CREATE TABLE orders_hi PARTITION OF orders FOR VALUES FROM (2000) TO (MAXVALUE);
       CREATE TABLE events (id uuid PRIMARY KEY, kind text, at timestamptz) PARTITION BY HASH (id);
       CREATE TABLE events_0 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 0);
       CREATE TABLE events_1 PARTITION OF events FOR VALUES WITH (MODULUS 2, REMAINDER 1);`,
    );
    await pair.asOwner(
      'subscriber',
      `CREATE TABLE orders (id bigint PRIMARY KEY, region text NOT NULL, total numeric) PARTITION BY HASH (id);
       CREATE TABLE orders_h0 PARTITION OF orders FOR VALUES WITH (MODULUS 3, REMAINDER 0);
       CREATE TABLE orders_h1 PARTITION OF orders FOR VALUES WITH (MODULUS 3, REMAINDER 1);
       CREATE TABLE orders_h2 PARTITION OF orders FOR VALUES WITH (MODULUS 3, REMAINDER 2);
       CREATE TABLE events (id uuid PRIMARY KEY, kind text, at timestamptz);`,
    );
    await pair.pub.query(`
      INSERT INTO orders SELECT i, 'r' || (i % 5), i * 1.5 FROM generate_series(1, 4000) i;
      INSERT INTO events SELECT md5(i::text)::uuid, 'k' || (i % 3), timestamptz '2026-01-01' + i * interval '1 minute'
        FROM generate_series(1, 2000) i;`);
  },
});

const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];
const verify = async (): Promise<{ status: string; mismatches: { table: string; bucket: string }[] }> =>
  JSON.parse((await cli('verify', ...pairArgs(), '--json')).out[0] as string);

describe('partitioned tables published as their root, partitioned differently on the subscriber', () => {
  it('registers every root once with --all, and verifies in sync', async () => {
    const r = await cli('register', '--all', '--bucket-size', '250', ...pairArgs());
    expect(r.err).toEqual([]);
    const out = r.out.join('\n');
    expect(out).toMatch(/public\.orders: registered/);
    expect(out).toMatch(/public\.events: registered/);
    expect(out).not.toMatch(/orders_lo|events_0/);
    for (const dsn of [ctx.pair.publisherDsn, ctx.pair.subscriberDsn]) expect((await cli('drain', '--dsn', dsn)).code).toBe(0);
    expect((await verify()).status).toBe('in_sync');
    const status = await cli('status', '--dsn', ctx.pair.subscriberDsn);
    expect(status.out.join('\n')).not.toMatch(/published but not monitored/);
  });

  it('stays exact while the publisher writes straight into its leaves', async () => {
    await ctx.pair.pub.query(`UPDATE orders_lo SET total = total + 1 WHERE id % 7 = 0;
                              UPDATE orders_hi SET region = 'moved' WHERE id % 11 = 0;
                              DELETE FROM events_1 WHERE kind = 'k1';
                              INSERT INTO orders_hi VALUES (9000, 'new', 1)`);
    // no drain in between: verify drains what it verifies, and probes settle the rest
    expect((await verify()).status).toBe('in_sync');
  });

  it('finds a subscriber-side difference in its bucket and repairs it', async () => {
    await ctx.pair.sub.query(`DELETE FROM orders WHERE id = 123; UPDATE events SET kind = 'drift' WHERE id = md5('10')::uuid`);
    const v = await verify();
    expect(v.status).toBe('diverged');
    expect(v.mismatches.map((m) => m.table).sort()).toEqual(['public.events', 'public.orders']);
    for (const m of v.mismatches) {
      const r = await cli('repair', ...pairArgs(), '--table', m.table, '--bucket', m.bucket, '--yes');
      expect(r.err).toEqual([]);
      expect(r.out[0]).toMatch(/: 1 applied; bucket now equal/);
    }
    expect((await verify()).status).toBe('in_sync');
    const { rows } = await ctx.pair.sub.query('SELECT total::text FROM orders WHERE id = 123');
    expect(rows).toEqual([{ total: '184.5' }]);
  });
});
