// Equal data gives equal bucket hashes on publisher and subscriber, across 36 awkward column
// types, a subscriber with its columns in another order plus an extra and a dropped column, and
// hostile session settings; and any single-field change changes exactly one bucket. For both
// hash versions, each on its own copy of the table.

import { describe, expect, it } from 'vitest';
import { TYPE_COLUMNS, TYPE_SETUP, typesInsert, typesTableDdl } from '../support/fixtures.js';
import { catalogue, differingBuckets, fromScratch, regId, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const VERSIONS = [
  [1, 'public.types_v1'],
  [2, 'public.types'],
] as const;
const ctx = usePair({
  label: 'types',
  tables: VERSIONS.map(([, t]) => t),
  async prepare(pair) {
    const pub = VERSIONS.map(([, t]) => typesTableDdl(t, 'publisher') + typesInsert(t, 300)).join('');
    await pair.asOwner('publisher', TYPE_SETUP + pub);
    await pair.asOwner('subscriber', TYPE_SETUP + VERSIONS.map(([, t]) => typesTableDdl(t, 'subscriber')).join(''));
  },
  async ready({ pub, sub }) {
    for (const [hashVersion, t] of VERSIONS) await register(pub, sub, t, { bucketSize: 25, hashVersion });
    await settle(pub);
    await settle(sub);
  },
});

describe.each(VERSIONS)('canonical hashing (version %i) across a real subscription', (version, T) => {
  it('gives identical catalogues for identical data', async () => {
    const p = await catalogue(ctx.pub, T);
    const s = await catalogue(ctx.sub, T);
    expect(p.size).toBe(13); // ids 1..300 in buckets of 25 keys: 0..12
    expect(differingBuckets(p, s)).toEqual([]);
  });

  it('hashes every one of the 36 columns', async () => {
    const { rows } = await ctx.pub.query<{ n: number; v: number }>(
      'SELECT cardinality(columns) AS n, hash_version AS v FROM syncguard.registrations WHERE table_name = $1',
      [T.split('.')[1]],
    );
    expect(rows[0]).toEqual({ n: 36, v: version });
  });

  it('stays equal after replicated inserts, updates and deletes are drained', async () => {
    await ctx.pair.asOwner(
      'publisher',
      `${typesInsert(T, 340).replace('generate_series(1, 340)', 'generate_series(301, 340)')}
       UPDATE ${T} SET c_text = c_text || '!' WHERE id % 11 = 0;
       DELETE FROM ${T} WHERE id % 13 = 0;`,
    );
    await ctx.pair.catchUp();
    await settle(ctx.pub);
    await settle(ctx.sub);
    const p = await catalogue(ctx.pub, T);
    expect(p.size).toBe(14);
    expect(differingBuckets(p, await catalogue(ctx.sub, T))).toEqual([]);
  });

  it('is unaffected by hostile session settings on the hashing session', async () => {
    const hostile = await ctx.pair.ownerClient('subscriber');
    try {
      await hostile.query(`SET TimeZone = 'Pacific/Chatham'; SET DateStyle = 'SQL, DMY'; SET IntervalStyle = 'sql_standard';
        SET extra_float_digits = -3; SET bytea_output = 'escape'; SET search_path = public; SET client_encoding = 'LATIN1';
        SET max_parallel_workers_per_gather = 4; SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0`);
      const stored = await catalogue(hostile, T);
      expect(differingBuckets(await fromScratch(hostile, T), stored)).toEqual([]);
      // and a recompute stored under those settings is still equal to the publisher's
      await hostile.query('SELECT count(*) FROM syncguard.recompute($1, ARRAY[0, 1, 2, 3]::bigint[])', [await regId(hostile, T)]);
      expect(differingBuckets(await catalogue(hostile, T), await catalogue(ctx.pub, T))).toEqual([]);
    } finally {
      await hostile.close();
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
    const before = await catalogue(ctx.sub, T);
    const { rows } = await ctx.sub.query<{ id: number }>(`SELECT id FROM ${T} WHERE ${where}`);
    const id = rows[0]?.id as number;
    await ctx.sub.query(`DROP TABLE IF EXISTS pg_temp.saved; CREATE TEMP TABLE saved AS SELECT * FROM ${T} WHERE ${where}`);
    await ctx.sub.query(`UPDATE ${T} SET ${set} WHERE ${where}`);
    await settle(ctx.sub);
    const after = await catalogue(ctx.sub, T);
    expect(differingBuckets(before, after)).toEqual([String(Math.floor(id / 25))]);
    // restore the row exactly, and the catalogue matches the publisher again
    const cols = TYPE_COLUMNS.map(([c]) => c).join(', ');
    await ctx.sub.query(`UPDATE ${T} SET (${cols}) = (SELECT ${cols} FROM pg_temp.saved) WHERE ${where}`);
    await settle(ctx.sub);
    expect(differingBuckets(await catalogue(ctx.sub, T), await catalogue(ctx.pub, T))).toEqual([]);
  });
});
