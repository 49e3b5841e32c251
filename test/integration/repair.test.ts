// Inspect and repair every kind of difference (issue 9): missing, extra and changed rows; int,
// uuid, composite and text keys; a TOASTed value; an identity column with a generated column;
// NULL vs ''. Inspect finds exactly the injected keys; the repair makes the subscriber equal to the
// publisher (the full table contents compared by an independent query); verify is in sync.

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { inspectBucket } from '../../functions/flows/inspect.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const INT = 'public.r_int';
const UUID = 'public.r_uuid';
const COMP = 'public.r_comp';
const TEXT = 'public.r_text';
const IDENT = 'public.r_ident';
const ALL = [INT, UUID, COMP, TEXT, IDENT];

const ctx = usePair({
  label: 'repair',
  tables: ALL,
  async prepare(pair) {
    await pair.both(`
      CREATE TABLE ${INT} (id int PRIMARY KEY, v text, n numeric, t timestamptz, big text);
      CREATE TABLE ${UUID} (id uuid PRIMARY KEY, v text);
      CREATE TABLE ${COMP} (a int, b text COLLATE "C", v int, PRIMARY KEY (a, b));
      CREATE TABLE ${TEXT} (code text PRIMARY KEY, v jsonb);
      CREATE TABLE ${IDENT} (id int GENERATED ALWAYS AS IDENTITY PRIMARY KEY, v text NOT NULL, g int GENERATED ALWAYS AS (length(v)) STORED);`);
    await pair.pub.query(`
      INSERT INTO ${INT} SELECT i, 'v' || i, i * 1.5, timestamptz '2026-01-01' + i * interval '1 hour',
             CASE WHEN i % 100 = 7 THEN (SELECT string_agg(md5(i::text || g), '') FROM generate_series(1, 200) g) END
        FROM generate_series(1, 2000) i;
      INSERT INTO ${UUID} SELECT md5('u' || i)::uuid, 'u' || i FROM generate_series(1, 1000) i;
      INSERT INTO ${COMP} SELECT i / 10, 'k' || (i % 10), i FROM generate_series(1, 1000) i;
      INSERT INTO ${TEXT} SELECT 'code-' || i, jsonb_build_object('i', i) FROM generate_series(1, 500) i;
      INSERT INTO ${IDENT} (v) SELECT 'row ' || i FROM generate_series(1, 300) i;`);
  },
  async ready({ pub, sub }) {
    for (const t of ALL) await register(pub, sub, t, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

/** The whole table as one text, by a query independent of syncguard. */
async function contents(side: 'pub' | 'sub', table: string): Promise<string> {
  const c = side === 'pub' ? ctx.pair.pub : ctx.pair.sub;
  const { rows } = await c.query<{ h: string }>(`SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) AS h FROM ${table} t`);
  return rows[0]?.h ?? '';
}

async function applyErrors(): Promise<number> {
  const { rows } = await ctx.pair.sub.query<{ n: string }>(
    'SELECT apply_error_count + sync_error_count AS n FROM pg_stat_subscription_stats WHERE subname = $1',
    [ctx.pair.name],
  );
  return Number(rows[0]?.n ?? 0);
}

/** Verify, then inspect, plan and repair every diverged bucket of a table; returns what inspect found. */
async function repairTable(table: string): Promise<{ kind: string; key: string }[]> {
  const before = await verifyPair(ctx.pub, ctx.sub, { table: parseTableName(table), deadline: Deadline.after(20_000) });
  expect(before.status).toBe('diverged');
  const found: { kind: string; key: string }[] = [];
  for (const m of before.mismatches) {
    const { inspection, plan } = await planBucket(ctx.pub, ctx.sub, parseTableName(table), m.bucket, { pair: 'test' });
    found.push(...inspection.diffs.map((d) => ({ kind: d.kind, key: d.key })));
    const outcome = await applyPlan(ctx.pub, ctx.sub, { id: 'test', ...plan });
    expect(outcome.counts).toEqual({ applied: plan.rowCount });
    expect(outcome.bucketAfter).toBe('equal');
  }
  await ctx.pair.catchUp();
  expect(await contents('sub', table)).toBe(await contents('pub', table));
  expect((await verifyPair(ctx.pub, ctx.sub, { table: parseTableName(table), deadline: Deadline.after(20_000) })).status).toBe('in_sync');
  return found.sort((a, b) => (a.key < b.key ? -1 : 1));
}

describe('inspect and repair', () => {
  it('int key: missing, extra and changed rows, NULL vs empty, a TOASTed value', async () => {
    const errors = await applyErrors();
    await ctx.pair.sub.query(`
      DELETE FROM ${INT} WHERE id = 15;
      INSERT INTO ${INT} VALUES (5000, 'extra', 1, now(), NULL);
      UPDATE ${INT} SET v = '' WHERE id = 16;
      UPDATE ${INT} SET big = big || 'x' WHERE id = 107;
      UPDATE ${INT} SET n = 2.50, t = t + interval '1 microsecond' WHERE id = 1999`);
    await settle(ctx.sub);
    const ins = await inspectBucket(ctx.pub, ctx.sub, parseTableName(INT), '0');
    expect(ins.diffs.map((d) => [d.kind, d.key, d.columns.map((c) => c.name)])).toEqual([
      ['missing_on_subscriber', '(15)', ['big', 'id', 'n', 't', 'v']],
      ['changed', '(16)', ['v']],
    ]);
    expect(ins.diffs[1]?.columns).toEqual([{ name: 'v', publisher: 'v16', subscriber: '' }]);
    expect(await repairTable(INT)).toEqual([
      { kind: 'changed', key: '(107)' },
      { kind: 'missing_on_subscriber', key: '(15)' },
      { kind: 'changed', key: '(16)' },
      { kind: 'changed', key: '(1999)' },
      { kind: 'extra_on_subscriber', key: '(5000)' },
    ]);
    expect(await applyErrors()).toBe(errors);
  });

  it('uuid, composite and text keys', async () => {
    const { rows: u } = await ctx.pair.sub.query<{ id: string }>(`SELECT id FROM ${UUID} ORDER BY id LIMIT 2`);
    await ctx.pair.sub.query(`DELETE FROM ${UUID} WHERE id = $1`, [u[0]?.id]);
    await ctx.pair.sub.query(`UPDATE ${UUID} SET v = NULL WHERE id = $1`, [u[1]?.id]);
    await ctx.pair.sub.query(`UPDATE ${COMP} SET v = -1 WHERE a = 3 AND b = 'k5'; INSERT INTO ${COMP} VALUES (3, 'zz', 0)`);
    await ctx.pair.sub.query(`UPDATE ${TEXT} SET v = '{"i": "7"}' WHERE code = 'code-7'; DELETE FROM ${TEXT} WHERE code = 'code-8'`);
    await settle(ctx.sub);
    expect((await repairTable(UUID)).map((d) => d.kind).sort()).toEqual(['changed', 'missing_on_subscriber']);
    expect(await repairTable(COMP)).toEqual([
      { kind: 'changed', key: '(3,k5)' },
      { kind: 'extra_on_subscriber', key: '(3,zz)' },
    ]);
    expect(await repairTable(TEXT)).toEqual([
      { kind: 'changed', key: '(code-7)' },
      { kind: 'missing_on_subscriber', key: '(code-8)' },
    ]);
  });

  it('an identity column (GENERATED ALWAYS) and a generated column', async () => {
    await ctx.pair.sub.query(`DELETE FROM ${IDENT} WHERE id = 42; UPDATE ${IDENT} SET v = 'changed' WHERE id = 43`);
    await settle(ctx.sub);
    expect(await repairTable(IDENT)).toEqual([
      { kind: 'missing_on_subscriber', key: '(42)' },
      { kind: 'changed', key: '(43)' },
    ]);
    const { rows } = await ctx.pair.sub.query(`SELECT id, v, g FROM ${IDENT} WHERE id IN (42, 43) ORDER BY id`);
    expect(rows).toEqual([
      { id: 42, v: 'row 42', g: 6 },
      { id: 43, v: 'row 43', g: 6 },
    ]);
  });
});
