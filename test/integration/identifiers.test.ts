// Awkward names end to end (issue 11): mixed case, spaces, quotes, dots, non-ASCII and reserved
// words, in schema, table and column names. Register (with the quoted form on the command line), drain,
// verify, inspect and repair, through the real CLI.

import { describe, expect, it } from 'vitest';
import { cli } from '../support/cli.js';
import { usePair } from '../support/use-pair.js';

const SALES = '"Sales"."Order Items"';
const QUOTE = 'public."say ""hi"""';
const ETE = '"ventes été"."commandes"';
const DOTS = '"app.v2"."orders.2026"';

const ctx = usePair({
  label: 'idents',
  tables: [SALES, QUOTE, ETE, DOTS],
  async prepare(pair) {
    await pair.both(`
      CREATE SCHEMA "Sales"; CREATE SCHEMA "ventes été"; CREATE SCHEMA "app.v2";
      CREATE TABLE ${SALES} ("Order Id" int PRIMARY KEY, "Unit Price" numeric, "select" text);
      CREATE TABLE ${QUOTE} ("key ""k""" text COLLATE "C" PRIMARY KEY, "Wert" int);
      CREATE TABLE ${ETE} (numéro uuid PRIMARY KEY, "Montant €" numeric);
      CREATE TABLE ${DOTS} ("id.v" bigint PRIMARY KEY, "a.b" text);`);
    await pair.pub.query(`
      INSERT INTO ${SALES} SELECT i, i * 1.5, 'v' || i FROM generate_series(1, 500) i;
      INSERT INTO ${QUOTE} SELECT 'k' || i, i FROM generate_series(1, 300) i;
      INSERT INTO ${ETE} SELECT md5(i::text)::uuid, i FROM generate_series(1, 300) i;
      INSERT INTO ${DOTS} SELECT i, 'x' || i FROM generate_series(1, 300) i;`);
  },
});

const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];

describe('awkward identifiers', () => {
  it('register, drain, verify, inspect and repair tables and columns with any name', async () => {
    for (const t of [SALES, QUOTE, ETE, DOTS]) {
      const r = await cli('register', '--table', t, '--bucket-size', '100', ...pairArgs());
      expect(r.err).toEqual([]);
      expect(r.code).toBe(0);
    }
    const cols = await cli('register', '--table', SALES, '--columns', '"Order Id", "Unit Price"', ...pairArgs());
    expect(cols.err[0]).toMatch(/already registered/); // a different column list is a different registration
    for (const dsn of [ctx.pair.publisherDsn, ctx.pair.subscriberDsn]) expect((await cli('drain', '--dsn', dsn)).code).toBe(0);
    expect((await cli('verify', ...pairArgs())).code).toBe(0);

    await ctx.pair.sub.query(`UPDATE ${SALES} SET "select" = 'drift' WHERE "Order Id" = 250;
                              UPDATE ${QUOTE} SET "Wert" = -1 WHERE "key ""k""" = 'k7';
                              DELETE FROM ${ETE} WHERE "Montant €" = 42;
                              UPDATE ${DOTS} SET "a.b" = 'drift' WHERE "id.v" = 9`);
    const v = JSON.parse((await cli('verify', ...pairArgs(), '--json')).out[0] as string);
    expect(v.status).toBe('diverged');
    // reports name a table schema.table; a part with a dot or a quote is quoted, so it reads back
    expect(v.mismatches.map((m: { table: string }) => m.table).sort()).toEqual([
      '"app.v2"."orders.2026"',
      'Sales.Order Items',
      'public."say ""hi"""',
      'ventes été.commandes',
    ]);

    const bucket = v.mismatches.find((m: { table: string }) => m.table === 'Sales.Order Items').bucket;
    const ins = JSON.parse((await cli('inspect', ...pairArgs(), '--table', SALES, '--bucket', bucket, '--json')).out[0] as string);
    expect(ins.diffs).toEqual([{ kind: 'changed', key: '(250)', columns: [{ name: 'select', publisher: 'v250', subscriber: 'drift' }] }]);

    for (const m of v.mismatches as { table: string; bucket: string }[]) {
      const quoted = {
        'Sales.Order Items': SALES,
        'public."say ""hi"""': QUOTE,
        'ventes été.commandes': ETE,
        '"app.v2"."orders.2026"': DOTS,
      }[m.table] as string;
      const r = await cli('repair', ...pairArgs(), '--table', quoted, '--bucket', m.bucket, '--yes');
      expect(r.err).toEqual([]);
      expect(r.out[0]).toMatch(/: 1 applied; bucket now equal/);
    }
    expect((await cli('verify', ...pairArgs())).code).toBe(0);
  });

  it('refuses an unquoted awkward name with what to type instead', async () => {
    const r = await cli('register', '--table', 'Sales.Order-Items', ...pairArgs());
    expect([r.code, r.err[0]]).toEqual([
      2,
      'syncguard: table "Sales.Order-Items": "Order-Items" is not a plain name (letters, digits, _ and $, starting with a letter or _); quote it as PostgreSQL does: "Order-Items"',
    ]);
  });
});
