// What a repair is judged against is the subscriber's own (node 0029), against real replication:
//   4c: the subscriber keeps each inspection's snapshot; a request that names no inspection (one
//       carrying only a snapshot, forged or from an old client) is refused, and a forged snapshot
//       beside a real inspection changes nothing;
//   4b: an inspection taken before local_write was emptied is refused (emptied here by hand as a
//       crash empties it; repair-crash.test.ts crashes a server).

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { useRepairRole, wire } from '../support/repair-requests.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.ri_rows';

const ctx = usePair({
  label: 'rinsp',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text);`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(0, 999) i;`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});
const { directRequest } = useRepairRole(ctx);

const table = parseTableName(T);

async function subValue(id: number): Promise<string | null | undefined> {
  const { rows } = await ctx.pair.sub.query<{ v: string | null }>(`SELECT v FROM ${T} WHERE id = $1`, [id]);
  return rows.length === 0 ? undefined : (rows[0]?.v ?? null);
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
