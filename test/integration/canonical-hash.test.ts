// Equal data gives equal bucket hashes on publisher and subscriber, across 36 awkward column
// types, a subscriber with its columns in another order plus an extra and a dropped column, and
// hostile session settings; and any single-field change changes exactly one bucket.

import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, inject, it } from 'vitest';
import { TYPE_COLUMNS, TYPE_SETUP, typesInsert, typesTableDdl } from '../support/fixtures.js';
import { createPair, type Pair } from '../support/pair.js';
import { catalogue, differingBuckets, fromScratch, installed, regId, register, settle } from '../support/syncguard.js';

const T = 'public.types';
let pair: Pair;
let pub: pg.Client;
let sub: pg.Client;
let close: () => Promise<void>;

beforeAll(async () => {
  pair = await createPair(inject('publisherCluster'), inject('subscriberCluster'), 'types');
  const o = await pair.ownerClient('publisher');
  await o.query(TYPE_SETUP + typesTableDdl(T, 'publisher'));
  await o.query(typesInsert(T, 300));
  await o.end();
  const s = await pair.ownerClient('subscriber');
  await s.query(TYPE_SETUP + typesTableDdl(T, 'subscriber'));
  await s.end();
  await pair.subscribe([T]);
  ({ pub, sub, close } = await installed(pair));
  await register(pub, sub, T, { bucketSize: 25 });
  await settle(pub);
  await settle(sub);
});

afterAll(async () => {
  await close?.();
  await pair?.dispose();
});

describe('canonical hashing across a real subscription', () => {
  it('gives identical catalogues for identical data', async () => {
    const p = await catalogue(pub, T);
    const s = await catalogue(sub, T);
    expect(p.size).toBe(13); // ids 1..300 in buckets of 25 keys: 0..12
    expect(differingBuckets(p, s)).toEqual([]);
  });

  it('hashes every one of the 36 columns', async () => {
    const { rows } = await pub.query<{ n: number }>('SELECT cardinality(columns) AS n FROM syncguard.registrations');
    expect(rows[0]?.n).toBe(36);
  });

  it('stays equal after replicated inserts, updates and deletes are drained', async () => {
    const o = await pair.ownerClient('publisher');
    await o.query(
      typesInsert('tmp_types', 0)
        .replace(/tmp_types/g, T)
        .replace('generate_series(1, 0)', 'generate_series(301, 340)'),
    );
    await o.query(`UPDATE ${T} SET c_text = c_text || '!' WHERE id % 11 = 0`);
    await o.query(`DELETE FROM ${T} WHERE id % 13 = 0`);
    await o.end();
    await pair.catchUp();
    await settle(pub);
    await settle(sub);
    const p = await catalogue(pub, T);
    expect(p.size).toBe(14);
    expect(differingBuckets(p, await catalogue(sub, T))).toEqual([]);
  });

  it('is unaffected by hostile session settings on the hashing session', async () => {
    const hostile = await pair.ownerClient('subscriber');
    try {
      await hostile.query(`SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard';
        SET extra_float_digits = -3; SET bytea_output = 'escape'; SET search_path = public`);
      const stored = await catalogue(hostile, T);
      expect(differingBuckets(await fromScratch(hostile, T), stored)).toEqual([]);
      // and a recompute stored under those settings is still equal to the publisher's
      await hostile.query('SELECT count(*) FROM syncguard.recompute($1, ARRAY[0, 1, 2, 3]::bigint[])', [await regId(hostile, T)]);
      expect(differingBuckets(await catalogue(hostile, T), await catalogue(pub, T))).toEqual([]);
    } finally {
      await hostile.end();
    }
  });

  const changes: Array<[string, string, string]> = [
    ['NULL to empty string', "c_text = ''", 'id = 7'],
    ['empty string to NULL', 'c_text = NULL', 'id = 4'],
    ['numeric scale 1.5 to 1.50', 'c_numeric = 1.50', 'id = 2'],
    ['float -0 to 0', "c_real = '0'", 'id = 8'],
    ['one character inside a TOASTed value', "c_toast = overlay(c_toast placing 'Z' from 60000 for 1)", 'id = 51'],
    ['jsonb key order is normalised, value change is not', `c_jsonb = c_jsonb || '{"b": 0}'`, 'id = 10'],
    ['timestamptz by one microsecond', "c_timestamptz = c_timestamptz + interval '1 microsecond'", 'id = 12'],
    ['enum label', "c_enum = 'happy'", 'id = 1'],
    ['xml text', "c_xml = '<r/>'", 'id = 3'],
    ['array element NULL to string NULL', 'c_int_array = ARRAY[1, 2]', 'id = 5'],
    ['money by one cent', 'c_money = c_money + 0.01::money', 'id = 6'],
    ['bytea empty to NULL', 'c_bytea = NULL', 'id = 9'],
  ];

  it.each(changes)('a subscriber-side change of %s changes exactly that bucket', async (_label, set, where) => {
    const before = await catalogue(sub, T);
    const { rows } = await sub.query<{ id: number }>(`SELECT id FROM ${T} WHERE ${where}`);
    const id = rows[0]?.id as number;
    await sub.query(`DROP TABLE IF EXISTS pg_temp.saved; CREATE TEMP TABLE saved AS SELECT * FROM ${T} WHERE ${where}`);
    await sub.query(`UPDATE ${T} SET ${set} WHERE ${where}`);
    await settle(sub);
    const after = await catalogue(sub, T);
    expect(differingBuckets(before, after)).toEqual([String(Math.floor(id / 25))]);
    // restore the row exactly, and the catalogue matches the publisher again
    const cols = TYPE_COLUMNS.map(([c]) => c).join(', ');
    await sub.query(`UPDATE ${T} SET (${cols}) = (SELECT ${cols} FROM pg_temp.saved) WHERE ${where}`);
    await settle(sub);
    expect(differingBuckets(await catalogue(sub, T), await catalogue(pub, T))).toEqual([]);
  });
});
