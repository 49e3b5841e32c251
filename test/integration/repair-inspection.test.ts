// What a repair is judged against is the subscriber's own (node 0029), against real replication:
//   4c: the subscriber keeps each inspection's snapshot; a request that names no inspection (one
//       carrying only a snapshot, forged or from an old client) is refused, and a forged snapshot
//       beside a real inspection changes nothing;
//   4b: an inspection taken before local_write was emptied is refused (emptied here by hand as a
//       crash empties it; repair-crash.test.ts crashes a server);
//   11: the publisher holds a key by the key type's equality (numeric 1.0 = 1.00, a case-insensitive collation);
//   10: a keyless insert's precondition is in its statement;
//   12: the node caps the changes of one request, the waits of one request, and the waits of all
//       requests of one inspection;
//   the probe functions and the trigger refuse while syncguard.probe has foreign code.

import type pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTableName, type TableRef } from '../../functions/core/identifiers.js';
import type { PlannedChange } from '../../functions/core/repair-plan.js';
import { connect } from '../../functions/db/connect.js';
import { probeTargetOf } from '../../functions/flows/inspect.js';
import { CheckedPair } from '../../functions/flows/pair.js';
import { awaitAnswers } from '../../functions/flows/probes.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.ri_rows';
const NUM = 'public.ri_num';
const CI = 'public.ri_ci';
const K = 'public.ri_keyless';
const NUMH = 'public.ri_num_hash';
const ROLE = 'sg_insp_repairer';
const PW = 'insp-repairer-pw';

const ctx = usePair({
  label: 'rinsp',
  tables: [T, NUM, CI, K, NUMH],
  async prepare(pair) {
    await pair.both(`
      CREATE COLLATION ri_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE ${T} (id int PRIMARY KEY, v text);
      CREATE TABLE ${NUM} (id numeric PRIMARY KEY, v text);
      CREATE TABLE ${NUMH} (id numeric PRIMARY KEY, v text);
      CREATE TABLE ${CI} (code text COLLATE ri_ci PRIMARY KEY, v text);
      CREATE TABLE ${K} (v text);`);
    await pair.pub.query(`ALTER TABLE ${K} REPLICA IDENTITY FULL`);
    await pair.pub.query(`
      INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(0, 999) i;
      INSERT INTO ${NUM} SELECT (i || '.00')::numeric, 'n' || i FROM generate_series(1, 50) i;
      INSERT INTO ${NUMH} SELECT (i || '.00')::numeric, 'n' || i FROM generate_series(1, 200) i;
      INSERT INTO ${CI} SELECT 'code' || i, 'c' || i FROM generate_series(1, 50) i;
      INSERT INTO ${K} VALUES ('a'), ('a'), ('b');`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await register(pub, sub, NUM, { bucketSize: 1000 });
    await register(pub, sub, CI, { bucketSize: 1000 });
    await register(pub, sub, K, { bucketSize: 1000 });
    await register(pub, sub, NUMH, { bucketSize: 25, scheme: 'hash' });
    await settle(pub);
    await settle(sub);
  },
});

let repairer: pg.Client; // the repair role on the publisher

beforeAll(async () => {
  for (const c of [ctx.pair.pub, ctx.pair.sub]) {
    await c
      .query(
        `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${ROLE}') THEN CREATE ROLE ${ROLE} LOGIN PASSWORD '${PW}'; END IF; END $$`,
      )
      .catch(() => {});
  }
  await ctx.pub.query(`SELECT syncguard.grant_role('${ROLE}', 'repair')`);
  await ctx.sub.query(`SELECT syncguard.grant_role('${ROLE}', 'repair')`);
  repairer = await connect(ctx.pair.publisherDsn.replace(/\/\/[^@]+@/, `//${ROLE}:${PW}@`), 'publisher');
});

afterAll(async () => {
  await repairer?.end();
});

const table = parseTableName(T);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
type Outcome = { key: string; outcome: string; error?: string };

async function subValue(id: number): Promise<string | null | undefined> {
  const { rows } = await ctx.pair.sub.query<{ v: string | null }>(`SELECT v FROM ${T} WHERE id = $1`, [id]);
  return rows.length === 0 ? undefined : (rows[0]?.v ?? null);
}

/** What a plan's change says on the wire (the preconditions; a delete's key values). */
const wire = (c: PlannedChange) => ({
  key: c.key,
  op: c.op,
  subHash: c.subHash,
  pubHash: c.pubHash,
  ...(c.op === 'delete' ? { keyValues: c.keyValues } : {}),
});

/** Calls repair_request directly, as the repair role; the publisher's reply and the subscriber's outcomes. */
async function directRequest(
  t: TableRef,
  bucket: string,
  body: Record<string, unknown>,
): Promise<{ reply: { id: string | null; skipped: Outcome[] }; changes: Outcome[]; computeMs: number | null }> {
  const target = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), t);
  await repairer.query('BEGIN');
  const { rows } = await repairer.query<{ r: { id: string | null; skipped: Outcome[] } }>(
    'SELECT syncguard.repair_request($1, $2, $3, $4, $5, $6, $7) AS r',
    [t.schema, t.table, bucket, JSON.stringify(body), 'direct', target.target, target.subscription],
  );
  await repairer.query('COMMIT');
  const reply = rows[0]?.r as { id: string | null; skipped: Outcome[] };
  if (reply.id === null) return { reply, changes: [], computeMs: null };
  const waited = await awaitAnswers(ctx.sub, target.origin, [String(reply.id)], Date.now() + 30_000, [target.subscription]);
  await ctx.pair.catchUp();
  const a = waited.answers.get(String(reply.id));
  return { reply, changes: (a?.answer as { changes?: Outcome[] } | undefined)?.changes ?? [], computeMs: a?.computeMs ?? null };
}

/** The apply worker is waiting for a lock on the subscriber. */
async function applyWorkerWaiting(timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    const { rows } = await ctx.pair.sub.query<{ n: string }>(
      `SELECT count(*) AS n FROM pg_stat_activity WHERE backend_type LIKE 'logical replication%' AND wait_event_type = 'Lock'`,
    );
    if (Number(rows[0]?.n) > 0) return true;
    await sleep(5);
  }
  return false;
}

describe('4c: the subscriber keeps the inspection; a request names it', () => {
  it('a forged snapshot does not make a local write after the inspection count as seen', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = 10`);
    await settle(ctx.sub);
    const { plan } = await planBucket(ctx.pub, ctx.sub, table, '0', { pair: 'i' });
    expect(plan.changes.map((c) => c.key)).toEqual(['(10)']);
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'local after inspection' WHERE id = 10`);
    const forged = await directRequest(table, '0', { changes: plan.changes.map(wire), snapshot: '4294967295:4294967295:' });
    expect(forged.changes.map((c) => c.outcome)).toEqual(['refused']);
    expect(forged.changes[0]?.error).toMatch(/names no inspection/);
    expect(await subValue(10)).toBe('local after inspection'); // before the fix: overwritten with v10
    // beside the real inspection, a forged snapshot is ignored: the subscriber's own is used
    const named = await directRequest(table, '0', {
      changes: plan.changes.map(wire),
      inspection: plan.inspection,
      snapshot: '4294967295:4294967295:',
    });
    expect(named.changes.map((c) => c.outcome)).toEqual(['changed_since_inspection']);
    expect(await subValue(10)).toBe('local after inspection');
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'v10' WHERE id = 10`);
  });

  it('refuses an old client request that carries only a snapshot, even for a row still as inspected', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = 110`);
    await settle(ctx.sub);
    const { plan } = await planBucket(ctx.pub, ctx.sub, table, '1', { pair: 'i' });
    const snap = (await ctx.pair.sub.query<{ s: string }>('SELECT pg_current_snapshot()::text AS s')).rows[0]?.s;
    const old = await directRequest(table, '1', { changes: plan.changes.map(wire), snapshot: snap });
    expect(old.changes).toEqual([
      expect.objectContaining({ key: '(110)', outcome: 'refused', error: expect.stringMatching(/no inspection/) }),
    ]);
    expect(await subValue(110)).toBe('drift'); // before the fix: repaired on the snapshot's word
    // the plan itself, naming its inspection, repairs it
    const o = await applyPlan(ctx.pub, ctx.sub, { id: 'insp-110', ...plan });
    expect(o.changes.map((c) => c.outcome)).toEqual(['applied']);
    expect(await subValue(110)).toBe('v110');
  });
});

describe('4b: an inspection taken before local_write was emptied is refused', () => {
  it('refuses a moved row once local_write and the sentinel are gone, as after a crash', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = 210`);
    await settle(ctx.sub);
    const { plan } = await planBucket(ctx.pub, ctx.sub, table, '2', { pair: 'i' });
    expect(plan.rowCount).toBe(1);
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'local after inspection' WHERE id = 210`);
    // what a crash does to these unlogged tables (the catalogue is left: settle below recomputes it)
    await ctx.pair.sub.query('DELETE FROM syncguard.local_write; DELETE FROM syncguard.sentinel');
    const o = await applyPlan(ctx.pub, ctx.sub, { id: 'insp-210', ...plan });
    expect(o.changes).toEqual([expect.objectContaining({ key: '(210)', outcome: 'failed', error: expect.stringMatching(/emptied/) })]);
    expect(await subValue(210)).toBe('local after inspection'); // before the fix: overwritten
    await ctx.sub.query('SELECT syncguard.check_state()');
    await settle(ctx.sub);
    // an inspection taken under the new sentinel repairs again
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = 210`);
    await settle(ctx.sub);
    const again = await planBucket(ctx.pub, ctx.sub, table, '2', { pair: 'i' });
    expect((await applyPlan(ctx.pub, ctx.sub, { id: 'insp-210b', ...again.plan })).counts).toEqual({ applied: 1 });
  });
});

describe('11: the publisher holds a key by its equality, not its text', () => {
  for (const [name, t, local, key, keyValue] of [
    ['numeric 1.0 = 1.00', NUM, `UPDATE ${NUM} SET id = 1.0 WHERE id = 1`, '(1.0)', '1.0'],
    ["case-insensitive collation 'CODE1' = 'code1'", CI, `UPDATE ${CI} SET code = 'CODE1' WHERE code = 'code1'`, '(CODE1)', 'CODE1'],
  ] as const) {
    it(`refuses to delete a subscriber row whose key the publisher holds: ${name}`, async () => {
      await ctx.pair.sub.query(local);
      await settle(ctx.sub);
      const q = parseTableName(t);
      const v = await verifyPair(ctx.pub, ctx.sub, { table: q, timeLimitMs: 20_000 });
      const bucket = v.mismatches[0]?.bucket as string;
      const { plan } = await planBucket(ctx.pub, ctx.sub, q, bucket, { pair: 'i' });
      const del = plan.changes.find((c) => c.op === 'delete');
      expect(del?.key).toBe(key);
      const r = await directRequest(q, bucket, { changes: [wire(del as PlannedChange)], inspection: plan.inspection });
      expect(r.reply.skipped).toEqual([expect.objectContaining({ key, outcome: 'publisher_changed' })]);
      expect(r.reply.id).toBeNull();
      const { rows } = await ctx.pair.sub.query(`SELECT 1 FROM ${t} WHERE ${t === NUM ? 'id' : 'code'} = $1`, [keyValue]);
      expect(rows).toHaveLength(1); // before the fix: deleted, though the publisher holds the key
    });
  }
});

describe('11: an equal key spelt otherwise in another bucket (hash buckets)', () => {
  it('is never deleted: the publisher holds it, whatever bucket its spelling hashes to', async () => {
    // 1.0 and 1.00 are one key by numeric equality, but their texts hash to buckets of their own
    await ctx.pair.sub.query(`UPDATE ${NUMH} SET id = trunc(id, 1) WHERE id <= 20`);
    await settle(ctx.sub);
    const q = parseTableName(NUMH);
    const v = await verifyPair(ctx.pub, ctx.sub, { table: q, timeLimitMs: 20_000 });
    let tried = 0;
    for (const m of v.mismatches) {
      const { plan } = await planBucket(ctx.pub, ctx.sub, q, m.bucket, { pair: 'i' });
      for (const del of plan.changes.filter((c) => c.op === 'delete')) {
        const spelt = del.key.replace(/\.0\)$/, '.00)');
        if (plan.changes.some((c) => c.key === spelt)) continue; // both spellings in this bucket
        const r = await directRequest(q, m.bucket, { changes: [wire(del)], inspection: plan.inspection });
        expect(r.reply.skipped).toEqual([
          expect.objectContaining({ key: del.key, outcome: 'publisher_changed', error: expect.stringMatching(/in another bucket/) }),
        ]);
        const value = del.key.slice(1, -1);
        // before: the bucket's own rows were searched, nothing equal was found, and the row was deleted
        expect((await ctx.pair.sub.query(`SELECT 1 FROM ${NUMH} WHERE id::text = $1`, [value])).rows).toHaveLength(1);
        tried++;
      }
    }
    expect(tried).toBeGreaterThan(0);
  });
});

describe('10: a keyless insert carries its precondition', () => {
  it('does not insert a copy when a local writer added one after the rows were read', async () => {
    await ctx.pair.sub.query(`DELETE FROM ${K} WHERE ctid = (SELECT ctid FROM ${K} WHERE v = 'a' LIMIT 1); INSERT INTO ${K} VALUES ('x')`);
    await settle(ctx.sub);
    const q = parseTableName(K);
    const v = await verifyPair(ctx.pub, ctx.sub, { table: q, timeLimitMs: 20_000 });
    expect(v.mismatches).toHaveLength(1);
    const { plan } = await planBucket(ctx.pub, ctx.sub, q, v.mismatches[0]?.bucket as string, { pair: 'i' });
    expect(plan.changes.map((c) => c.op)).toEqual(['delete', 'upsert']);
    const local = await connect(ctx.pair.subscriberDsn, 'subscriber');
    try {
      await local.query('BEGIN');
      await local.query(`SELECT * FROM ${K} WHERE v = 'x' FOR UPDATE`);
      await local.query(`INSERT INTO ${K} VALUES ('a')`);
      const repair = applyPlan(ctx.pub, ctx.sub, { id: 'keyless-cas', ...plan }, { timeLimitMs: 20_000, applyLockTimeoutMs: 5000 });
      expect(await applyWorkerWaiting(5000)).toBe(true);
      await local.query('COMMIT');
      const o = await repair;
      expect(o.changes.map((c) => c.outcome)).toEqual(['applied', 'changed_since_inspection']);
    } finally {
      await local.end();
    }
    const { rows } = await ctx.pair.sub.query<{ n: string }>(`SELECT count(*) AS n FROM ${K} WHERE v = 'a'`);
    expect(Number(rows[0]?.n)).toBe(2); // before the fix: 3 (the repair added a copy beside the local one)
  });
});

describe('12: the node caps what one request and one inspection hold the apply worker for', () => {
  it('fails every change of a request with more than 1000 changes', async () => {
    const changes = Array.from({ length: 1001 }, (_, i) => ({ key: `(${5000 + i})`, op: 'delete', subHash: '1', pubHash: null }));
    const r = await directRequest(table, '50', { changes });
    expect(r.changes).toHaveLength(1001);
    expect(new Set(r.changes.map((c) => c.outcome))).toEqual(new Set(['failed']));
    expect(r.changes[0]?.error).toMatch(/at most 1000 changes/); // before the fix: 1001 already_equal
  });

  it('bounds the waits of one request to 5 s in all, however long each may wait', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id IN (310, 311, 312)`);
    await settle(ctx.sub);
    const { plan } = await planBucket(ctx.pub, ctx.sub, table, '3', { pair: 'i' });
    expect(plan.rowCount).toBe(3);
    const holder = await connect(ctx.pair.subscriberDsn, 'subscriber');
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM ${T} WHERE id IN (310, 311, 312) FOR UPDATE`);
      const o = await applyPlan(ctx.pub, ctx.sub, { id: 'budget', ...plan }, { timeLimitMs: 40_000, applyLockTimeoutMs: 5000 });
      expect(o.changes.map((c) => c.outcome)).toEqual(['failed', 'failed', 'failed']);
      expect(o.changes[1]?.error).toMatch(/used its 5000 ms/);
      expect(o.applyMs).toBeLessThan(7000); // before the fix: three waits of 5 s, 15 s
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
    }
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'v' || id WHERE id IN (310, 311, 312)`);
  });

  it('counts lock waits over every request of one inspection', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id IN (410, 411, 412, 413)`);
    await settle(ctx.sub);
    const { plan } = await planBucket(ctx.pub, ctx.sub, table, '4', { pair: 'i' });
    expect(plan.rowCount).toBe(4);
    const holder = await connect(ctx.pair.subscriberDsn, 'subscriber');
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM ${T} WHERE id IN (410, 411, 412, 413) FOR UPDATE`);
      const part = (from: number) => ({ changes: plan.changes.slice(from, from + 2).map(wire), inspection: plan.inspection });
      const first = await directRequest(table, '4', part(0));
      const second = await directRequest(table, '4', part(2));
      expect(first.changes.map((c) => c.error)).toEqual([expect.stringMatching(/locked/), expect.stringMatching(/locked/)]);
      expect(second.changes.map((c) => c.outcome)).toEqual(['failed', 'failed']);
      expect(second.changes[1]?.error).toMatch(/not tried: 3 rows of this plan/); // before the fix: waited a fourth time
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.end();
    }
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'v' || id WHERE id IN (410, 411, 412, 413)`);
  });
});

describe('foreign code on syncguard.probe', () => {
  it('the publisher refuses to send any probe while syncguard.probe has a trigger it did not create', async () => {
    await ctx.pair.pub.query(`
      CREATE FUNCTION public.sg_foreign() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$;
      CREATE TRIGGER sg_foreign_trg BEFORE INSERT ON syncguard.probe FOR EACH ROW EXECUTE FUNCTION public.sg_foreign();`);
    try {
      const t = await CheckedPair.open(ctx.pub, ctx.sub)
        .then((p) => probeTargetOf(p, table))
        .catch(() => null);
      const target = t?.target ?? '00000000-0000-0000-0000-000000000000';
      const sub = t?.subscription ?? ctx.pair.name;
      const calls: [string, unknown[]][] = [
        ['SELECT syncguard.probe_rows($1, $2, $3, $4, $5)', [table.schema, table.table, 0, target, sub]],
        ['SELECT syncguard.probe_buckets($1, $2, $3, $4, $5)', [table.schema, table.table, [0], target, sub]],
        [
          'SELECT syncguard.repair_request($1, $2, $3, $4, $5, $6, $7)',
          [table.schema, table.table, 0, JSON.stringify([{ key: '(1)', op: 'upsert', subHash: null, pubHash: null }]), 'x', target, sub],
        ],
      ];
      for (const [sql, params] of calls) {
        await ctx.pub.query('BEGIN');
        const err = await ctx.pub.query(sql, params).then(
          () => null,
          (e: Error) => e,
        );
        await ctx.pub.query('ROLLBACK');
        expect(err?.message, sql).toMatch(/sends no probe: trigger sg_foreign_trg on probe/); // before the fix: sent
      }
    } finally {
      await ctx.pair.pub.query('DROP TRIGGER sg_foreign_trg ON syncguard.probe; DROP FUNCTION public.sg_foreign()');
    }
  });

  it('the subscriber answers no probe while its syncguard.probe has a default it did not create', async () => {
    const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table);
    await ctx.pair.sub.query(`ALTER TABLE syncguard.probe ALTER COLUMN fingerprint SET DEFAULT 'foreign'`);
    try {
      await ctx.pub.query('BEGIN');
      const { rows } = await ctx.pub.query<{ r: { id: string } }>('SELECT syncguard.probe_buckets($1, $2, $3, $4, $5) AS r', [
        table.schema,
        table.table,
        [0],
        t.target,
        t.subscription,
      ]);
      await ctx.pub.query('COMMIT');
      const id = String(rows[0]?.r.id);
      const waited = await awaitAnswers(ctx.sub, t.origin, [id], Date.now() + 10_000, [t.subscription]);
      const a = waited.answers.get(id);
      expect(a?.ok).toBe(false); // before the fix: answered
      expect(a?.error).toMatch(/answers no probe: a default on column fingerprint on probe/);
    } finally {
      await ctx.pair.sub.query('ALTER TABLE syncguard.probe ALTER COLUMN fingerprint DROP DEFAULT');
    }
  });
});
