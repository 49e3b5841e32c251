// Every kind of divergence is found within two rounds once the bucket is quiet, and exactly the
// injected buckets are reported: missing and extra rows, changed values of several types, NULL
// vs '', a one-character change inside a TOASTed value, uuid and composite keys, rows changed
// while the subscriber's trigger was disabled (caught by a full re-sweep), TRUNCATE.

import { describe, expect, it } from 'vitest';
import { TableRef } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { drain } from '../../functions/db/drain.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { TYPE_COLUMNS, TYPE_SETUP, typesInsert, typesTableDdl } from '../support/fixtures.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.types';
const SMALL = 'public.small';

const ctx = usePair({
  label: 'kinds',
  tables: [T, SMALL],
  async prepare(pair) {
    await pair.asOwner(
      'publisher',
      `${TYPE_SETUP}${typesTableDdl(T, 'publisher')}${typesInsert(T, 300)}
      CREATE TABLE ${SMALL} (id int PRIMARY KEY, v text); INSERT INTO ${SMALL} SELECT i, 'v' || i FROM generate_series(1, 50) i;`,
    );
    await pair.asOwner('subscriber', `${TYPE_SETUP}${typesTableDdl(T, 'subscriber')} CREATE TABLE ${SMALL} (id int PRIMARY KEY, v text);`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 25 });
    await register(pub, sub, SMALL, { bucketSize: 10 });
    await settle(pub);
    await settle(sub);
  },
});

const found = async () => {
  const r = await verifyPair(ctx.pub, ctx.sub, { table: TableRef.of('public', 'types') });
  return { status: r.status, buckets: r.mismatches.map((m) => m.bucket) };
};

/** Saves a row of the subscriber's copy, runs the change, and returns a function that restores it. */
async function onSubscriber(where: string, change: string): Promise<() => Promise<void>> {
  const cols = TYPE_COLUMNS.map(([c]) => c).join(', ');
  await ctx.pair.sub.query(`DROP TABLE IF EXISTS pg_temp.saved; CREATE TEMP TABLE saved AS SELECT ${cols} FROM ${T} WHERE ${where}`);
  await ctx.pair.sub.query(change);
  return async () => {
    await ctx.pair.sub.query(`DELETE FROM ${T} WHERE ${where}; INSERT INTO ${T} (${cols}) SELECT ${cols} FROM pg_temp.saved`);
  };
}

describe('every divergence kind', () => {
  it('starts in sync', async () => {
    expect(await found()).toEqual({ status: 'in_sync', buckets: [] });
  });

  const kinds: Array<[string, string, string, string[]]> = [
    ['a missing row', 'id = 30', `DELETE FROM ${T} WHERE id = 30`, ['1']],
    ['an extra row', 'id = 1000', `INSERT INTO ${T} (id, c_text) VALUES (1000, 'extra')`, ['40']],
    ['a changed numeric scale', 'id = 52', `UPDATE ${T} SET c_numeric = 1.500 WHERE id = 52`, ['2']],
    ['a changed timestamptz', 'id = 78', `UPDATE ${T} SET c_timestamptz = c_timestamptz + interval '1 ms' WHERE id = 78`, ['3']],
    ['a changed jsonb value', 'id = 101', `UPDATE ${T} SET c_jsonb = c_jsonb || '{"b": 0}' WHERE id = 101`, ['4']],
    ['a changed array element', 'id = 130', `UPDATE ${T} SET c_int_array = ARRAY[0] WHERE id = 130`, ['5']],
    ['NULL instead of the empty string', 'id = 152', `UPDATE ${T} SET c_text = NULL WHERE id = 152`, ['6']],
    [
      'one character inside a TOASTed value',
      'id = 201',
      `UPDATE ${T} SET c_toast = overlay(c_toast placing 'Z' from 90000 for 1) WHERE id = 201`,
      ['8'],
    ],
    ['two buckets at once', 'id IN (5, 260)', `UPDATE ${T} SET c_bool = NOT c_bool WHERE id IN (5, 260)`, ['0', '10']],
  ];

  it.each(kinds)('finds %s in exactly its bucket', async (_kind, where, change, buckets) => {
    const restore = await onSubscriber(where, change);
    try {
      expect(await found()).toEqual({ status: 'diverged', buckets });
    } finally {
      await restore();
    }
    expect(await found()).toEqual({ status: 'in_sync', buckets: [] });
  });

  it('finds a change made with the subscriber trigger disabled after a full re-sweep', async () => {
    await ctx.pair.sub.query(`ALTER TABLE ${T} DISABLE TRIGGER syncguard_update`);
    const restore = await onSubscriber('id = 222', `UPDATE ${T} SET c_varchar = 'silent' WHERE id = 222`);
    await ctx.pair.sub.query(`ALTER TABLE ${T} ENABLE ALWAYS TRIGGER syncguard_update`);
    expect(await found()).toEqual({ status: 'in_sync', buckets: [] }); // invisible to the triggers...
    const s = await drain(ctx.sub, { deadline: Deadline.after(30_000), fullResweep: true });
    expect(s.stoppedBecause).toBe('empty');
    expect(await found()).toEqual({ status: 'diverged', buckets: ['8'] }); // ...until the re-sweep
    await restore();
    expect(await found()).toEqual({ status: 'in_sync', buckets: [] });
  });

  it('finds a TRUNCATE on the subscriber in every bucket', async () => {
    await ctx.pair.sub.query(`TRUNCATE ${SMALL}`);
    const r = await verifyPair(ctx.pub, ctx.sub, { table: TableRef.of('public', 'small') });
    expect(r.status).toBe('diverged');
    expect(r.mismatches.map((m) => m.bucket)).toEqual(['0', '1', '2', '3', '4', '5']);
    expect(r.mismatches.every((m) => m.subscriber.rows === '0')).toBe(true);
  });
});
