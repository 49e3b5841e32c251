// Issue 17 item 7: changes that rewrite rows without firing a trigger escaped marking until the
// next full re-sweep: ALTER COLUMN c TYPE <same type> USING expr on one side, and ALTER TYPE ...
// RENAME VALUE of an enum a hashed column holds. The registration keeps a signature of the
// catalogue rows these rewrite; health reports a change, and the next drain rebuilds the catalogue.

import { describe, expect, it } from 'vitest';
import { TableRef } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { drain } from '../../functions/db/drain.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const ctx = usePair({
  label: 'trust_rw',
  tables: ['public.acc', 'public.moods'],
  async prepare(pair) {
    await pair.both(`
      CREATE TYPE mood AS ENUM ('ok', 'sad');
      CREATE TABLE public.acc (id int PRIMARY KEY, n int);
      CREATE TABLE public.moods (id int PRIMARY KEY, m mood[]);`);
    await pair.pub.query(`
      INSERT INTO public.acc SELECT i, i FROM generate_series(1, 1000) i;
      INSERT INTO public.moods SELECT i, CASE WHEN i = 700 THEN ARRAY['sad']::mood[] ELSE ARRAY['ok']::mood[] END FROM generate_series(1, 1000) i;`);
  },
  async ready({ pub, sub }) {
    for (const t of ['public.acc', 'public.moods']) await register(pub, sub, t, { bucketSize: 250 });
    await settle(pub);
    await settle(sub);
  },
});

const verifyOne = (table: string) =>
  verifyPair(ctx.pub, ctx.sub, { deadline: Deadline.after(20_000), table: TableRef.of('public', table) });
const problems = async (table: string) => {
  const { rows } = await ctx.sub.query<{ h: { table: string; problems: string[] }[] }>('SELECT syncguard.health() AS h');
  return (rows[0]?.h.find((x) => x.table === table)?.problems ?? []).join('\n');
};

describe('rows rewritten without triggers', () => {
  it('ALTER COLUMN ... TYPE <same type> USING on the subscriber is found', async () => {
    expect((await verifyOne('acc')).status).toBe('in_sync');
    await ctx.pair.asOwner('subscriber', 'ALTER TABLE public.acc ALTER COLUMN n TYPE int USING CASE WHEN id = 600 THEN -n ELSE n END');
    expect(await problems('public.acc')).toMatch(/rows may have been rewritten without triggers since the last drain/);
    await drain(ctx.sub, { deadline: Deadline.after(10_000) });
    await settle(ctx.sub);
    const v = await verifyOne('acc');
    expect(v.status).toBe('diverged');
    expect(v.mismatches.map((m) => m.bucket)).toEqual(['2']);
  });

  it('ALTER TYPE ... RENAME VALUE of an enum held by a hashed column (in an array) is found', async () => {
    expect((await verifyOne('moods')).status).toBe('in_sync');
    await ctx.pair.asOwner('subscriber', "ALTER TYPE mood RENAME VALUE 'sad' TO 'glad'");
    expect(await problems('public.moods')).toMatch(/ALTER TYPE \.\.\. RENAME VALUE/);
    await drain(ctx.sub, { deadline: Deadline.after(10_000) });
    await settle(ctx.sub);
    const v = await verifyOne('moods');
    expect(v.status).toBe('diverged');
    expect(v.mismatches.map((m) => m.bucket)).toEqual(['2']);
  });
});
