// A repair run killed after it sent its request (issue 17, item 22), against real replication: the
// apply workers are stopped, a run claims the plan and sends the request, and dies there (the plan
// stays `applying`, with no outcome). Once the workers run again, applying the plan again recovers
// the outcome from the nodes (the request on the publisher, its answer on the subscriber) instead
// of saying "already applied; nothing to do", and the plan ends `applied` with that outcome.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserDsn } from '../../dev/cluster.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { installControl } from '../../functions/db/install.js';
import { claimPlan, loadPlan } from '../../functions/db/plans.js';
import { repairRequestsOf, sendRepair } from '../../functions/db/repair.js';
import { probeTargetOf } from '../../functions/flows/inspect.js';
import { CheckedPair } from '../../functions/flows/pair.js';
import { applyStoredPlan, decidePlan, storePlan } from '../../functions/flows/plans.js';
import { planBucket } from '../../functions/flows/repair.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.recover_rows';

const ctx = usePair({
  label: 'rrecover',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 500) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

let owner: Client;
let approver: Client;

beforeAll(async () => {
  await ctx.pair.pub.query(`CREATE DATABASE ${ctx.pair.name}_ctl OWNER sg_owner`);
  owner = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
  await installControl(owner);
  approver = await connect(superuserDsn(ctx.pair.publisher, `${ctx.pair.name}_ctl`), 'control');
});

afterAll(async () => {
  await owner?.close();
  await approver?.close();
  await ctx.pair.pub.query(`DROP DATABASE IF EXISTS ${ctx.pair.name}_ctl WITH (FORCE)`).catch(() => {});
});

describe('item 22: a plan left applying by a killed run', () => {
  it('recovers the outcome from the nodes when the plan is applied again', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id IN (10, 20)`);
    await settle(ctx.sub);
    const table = parseTableName(T);
    const { plan } = await planBucket(ctx.pub, ctx.sub, table, '0', { pair: 'p' });
    const { planId } = await storePlan(owner, plan);
    await decidePlan(approver, { planId, decision: 'approved', fourEyes: false });
    await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} DISABLE`);
    try {
      // the run that dies: it claims the plan and sends the request, then nothing more
      expect((await claimPlan(owner, planId, 'run:killed')).state).toBe('applying');
      const t = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), table);
      const sent = await sendRepair(ctx.pub, {
        table,
        bucket: '0',
        changes: plan.changes,
        plan: String(planId),
        target: t.target,
        subscription: t.subscription,
        scheme: t.scheme,
        lockTimeoutMs: 20,
        ...(plan.inspection === undefined ? {} : { inspection: plan.inspection }),
      });
      expect(sent.sent).toBe(2);
    } finally {
      await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} ENABLE`);
    }
    const done = await applyStoredPlan(owner, ctx.pub, ctx.sub, { planId, deadline: Deadline.after(20_000) });
    expect(done.counts).toEqual({ applied: 2 });
    expect(done.bucketAfter).toBe('equal');
    const stored = await loadPlan(owner, planId);
    expect(stored?.state).toBe('applied');
    expect((stored?.outcome as { counts?: unknown } | null)?.counts).toEqual({ applied: 2 });
    const { rows } = await ctx.pair.sub.query(`SELECT v FROM ${T} WHERE id IN (10, 20) ORDER BY id`);
    expect(rows).toEqual([{ v: 'v10' }, { v: 'v20' }]);
  });

  // review finding 3: answers that never came are not recorded as final
  it('keeps a plan applying while its answers have not come, and the same run recovers it without sending again', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id IN (110, 120)`);
    await settle(ctx.sub);
    const table = parseTableName(T);
    const { plan } = await planBucket(ctx.pub, ctx.sub, table, '1', { pair: 'p' });
    const { planId } = await storePlan(owner, plan);
    await decidePlan(approver, { planId, decision: 'approved', fourEyes: false });
    await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} DISABLE`);
    try {
      await expect(applyStoredPlan(owner, ctx.pub, ctx.sub, { planId, claim: 'run:a', deadline: Deadline.after(1500) })).rejects.toThrow(
        /the subscriber has not answered 2 of 2 changes in time .*the plan stays applying and nothing is sent again/,
      );
      expect((await loadPlan(owner, planId))?.state).toBe('applying');
    } finally {
      await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} ENABLE`);
    }
    const done = await applyStoredPlan(owner, ctx.pub, ctx.sub, { planId, claim: 'run:a', deadline: Deadline.after(20_000) });
    expect(done.counts).toEqual({ applied: 2 });
    expect(await repairRequestsOf(ctx.pub, table, String(planId))).toHaveLength(1);
    expect((await loadPlan(owner, planId))?.state).toBe('applied');
  });

  // review finding 2: a request that was sent is not released, and the run's retry does not send it again
  it('does not release a plan whose request was sent when the run fails after sending', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id IN (210, 220)`);
    await settle(ctx.sub);
    const table = parseTableName(T);
    const { plan } = await planBucket(ctx.pub, ctx.sub, table, '2', { pair: 'p' });
    const { planId } = await storePlan(owner, plan);
    await decidePlan(approver, { planId, decision: 'approved', fourEyes: false });
    await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} DISABLE`);
    const lost = await connect(ctx.pair.subscriberDsn, 'subscriber');
    try {
      const pid = (await lost.query<{ pid: number }>('SELECT pg_backend_pid() AS pid')).rows[0]?.pid;
      // the run loses its subscriber connection while it waits for the answers
      const kill = setTimeout(() => void ctx.pair.sub.query('SELECT pg_terminate_backend($1)', [pid]), 1000);
      await expect(applyStoredPlan(owner, ctx.pub, lost, { planId, claim: 'run:b', deadline: Deadline.after(10_000) })).rejects.toThrow();
      clearTimeout(kill);
      expect(await repairRequestsOf(ctx.pub, table, String(planId))).toHaveLength(1);
      expect((await loadPlan(owner, planId))?.state).toBe('applying');
    } finally {
      await lost.close().catch(() => {});
      await ctx.pair.sub.query(`ALTER SUBSCRIPTION ${ctx.pair.name} ENABLE`);
    }
    const done = await applyStoredPlan(owner, ctx.pub, ctx.sub, { planId, claim: 'run:b', deadline: Deadline.after(20_000) });
    expect(done.counts).toEqual({ applied: 2 });
    expect(await repairRequestsOf(ctx.pub, table, String(planId))).toHaveLength(1);
    const { rows } = await ctx.pair.sub.query(`SELECT v FROM ${T} WHERE id IN (210, 220) ORDER BY id`);
    expect(rows).toEqual([{ v: 'v210' }, { v: 'v220' }]);
  });
});
