// A LATIN1 publisher database replicating to a UTF8 subscriber (a migration to UTF8): the same
// characters are different bytes on the two sides, and both hash versions must still give equal
// hashes. Version 1 converts its row text to UTF-8 (convert_to); version 2 sends text columns in
// the client encoding, which every hashing function pins to UTF8, and keeps parallel workers out
// (they would send in the database encoding).

import { expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { catalogue, differingBuckets, fromScratch, register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const TABLES = [
  [1, 'public.latin_v1'],
  [2, 'public.latin_v2'],
] as const;
const DDL = (t: string) =>
  `CREATE TABLE ${t} (id int PRIMARY KEY, name text, city varchar(40), code char(4), tags text[], doc jsonb, label name);`;

const ctx = usePair({
  label: 'latin1',
  tables: TABLES.map(([, t]) => t),
  options: { publisherEncoding: 'LATIN1' },
  async prepare(pair) {
    await pair.both(TABLES.map(([, t]) => DDL(t)).join(''));
    for (const [, t] of TABLES) {
      await pair.pub.query(
        `INSERT INTO ${t} SELECT i, 'Müller-Lüdenscheidt ' || i, (ARRAY['Zürich', 'Besançon', 'Kraków?', 'Reykjavík'])[1 + i % 4],
                'ßé' || (i % 10), ARRAY['café', 'naïve', NULL], jsonb_build_object('straße', i, 'señor', 'añejo'), 'né' || i
           FROM generate_series(1, 2000) i`,
      );
    }
  },
  async ready({ pub, sub }) {
    for (const [hashVersion, t] of TABLES) await register(pub, sub, t, { bucketSize: 100, hashVersion });
    await settle(pub);
    await settle(sub);
  },
});

it('runs a LATIN1 publisher and a UTF8 subscriber holding the same characters', async () => {
  const enc = async (c: typeof ctx.pub) =>
    (await c.query<{ e: string }>('SELECT pg_encoding_to_char(encoding) AS e FROM pg_database WHERE datname = current_database()')).rows[0]
      ?.e;
  expect([await enc(ctx.pub), await enc(ctx.sub)]).toEqual(['LATIN1', 'UTF8']);
  const row = async (c: typeof ctx.pub) => (await c.query(`SELECT name, city, doc FROM ${TABLES[1][1]} WHERE id = 1`)).rows[0];
  expect(await row(ctx.sub)).toEqual(await row(ctx.pub));
});

for (const [version, table] of TABLES) {
  it(`version ${version}: equal hashes across the encodings, also computed under hostile settings`, async () => {
    const p = await catalogue(ctx.pub, table);
    expect(p.size).toBe(21);
    expect(differingBuckets(p, await catalogue(ctx.sub, table))).toEqual([]);
    await ctx.pub.query(`SET client_encoding = 'LATIN1'; SET max_parallel_workers_per_gather = 4; SET parallel_setup_cost = 0;
      SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0`);
    try {
      expect(differingBuckets(await fromScratch(ctx.pub, table), p)).toEqual([]);
    } finally {
      await ctx.pub.query('RESET ALL');
    }
    expect((await verifyPair(ctx.pub, ctx.sub, { table: parseTableName(table) })).status).toBe('in_sync');
  });

  it(`version ${version}: one accent changed on the subscriber is found in its bucket`, async () => {
    await ctx.sub.query(`UPDATE ${table} SET city = 'Besancon' WHERE id = 1001`);
    try {
      const r = await verifyPair(ctx.pub, ctx.sub, { table: parseTableName(table) });
      expect(r.status).toBe('diverged');
      expect(r.mismatches.map((m) => m.bucket)).toEqual(['10']);
    } finally {
      await ctx.sub.query(`UPDATE ${table} SET city = 'Besançon' WHERE id = 1001`);
    }
  });
}
