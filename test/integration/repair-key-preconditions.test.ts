// Which row a repair change applies to is decided by the publisher and the node, against real
// replication:
//   11: the publisher holds a key by the key type's equality (numeric 1.0 = 1.00, a case-insensitive
//       collation), also when the other spelling hashes to another bucket;
//   10: a keyless insert's precondition is in its statement.

import { setTimeout as sleep } from 'node:timers/promises';
import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import type { PlannedChange } from '../../functions/core/repair-plan.js';
import { connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { useRepairRole, wire } from '../support/repair-requests.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const NUM = 'public.ri_num';
const CI = 'public.ri_ci';
const K = 'public.ri_keyless';
const NUMH = 'public.ri_num_hash';

const ctx = usePair({
  label: 'rinsp',
  tables: [NUM, CI, K, NUMH],
  async prepare(pair) {
    await pair.both(`
      CREATE COLLATION ri_ci (provider = icu, locale = 'und-u-ks-level2', deterministic = false);
      CREATE TABLE ${NUM} (id numeric PRIMARY KEY, v text);
      CREATE TABLE ${NUMH} (id numeric PRIMARY KEY, v text);
      CREATE TABLE ${CI} (code text COLLATE ri_ci PRIMARY KEY, v text);
      CREATE TABLE ${K} (v text);`);
    await pair.pub.query(`ALTER TABLE ${K} REPLICA IDENTITY FULL`);
    await pair.pub.query(`
      INSERT INTO ${NUM} SELECT (i || '.00')::numeric, 'n' || i FROM generate_series(1, 50) i;
      INSERT INTO ${NUMH} SELECT (i || '.00')::numeric, 'n' || i FROM generate_series(1, 200) i;
      INSERT INTO ${CI} SELECT 'code' || i, 'c' || i FROM generate_series(1, 50) i;
      INSERT INTO ${K} VALUES ('a'), ('a'), ('b');`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, NUM, { bucketSize: 1000 });
    await register(pub, sub, CI, { bucketSize: 1000 });
    await register(pub, sub, K, { bucketSize: 1000 });
    await register(pub, sub, NUMH, { bucketSize: 25, scheme: 'hash' });
    await settle(pub);
    await settle(sub);
  },
});
const { directRequest } = useRepairRole(ctx);

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

describe('11: the publisher holds a key by its equality, not its text', () => {
  for (const [name, t, local, key, keyValue] of [
    ['numeric 1.0 = 1.00', NUM, `UPDATE ${NUM} SET id = 1.0 WHERE id = 1`, '(1.0)', '1.0'],
    ["case-insensitive collation 'CODE1' = 'code1'", CI, `UPDATE ${CI} SET code = 'CODE1' WHERE code = 'code1'`, '(CODE1)', 'CODE1'],
  ] as const) {
    it(`refuses to delete a subscriber row whose key the publisher holds: ${name}`, async () => {
      await ctx.pair.sub.query(local);
      await settle(ctx.sub);
      const q = parseTableName(t);
      const v = await verifyPair(ctx.pub, ctx.sub, { table: q, deadline: Deadline.after(20_000) });
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
    const v = await verifyPair(ctx.pub, ctx.sub, { table: q, deadline: Deadline.after(20_000) });
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
    const v = await verifyPair(ctx.pub, ctx.sub, { table: q, deadline: Deadline.after(20_000) });
    expect(v.mismatches).toHaveLength(1);
    const { plan } = await planBucket(ctx.pub, ctx.sub, q, v.mismatches[0]?.bucket as string, { pair: 'i' });
    expect(plan.changes.map((c) => c.op)).toEqual(['delete', 'upsert']);
    const local = await connect(ctx.pair.subscriberDsn, 'subscriber');
    try {
      await local.query('BEGIN');
      await local.query(`SELECT * FROM ${K} WHERE v = 'x' FOR UPDATE`);
      await local.query(`INSERT INTO ${K} VALUES ('a')`);
      const repair = applyPlan(
        ctx.pub,
        ctx.sub,
        { id: 'keyless-cas', ...plan },
        { deadline: Deadline.after(20_000), applyLockTimeoutMs: 5000 },
      );
      expect(await applyWorkerWaiting(5000)).toBe(true);
      await local.query('COMMIT');
      const o = await repair;
      expect(o.changes.map((c) => c.outcome)).toEqual(['applied', 'changed_since_inspection']);
    } finally {
      await local.close();
    }
    const { rows } = await ctx.pair.sub.query<{ n: string }>(`SELECT count(*) AS n FROM ${K} WHERE v = 'a'`);
    expect(Number(rows[0]?.n)).toBe(2); // before the fix: 3 (the repair added a copy beside the local one)
  });
});
