// Golden vectors: fixed rows give fixed canonical text and fixed row hashes in PostgreSQL, equal
// to the reference implementation in functions/core/hashing.ts. A change of encoding fails here
// and must come with a new hash_version.

import { expect, it } from 'vitest';
import { rowHash } from '../../functions/core/hashing.js';
import { regId, register } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.golden';
/** Columns are hashed sorted by name: arr, b, bo, f, id, j, n, num, s, ts. */
const GOLDEN: ReadonlyArray<readonly [string, string]> = [
  [String.raw`("{1,NULL,3}","\\x00ff",t,NaN,1,"{""a"": [1, 2]}",,1.50,"","2024-02-29 23:30:00+00")`, '383075593594906278'],
  [String.raw`({},"\\x",f,-Infinity,2,{},"a ""quoted"", (text)",0.000,ünï,"1999-12-31 00:00:00+00")`, '-8414586720053408820'],
];

const ctx = usePair({
  label: 'golden',
  tables: [T],
  async prepare(pair) {
    await pair.both(
      `CREATE TABLE ${T} (id int PRIMARY KEY, n text, s text, num numeric, f float8, ts timestamptz, b bytea, bo boolean, arr int[], j jsonb)`,
    );
    await pair.pub.query(`INSERT INTO ${T} VALUES
      (1, NULL, '', 1.50, 'NaN', '2024-03-01 01:30:00+02', '\\x00ff', true, '{1,NULL,3}', '{"a": [1, 2]}'),
      (2, 'a "quoted", (text)', 'ünï', -0.000, '-Infinity', '1999-12-31 00:00:00+00', '', false, '{}', '{}')`);
  },
  ready: ({ pub, sub }) => register(pub, sub, T),
});

it('renders fixed rows to fixed canonical text and row hashes', async () => {
  for (const c of [ctx.pub, ctx.sub]) {
    await c.query("SET TimeZone = 'America/St_Johns'; SET DateStyle = 'German'; SET extra_float_digits = 3; SET bytea_output = 'escape'");
    const { rows } = await c.query<{ canonical: string; row_hash: string }>(
      'SELECT canonical, row_hash::text FROM syncguard.canonical_rows($1, ARRAY[0]::bigint[]) ORDER BY key_text',
      [await regId(c, T)],
    );
    expect(rows.map((r) => [r.canonical, r.row_hash])).toEqual(GOLDEN);
  }
});

it('agrees with the reference implementation of the row hash', () => {
  for (const [text, hash] of GOLDEN) expect(rowHash(text).toString()).toBe(hash);
});
