// Issue 17 item 5: row filters went stale. The publisher hashes only the rows it publishes, with
// the filter read once at registration; after ALTER PUBLICATION ... WHERE it hashed another row
// set than it published, and health never looked. With publish_via_partition_root = false and a
// different filter per partition, the filters were OR-ed across the leaves (or dropped when one was
// NULL). Now health rechecks the filter (not comparable until registered again) and each leaf's
// own filter is applied.

import { describe, expect, it } from 'vitest';
import { TableRef } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { registerOnPair } from '../../functions/flows/pair-setup.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const publication = (name: string, flt: string) =>
  `CREATE PUBLICATION ${name} FOR TABLE public.flt WHERE (${flt}),
     public.pt_a WHERE (n % 2 = 0), public.pt_b WHERE (n % 3 = 0),
     public.pq_a WHERE (n % 2 = 0), public.pq_b`;

const ctx = usePair({
  label: 'trust_rf',
  tables: ['public.flt', 'public.pt_a', 'public.pt_b', 'public.pq_a', 'public.pq_b'],
  publicationSql: (pair) => publication(pair.name, 'id <= 500'),
  async prepare(pair) {
    await pair.both(`
      CREATE TABLE public.flt (id int PRIMARY KEY, n int);
      CREATE TABLE public.pt (id int PRIMARY KEY, n int) PARTITION BY RANGE (id);
      CREATE TABLE public.pt_a PARTITION OF public.pt FOR VALUES FROM (0) TO (1000);
      CREATE TABLE public.pt_b PARTITION OF public.pt FOR VALUES FROM (1000) TO (2000);
      CREATE TABLE public.pq (id int PRIMARY KEY, n int) PARTITION BY RANGE (id);
      CREATE TABLE public.pq_a PARTITION OF public.pq FOR VALUES FROM (0) TO (1000);
      CREATE TABLE public.pq_b PARTITION OF public.pq FOR VALUES FROM (1000) TO (2000);`);
    await pair.pub.query(`
      INSERT INTO public.flt SELECT i, i FROM generate_series(1, 1000) i;
      INSERT INTO public.pt SELECT i, i FROM generate_series(1, 1999) i;
      INSERT INTO public.pq SELECT i, i FROM generate_series(1, 1999) i;`);
  },
  async ready({ pub, sub }) {
    for (const t of ['public.flt', 'public.pt', 'public.pq']) await register(pub, sub, t, { bucketSize: 250 });
    await settle(pub);
    await settle(sub);
  },
});

const verifyOne = (table: string) =>
  verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(20_000), table: TableRef.of('public', table) });

describe('row filters', () => {
  it('applies each partition its own filter (publish_via_partition_root = false)', async () => {
    // pt: n % 2 on one leaf, n % 3 on the other; pq: a filter on one leaf and none on the other
    for (const t of ['pt', 'pq']) {
      const v = await verifyOne(t);
      expect({ table: t, status: v.status, mismatches: v.mismatches.map((m) => m.bucket) }).toEqual({
        table: t,
        status: 'in_sync',
        mismatches: [],
      });
    }
    // and a change on the subscriber in a published row is still found
    await ctx.pair.sub.query('UPDATE public.pt SET n = -1 WHERE id = 1500');
    const v = await verifyOne('pt');
    expect(v.status).toBe('diverged');
    expect(v.mismatches.map((m) => m.bucket)).toEqual(['6']);
  });

  it('rechecks the filter: after ALTER PUBLICATION ... WHERE the table is not compared until registered again', async () => {
    expect((await verifyOne('flt')).status).toBe('in_sync');
    await ctx.pair.pub.query(
      `ALTER PUBLICATION ${ctx.pair.name} DROP TABLE public.flt; ALTER PUBLICATION ${ctx.pair.name} ADD TABLE public.flt WHERE (id <= 300)`,
    );
    const v = await verifyOne('flt');
    expect(v.status).toBe('incomplete');
    expect(v.tables[0]?.state).toBe('uncomparable');
    expect(v.tables[0]?.reason).toMatch(
      /publisher: the publications' row filter changed since registration \(now \(\(id <= 300\)\), registered \(\(id <= 500\)\)\).*syncguard register --table public\.flt --refresh/,
    );
    // registered again, the new filter is the one hashed: the subscriber still holds rows 301-500,
    // which the publication no longer sends, and they are reported
    const r = await registerOnPair(ctx.pub, ctx.sub, { table: TableRef.of('public', 'flt'), refresh: true });
    expect(r.config.fingerprint).toMatch(/^sg/);
    await settle(ctx.pub);
    await settle(ctx.sub);
    const after = await verifyOne('flt');
    expect(after.status).toBe('diverged');
    expect(after.mismatches.map((m) => m.bucket).sort()).toEqual(['1', '2']);
  });
});
