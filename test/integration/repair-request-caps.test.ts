// The node caps what one repair request and one inspection hold the subscriber's apply worker for
// (12): the changes of one request, the waits of one request, and the waits of all requests of
// one inspection; against real replication.

import { describe, expect, it } from 'vitest';
import { parseTableName } from '../../functions/core/identifiers.js';
import { connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
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
      const o = await applyPlan(
        ctx.pub,
        ctx.sub,
        { id: 'budget', ...plan },
        { deadline: Deadline.after(40_000), applyLockTimeoutMs: 5000 },
      );
      expect(o.changes.map((c) => c.outcome)).toEqual(['failed', 'failed', 'failed']);
      expect(o.changes[1]?.error).toMatch(/used its 5000 ms/);
      expect(o.applyMs).toBeLessThan(7000); // before the fix: three waits of 5 s, 15 s
    } finally {
      await holder.query('ROLLBACK').catch(() => {});
      await holder.close();
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
      await holder.close();
    }
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'v' || id WHERE id IN (410, 411, 412, 413)`);
  });
});
