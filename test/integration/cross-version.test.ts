// Publisher PostgreSQL 15 (Debian) -> subscriber PostgreSQL 18 (embedded): the awkward-types table
// hashes equal, and a publication column list and row filter are honoured on the publisher side.

import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { type Cluster, startCluster } from '../support/cluster.js';
import { TYPE_SETUP, typesInsert, typesTableDdl } from '../support/fixtures.js';
import { createPair, type Pair } from '../support/pair.js';
import { catalogue, differingBuckets, fromScratch, installed, register, settle } from '../support/syncguard.js';

const T = 'public.types';
const F = 'public.filtered';
let pg15: Cluster;
let pair: Pair;
let pub: pg.Client;
let sub: pg.Client;
let close: () => Promise<void>;

beforeAll(async () => {
  pg15 = await startCluster('publisher15', 15);
  pair = await createPair(pg15, inject('subscriberCluster'), 'v15');
  const o = await pair.ownerClient('publisher');
  await o.query(`${TYPE_SETUP}${typesTableDdl(T, 'publisher')} CREATE TABLE ${F} (id int PRIMARY KEY, a text, secret text);`);
  await o.query(typesInsert(T, 300));
  await o.query(`INSERT INTO ${F} SELECT i, 'a' || i, 'hidden' || i FROM generate_series(1, 400) i`);
  await o.end();
  const s = await pair.ownerClient('subscriber');
  await s.query(`${TYPE_SETUP}${typesTableDdl(T, 'subscriber')} CREATE TABLE ${F} (id int PRIMARY KEY, a text, secret text);`);
  await s.end();
  await pair.subscribe([T, F], {
    publicationSql: `CREATE PUBLICATION ${pair.name} FOR TABLE ${T}, ${F} (id, a) WHERE (id % 2 = 0)`,
  });
  ({ pub, sub, close } = await installed(pair));
});

afterAll(async () => {
  await close?.();
  await pair?.dispose();
  await pg15?.stop();
});

describe('publisher 15 -> subscriber 18', () => {
  it('runs the versions it claims to', async () => {
    const v = async (c: pg.Client) => Number((await c.query("SELECT current_setting('server_version_num') AS v")).rows[0]?.v);
    expect(Math.floor((await v(pub)) / 10000)).toBe(15);
    expect(Math.floor((await v(sub)) / 10000)).toBe(18);
  });

  it('hashes 36 awkward types equally, before and after replicated changes', async () => {
    await register(pub, sub, T, { bucketSize: 25 });
    await settle(pub);
    await settle(sub);
    const p = await catalogue(pub, T);
    expect(p.size).toBe(13);
    expect(differingBuckets(p, await catalogue(sub, T))).toEqual([]);

    await pair.pub.query(`UPDATE ${T} SET c_jsonb = c_jsonb || '{"z": 1}', c_double = 'NaN' WHERE id % 5 = 0`);
    await pair.pub.query(`DELETE FROM ${T} WHERE id % 31 = 0`);
    await pair.catchUp();
    await settle(pub);
    await settle(sub);
    expect(differingBuckets(await catalogue(pub, T), await catalogue(sub, T))).toEqual([]);
  });

  it('hashes only published columns, and only rows that pass the row filter on the publisher', async () => {
    const r = await register(pub, sub, F, { bucketSize: 50 });
    expect(r.config.columns).toEqual(['a', 'id']);
    await settle(pub);
    await settle(sub);
    const p = await catalogue(pub, F);
    expect([...p.values()].reduce((n, v) => n + Number(v.split(':')[0]), 0)).toBe(200);
    expect(differingBuckets(p, await catalogue(sub, F))).toEqual([]);
    expect(differingBuckets(p, await fromScratch(pub, F))).toEqual([]);
  });
});
