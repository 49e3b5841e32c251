// Issue 7, A5-A8: every table registered on either side is reported, and one whose registration
// no longer holds (dropped, replaced, registered on one side, columns added, triggers demoted, a
// cloned node's registrations, row-level security) is not comparable, with the fix; never "in sync".

import { describe, expect, it } from 'vitest';
import { TableRef } from '../../functions/core/identifiers.js';
import type { VerifyReport } from '../../functions/core/report.js';
import { Deadline } from '../../functions/db/deadline.js';
import { registerOnPair } from '../../functions/flows/pair-setup.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const TABLES = ['dropped', 'replaced', 'pubonly', 'subonly', 'grown', 'demoted', 'cloned', 'secret', 'fine', 'narrowed'].map(
  (t) => `public.${t}`,
);
// a getter: a fresh deadline at each use
const quick = {
  get deadline() {
    return Deadline.after(20_000);
  },
};

const ctx = usePair({
  label: 'trust_reg',
  tables: TABLES,
  async prepare(pair) {
    for (const t of TABLES) {
      await pair.both(`CREATE TABLE ${t} (id int PRIMARY KEY, v text)`);
      await pair.pub.query(`INSERT INTO ${t} SELECT i, 'v' || i FROM generate_series(1, 300) i`);
    }
  },
  async ready({ pub, sub }) {
    for (const t of TABLES) await register(pub, sub, t, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

const verifyOne = (table: string) => verifyPair(ctx.pub, ctx.sub, { ...quick, table: TableRef.of('public', table) });
const reasonOf = (r: VerifyReport) => {
  expect(r.status).toBe('incomplete');
  expect(r.tables).toHaveLength(1);
  expect(r.tables[0]?.state).toBe('uncomparable');
  return r.tables[0]?.reason ?? '';
};

describe('registrations that no longer hold', () => {
  it('compares a healthy table as before', async () => {
    expect((await verifyOne('fine')).status).toBe('in_sync');
  });

  it('reports a table dropped on the subscriber only as not comparable', async () => {
    await ctx.pair.sub.query('DROP TABLE public.dropped');
    expect(reasonOf(await verifyOne('dropped'))).toMatch(
      /^subscriber: the table was dropped on this node; its registration is left over: remove it with syncguard unregister --table public\.dropped(;|$)/,
    );
  });

  it('reports a table renamed and replaced by a new one of the same name', async () => {
    await ctx.pair.sub.query(
      'ALTER TABLE public.replaced RENAME TO replaced_old; CREATE TABLE public.replaced (id int PRIMARY KEY, v text)',
    );
    expect(reasonOf(await verifyOne('replaced'))).toMatch(
      /subscriber: the registered table public\.replaced was renamed to public\.replaced_old, and public\.replaced is now another table; register it under its new name: syncguard unregister --table public\.replaced, then syncguard register --table public\.replaced_old/,
    );
  });

  it('reports tables registered on one side only', async () => {
    await ctx.pub.query("SELECT syncguard.unregister_table('public', 'subonly')");
    await ctx.pair.sub.query("DELETE FROM syncguard.registration WHERE table_name = 'pubonly'"); // the row, as an accident would
    expect(reasonOf(await verifyOne('subonly'))).toMatch(/^registered on the subscriber only, not on the publisher/);
    expect(reasonOf(await verifyOne('pubonly'))).toMatch(/^registered on the publisher only, not on the subscriber/);
    const all = await verifyPair(ctx.pub, ctx.sub, quick);
    expect(all.status).toBe('incomplete');
    expect(all.tables.map((t) => t.table)).toEqual(expect.arrayContaining(['public.subonly', 'public.pubonly']));
  });

  it('says when columns were added on both sides since registration, and a changed one is not hashed', async () => {
    await ctx.pair.both('ALTER TABLE public.grown ADD COLUMN extra int');
    await ctx.pair.sub.query('UPDATE public.grown SET extra = 7 WHERE id = 5');
    expect(reasonOf(await verifyOne('grown'))).toMatch(
      /^columns added on both sides since registration are not hashed: extra; to compare them, re-register it: syncguard register --table public\.grown --refresh$/,
    );
    // --refresh adopts the new column on both sides: not comparable until both re-swept, then the
    // subscriber's value in the new column is found
    const r = await registerOnPair(ctx.pub, ctx.sub, { table: TableRef.of('public', 'grown'), refresh: true });
    expect(r.config.columns).toContain('extra');
    expect(reasonOf(await verifyOne('grown'))).toMatch(/first sweep has not finished/);
    await settle(ctx.pub);
    await settle(ctx.sub);
    const after = await verifyOne('grown');
    expect(after.status).toBe('diverged');
    await ctx.pair.sub.query('UPDATE public.grown SET extra = NULL WHERE id = 5');
    expect((await verifyOne('grown')).status).toBe('in_sync');
  });

  it('reports a column dropped on the subscriber only as drift (diverged), naming it and what to do', async () => {
    await ctx.pair.sub.query('ALTER TABLE public.narrowed DROP COLUMN v');
    try {
      const r = await verifyOne('narrowed');
      expect(r.status).toBe('diverged');
      expect(r.reasons).toEqual([
        "public.narrowed: column v dropped on the subscriber only, so it no longer holds the publisher's data: add it back on the subscriber (ALTER TABLE ... ADD COLUMN), then resynchronise the table",
      ]);
      expect(r.tables[0]?.state).toBe('uncomparable');
    } finally {
      await ctx.pair.sub.query('ALTER TABLE public.narrowed ADD COLUMN v text');
    }
  });

  it('reports triggers demoted from ENABLE ALWAYS by ENABLE TRIGGER ALL', async () => {
    await ctx.pair.sub.query('ALTER TABLE public.demoted ENABLE TRIGGER ALL');
    await ctx.pair.pub.query("UPDATE public.demoted SET v = 'changed' WHERE id = 1");
    await ctx.pair.catchUp();
    expect(reasonOf(await verifyOne('demoted'))).toMatch(
      /subscriber: trigger syncguard_insert is enabled for local writes only, not ENABLE ALWAYS, so it does not track replicated changes .*fix: ALTER TABLE public\.demoted ENABLE ALWAYS TRIGGER syncguard_insert/,
    );
  });

  it("reports a node that keeps its former role's registrations (a clone)", async () => {
    await ctx.pair.sub.query("UPDATE syncguard.registration SET node_role = 'publisher' WHERE table_name = 'cloned'");
    expect(reasonOf(await verifyOne('cloned'))).toMatch(/^subscriber: the registration was made for a publisher/);
  });

  it('fails loudly instead of hashing only the rows that row-level security shows', async () => {
    // the drain runs as the table owner, which FORCE ROW LEVEL SECURITY subjects to the policy
    await ctx.pair.pub.query(`ALTER TABLE public.secret ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
                              CREATE POLICY hide ON public.secret USING (id < 100)`);
    await ctx.pair.pub.query("UPDATE public.secret SET v = 'x' WHERE id = 150");
    await ctx.pair.catchUp();
    expect(reasonOf(await verifyOne('secret'))).toMatch(/^publisher: the drain could not recompute buckets .*row-level security/);
  });
});
