// Triggers mark buckets dirty on both sides: statement triggers on the publisher, ALWAYS row
// triggers on the subscriber that fire for changes applied by the subscription.

import type pg from 'pg';
import { afterAll, beforeAll, beforeEach, describe, expect, inject, it } from 'vitest';
import { createPair, type Pair } from '../support/pair.js';
import { catalogue, differingBuckets, dirtyBuckets, installed, register, settle } from '../support/syncguard.js';

const T = 'public.items';
let pair: Pair;
let pub: pg.Client;
let sub: pg.Client;
let close: () => Promise<void>;

beforeAll(async () => {
  pair = await createPair(inject('publisherCluster'), inject('subscriberCluster'), 'dirty');
  await pair.both(`CREATE TABLE ${T} (id bigint PRIMARY KEY, v text)`);
  await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 100) i`);
  await pair.subscribe([T]);
  ({ pub, sub, close } = await installed(pair));
  await register(pub, sub, T, { bucketSize: 10 });
});

beforeEach(async () => {
  await settle(pub);
  await settle(sub);
});

afterAll(async () => {
  await close?.();
  await pair?.dispose();
});

describe('dirty tracking', () => {
  it('marks the buckets of replicated changes on the subscriber, and of local changes on the publisher', async () => {
    await pair.pub.query(`UPDATE ${T} SET v = 'x' WHERE id IN (5, 25)`);
    await pair.pub.query(`DELETE FROM ${T} WHERE id = 61`);
    await pair.pub.query(`INSERT INTO ${T} VALUES (1000, 'new')`);
    await pair.catchUp();
    expect(await dirtyBuckets(pub, T)).toEqual(['0', '2', '6', '100']);
    expect(await dirtyBuckets(sub, T)).toEqual(['0', '2', '6', '100']);
    await settle(pub);
    await settle(sub);
    expect(differingBuckets(await catalogue(pub, T), await catalogue(sub, T))).toEqual([]);
  });

  it('marks both the old and the new bucket of a key change', async () => {
    await pair.pub.query(`UPDATE ${T} SET id = 4700 WHERE id = 3`);
    await pair.catchUp();
    expect(await dirtyBuckets(pub, T)).toEqual(['0', '470']);
    expect(await dirtyBuckets(sub, T)).toEqual(['0', '470']);
  });

  it('marks every bucket of the table on TRUNCATE, replicated or local', async () => {
    const known = [...(await catalogue(sub, T)).keys()].sort((a, b) => Number(a) - Number(b));
    expect(known.length).toBeGreaterThan(5);
    await pair.pub.query(`TRUNCATE ${T}`);
    await pair.catchUp();
    expect(await dirtyBuckets(sub, T)).toEqual(known);
    expect(await dirtyBuckets(pub, T)).toEqual(known);
    await settle(pub);
    await settle(sub);
    expect((await catalogue(sub, T)).size).toBe(0);
    expect((await catalogue(pub, T)).size).toBe(0);
  });

  it('marks local writes on the subscriber, which replication will never undo', async () => {
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 30) i`);
    await pair.catchUp();
    await settle(sub);
    await pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = 15`);
    expect(await dirtyBuckets(sub, T)).toEqual(['1']);
    await settle(sub);
    await settle(pub);
    expect(differingBuckets(await catalogue(pub, T), await catalogue(sub, T))).toEqual(['1']);
  });

  it('keeps a single mark per bucket and transaction for a replicated bulk change', async () => {
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'bulk' FROM generate_series(2000, 2999) i`);
    await pair.catchUp();
    const { rows } = await sub.query<{ marks: string; buckets: string }>(
      'SELECT count(*) AS marks, count(DISTINCT bucket) AS buckets FROM syncguard.dirty WHERE bucket BETWEEN 200 AND 299',
    );
    expect(rows[0]).toEqual({ marks: '100', buckets: '100' });
  });
});
