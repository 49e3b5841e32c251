// The nodes do not trust what a repair request says (issue 17, items 10, 11 and 2), against real
// replication:
//   10: repair_request, called directly by a holder of the repair role, cannot delete a row the
//       publisher holds (a delete means "absent on the publisher"), nor a row other than its key;
//   11: the subscriber's compare-and-set is one statement: a local writer that commits while the
//       repair waits for its row lock keeps its write (update and delete);
//   2:  a local row lock on a planned key does not stall the apply worker: the change is recorded
//       as failed after a bounded wait and replication keeps flowing.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { readRowValues } from '../../functions/db/repair.js';
import { probeTargetOf } from '../../functions/flows/inspect.js';
import { CheckedPair } from '../../functions/flows/pair.js';
import { awaitAnswers } from '../../functions/flows/probes.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.trust_rows';
const ROLE = 'sg_trust_repairer';
const PW = 'trust-repairer-pw';

const ctx = usePair({
  label: 'rtrust',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(0, 999) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

let repairer: Client; // the repair role on the publisher

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
  await repairer?.close();
});

const table = parseTableName(T);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function subValue(id: number): Promise<string | null | undefined> {
  const { rows } = await ctx.pair.sub.query<{ v: string | null }>(`SELECT v FROM ${T} WHERE id = $1`, [id]);
  return rows.length === 0 ? undefined : (rows[0]?.v ?? null);
}

/** Calls repair_request directly, as the repair role, and waits for the subscriber's answer. */
async function directRequest(bucket: string, changes: unknown[]): Promise<unknown> {
  const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table);
  await repairer.query('BEGIN');
  const { rows } = await repairer.query<{ r: { id: string | null } }>('SELECT syncguard.repair_request($1, $2, $3, $4, $5, $6, $7) AS r', [
    table.schema,
    table.table,
    bucket,
    JSON.stringify(changes),
    'forged',
    t.target,
    t.subscription,
  ]);
  await repairer.query('COMMIT');
  const id = rows[0]?.r.id;
  if (id === null || id === undefined) return rows[0]?.r;
  const waited = await awaitAnswers(ctx.sub, t.origin, [String(id)], Deadline.after(10_000), [t.subscription]);
  await ctx.pair.catchUp();
  return waited.answers.get(String(id))?.answer;
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

describe('item 10: the node checks what a repair request says', () => {
  it('refuses a delete of a row the publisher holds, even with its current hash', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'local' WHERE id = 5`);
    await settle(ctx.sub);
    const pubRow = (await readRowValues(ctx.pub, table, '0', ['(5)'])).rows.get('(5)');
    const subRow = (await readRowValues(ctx.sub, table, '0', ['(5)'])).rows.get('(5)');
    expect(pubRow).toBeDefined();
    await directRequest('0', [{ key: '(5)', op: 'delete', subHash: subRow?.hash, pubHash: pubRow?.hash, keyValues: ['5'] }]);
    expect(await subValue(5)).toBe('local'); // before the fix: deleted (undefined)
  });

  it('refuses a change whose key values are not its key', async () => {
    await ctx.pair.sub.query(`INSERT INTO ${T} VALUES (1050, 'extra')`);
    await settle(ctx.sub);
    const extra = (await readRowValues(ctx.sub, table, '10', ['(1050)'])).rows.get('(1050)');
    expect(extra).toBeDefined();
    const answer = await directRequest('10', [{ key: '(1050)', op: 'delete', subHash: extra?.hash, pubHash: null, keyValues: ['20'] }]);
    expect(await subValue(20)).toBe('v20'); // before the fix: deleted
    expect(JSON.stringify(answer)).not.toMatch(/"applied"/);
    await ctx.pair.sub.query(`DELETE FROM ${T} WHERE id = 1050`);
  });
});

describe('item 11: the compare-and-set is one statement', () => {
  it('keeps a local write that commits while the repair waits for the row (update and delete)', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = 110; INSERT INTO ${T} VALUES (1150, 'extra')`);
    await settle(ctx.sub);
    const p1 = (await planBucket(ctx.pub, ctx.sub, table, '1', { pair: 't' })).plan;
    const p11 = (await planBucket(ctx.pub, ctx.sub, table, '11', { pair: 't' })).plan;
    expect(p1.rowCount + p11.rowCount).toBe(2);
    const local = await connect(ctx.pair.subscriberDsn, 'subscriber');
    try {
      await local.query('BEGIN');
      await local.query(`UPDATE ${T} SET v = 'local-later' WHERE id IN (110, 1150)`);
      const repairs = Promise.all([
        applyPlan(ctx.pub, ctx.sub, { id: 'cas1', ...p1 }, { deadline: Deadline.after(20_000), applyLockTimeoutMs: 5000 }),
        (async () => {
          await sleep(200);
          return applyPlan(ctx.pub, ctx.sub, { id: 'cas11', ...p11 }, { deadline: Deadline.after(20_000), applyLockTimeoutMs: 5000 });
        })(),
      ]);
      expect(await applyWorkerWaiting(5000)).toBe(true);
      await sleep(300);
      await local.query('COMMIT');
      const [o1, o11] = await repairs;
      expect(o1.changes.map((c) => c.outcome)).toEqual(['changed_since_inspection']);
      expect(o11.changes.map((c) => c.outcome)).toEqual(['changed_since_inspection']);
    } finally {
      await local.close();
    }
    expect(await subValue(110)).toBe('local-later'); // before the fix: overwritten with v110
    expect(await subValue(1150)).toBe('local-later'); // before the fix: deleted
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'v110' WHERE id = 110; DELETE FROM ${T} WHERE id = 1150`);
  });
});

describe('item 2: a local row lock does not stall replication', () => {
  it('records the change as failed after a bounded wait; replication keeps flowing', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = 210`);
    await settle(ctx.sub);
    const { plan } = await planBucket(ctx.pub, ctx.sub, table, '2', { pair: 't' });
    expect(plan.rowCount).toBe(1);
    const holder = await connect(ctx.pair.subscriberDsn, 'subscriber');
    try {
      await holder.query('BEGIN');
      await holder.query(`SELECT * FROM ${T} WHERE id = 210 FOR UPDATE`);
      const outcome = await applyPlan(ctx.pub, ctx.sub, { id: 'stall', ...plan }, { deadline: Deadline.after(8000) });
      // replication flows while the lock is still held
      await ctx.pair.pub.query(`INSERT INTO ${T} VALUES (2500, 'after')`);
      await ctx.pair.catchUp(5000);
      expect(await subValue(2500)).toBe('after');
      expect(outcome.changes).toEqual([expect.objectContaining({ key: '(210)', outcome: 'failed', error: expect.stringMatching(/lock/) })]);
      expect(await subValue(210)).toBe('drift');
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.close();
    }
    await ctx.pair.catchUp();
  });
});
