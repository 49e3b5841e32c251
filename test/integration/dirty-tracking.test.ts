// Triggers mark buckets dirty on both sides: statement triggers on the publisher, ALWAYS row
// triggers on the subscriber that fire for changes applied by the subscription.

import { beforeEach, describe, expect, it } from 'vitest';
import { catalogue, differingBuckets, dirtyBuckets, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.items';
const ctx = usePair({
  label: 'dirty',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id bigint PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 100) i`);
  },
  ready: ({ pub, sub }) => register(pub, sub, T, { bucketSize: 10 }),
});

beforeEach(async () => {
  await settle(ctx.pub);
  await settle(ctx.sub);
});

describe('dirty tracking', () => {
  it('marks the buckets of replicated changes on the subscriber, and of local changes on the publisher', async () => {
    await ctx.pair.pub.query(`UPDATE ${T} SET v = 'x' WHERE id IN (5, 25)`);
    await ctx.pair.pub.query(`DELETE FROM ${T} WHERE id = 61`);
    await ctx.pair.pub.query(`INSERT INTO ${T} VALUES (1000, 'new')`);
    await ctx.pair.catchUp();
    expect(await dirtyBuckets(ctx.pub, T)).toEqual(['0', '2', '6', '100']);
    expect(await dirtyBuckets(ctx.sub, T)).toEqual(['0', '2', '6', '100']);
    await settle(ctx.pub);
    await settle(ctx.sub);
    expect(differingBuckets(await catalogue(ctx.pub, T), await catalogue(ctx.sub, T))).toEqual([]);
  });

  it('marks both the old and the new bucket of a key change', async () => {
    await ctx.pair.pub.query(`UPDATE ${T} SET id = 4700 WHERE id = 3`);
    await ctx.pair.catchUp();
    expect(await dirtyBuckets(ctx.pub, T)).toEqual(['0', '470']);
    expect(await dirtyBuckets(ctx.sub, T)).toEqual(['0', '470']);
  });

  it('marks every bucket of the table on TRUNCATE, replicated or local', async () => {
    const known = [...(await catalogue(ctx.sub, T)).keys()].sort((a, b) => Number(a) - Number(b));
    expect(known.length).toBeGreaterThan(5);
    await ctx.pair.pub.query(`TRUNCATE ${T}`);
    await ctx.pair.catchUp();
    expect(await dirtyBuckets(ctx.sub, T)).toEqual(known);
    expect(await dirtyBuckets(ctx.pub, T)).toEqual(known);
    await settle(ctx.pub);
    await settle(ctx.sub);
    expect((await catalogue(ctx.sub, T)).size).toBe(0);
    expect((await catalogue(ctx.pub, T)).size).toBe(0);
  });

  it('marks local writes on the subscriber, which replication will never undo', async () => {
    await ctx.pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 30) i`);
    await ctx.pair.catchUp();
    await settle(ctx.sub);
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = 15`);
    expect(await dirtyBuckets(ctx.sub, T)).toEqual(['1']);
    await settle(ctx.sub);
    await settle(ctx.pub);
    expect(differingBuckets(await catalogue(ctx.pub, T), await catalogue(ctx.sub, T))).toEqual(['1']);
  });

  it('keeps a single mark per bucket and transaction for a replicated bulk change', async () => {
    await ctx.pair.pub.query(`INSERT INTO ${T} SELECT i, 'bulk' FROM generate_series(2000, 2999) i`);
    await ctx.pair.catchUp();
    const { rows } = await ctx.sub.query<{ marks: string; buckets: string }>(
      'SELECT count(*) AS marks, count(DISTINCT bucket) AS buckets FROM syncguard.dirty WHERE bucket BETWEEN 200 AND 299',
    );
    expect(rows[0]).toEqual({ marks: '100', buckets: '100' });
  });
});
