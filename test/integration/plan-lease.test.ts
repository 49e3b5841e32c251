// A claim's lease (control plane 0006), against real replication and a control plane in its own
// database, with the runs as non-superuser logins granted the applier kind. A run that claims a
// plan and is killed before its repair request reached the publisher used to leave the plan
// 'applying' for ever (every later run: "already being applied"). Now, while its lease holds,
// another run is refused with PlanClaimedError naming the run, its login and when the lease ends;
// after it ends, and with no request of the plan on the publisher, another run takes the plan
// over and applies it, and the killed run's retry is refused. A claim is idempotent for the same
// run as the same login, which renews its lease; the same claim id from another login is refused.

import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { superuserDsn } from '../../dev/cluster.js';
import { OWNER } from '../../dev/pair.js';
import { plainNode } from '../../dev/plain-node.js';
import { ERROR_NAMES } from '../../functions/core/errors.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { installControl } from '../../functions/db/install.js';
import { claimPlan, finishPlan, loadPlan, releasePlan } from '../../functions/db/plans.js';
import { repairRequestsOf } from '../../functions/db/repair.js';
import { applyStoredPlan, decidePlan, storePlan } from '../../functions/flows/plans.js';
import { planBucket } from '../../functions/flows/repair.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.lease_rows';

const ctx = usePair({
  label: 'please',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, v text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, 'v' || i FROM generate_series(1, 300) i`);
    await pair.pub.query(`CREATE DATABASE ${pair.name}_ctl OWNER ${OWNER}`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

const runA = () => `${ctx.pair.name}_runa`;
const runB = () => `${ctx.pair.name}_runb`;
const reviewer = () => `${ctx.pair.name}_reviewer`;
const ownerCtl = () => ctx.pair.publisherDsn.replace(/\/([^/?]+)$/, '/$1_ctl');
const dsnAs = (role: string) => ownerCtl().replace(/\/\/[^@]+@/, `//${role}:pw-${role}@`);

let owner: Client;
let a: Client;
let b: Client;
let approver: Client;

beforeAll(async () => {
  owner = await connect(ownerCtl(), 'control');
  await installControl(owner);
  const admin = await plainNode(superuserDsn(ctx.pair.publisher, `${ctx.pair.name}_ctl`));
  try {
    for (const r of [runA(), runB(), reviewer()]) await admin.query(`CREATE ROLE ${r} LOGIN PASSWORD 'pw-${r}'`);
  } finally {
    await admin.close();
  }
  for (const r of [runA(), runB()]) await owner.query("SELECT syncguard_control.grant_role($1, 'applier')", [r]);
  await owner.query("SELECT syncguard_control.grant_role($1, 'approver')", [reviewer()]);
  a = await connect(dsnAs(runA()), 'control');
  b = await connect(dsnAs(runB()), 'control');
  approver = await connect(dsnAs(reviewer()), 'control');
});

afterAll(async () => {
  for (const c of [owner, a, b, approver]) await c?.close().catch(() => {});
  await ctx.pair.pub.query(`DROP DATABASE IF EXISTS ${ctx.pair.name}_ctl WITH (FORCE)`).catch(() => {});
  for (const r of [runA(), runB(), reviewer()]) await ctx.pair.pub.query(`DROP ROLE IF EXISTS ${r}`).catch(() => {});
});

async function approvedPlan(ids: number[], bucket: string, expiresAt?: string): Promise<number> {
  await ctx.pair.sub.query(`UPDATE ${T} SET v = 'drift' WHERE id = ANY($1)`, [ids]);
  await settle(ctx.sub);
  const { plan } = await planBucket(ctx.pub, ctx.sub, parseTableName(T), bucket, { pair: 'p' });
  const { planId } = await storePlan(owner, expiresAt === undefined ? plan : { ...plan, expiresAt });
  await decidePlan(approver, { planId, decision: 'approved', fourEyes: false });
  return planId;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const ISO = '\\d{4}-\\d\\d-\\d\\dT\\d\\d:\\d\\d:\\d\\d\\.\\d{3}Z';

describe('a claim has a lease (control plane 0006)', () => {
  it('refuses a live claim naming who holds it and until when; takes over a killed run once its lease ended', async () => {
    const planId = await approvedPlan([10, 20], '0');
    // the run that is killed: it claims the plan (a 2-second lease) and dies before sending anything
    expect((await claimPlan(a, planId, 'exec:A', 2)).state).toBe('applying');
    expect(await repairRequestsOf(ctx.pub, parseTableName(T), String(planId))).toEqual([]);

    // while the lease holds, another run is refused, told whose claim it is and until when
    const refused = await applyStoredPlan(b, ctx.pub, ctx.sub, { planId, claim: 'exec:B', deadline: Deadline.after(20_000) }).catch(
      (e: Error) => e,
    );
    expect(refused).toMatchObject({ name: ERROR_NAMES.PlanClaimedError });
    expect((refused as Error).message).toMatch(
      new RegExp(`^plan ${planId} is being applied by run exec:A \\(db:${runA()}\\), whose claim holds until ${ISO}; wait for it`),
    );
    expect((await loadPlan(owner, planId))?.claimId).toBe('exec:A');

    await sleep(2500);
    // the lease ended and no request of the plan is on the publisher: this run takes it over
    const done = await applyStoredPlan(b, ctx.pub, ctx.sub, { planId, claim: 'exec:B', deadline: Deadline.after(20_000) });
    expect(done.counts).toEqual({ applied: 2 });
    expect(done.bucketAfter).toBe('equal');
    const stored = await loadPlan(owner, planId);
    expect(stored).toMatchObject({ state: 'applied', claimId: 'exec:B', claim: { by: `db:${runB()}` } });
    expect(await repairRequestsOf(ctx.pub, parseTableName(T), String(planId))).toHaveLength(1);
    const { rows } = await ctx.pair.sub.query(`SELECT v FROM ${T} WHERE id IN (10, 20) ORDER BY id`);
    expect(rows).toEqual([{ v: 'v10' }, { v: 'v20' }]);
    // the audit trail says who took it from whom
    const events = await owner.query(
      'SELECT action, claim_id, claimed_by, from_claim, from_by FROM syncguard_control.plan_claim_event WHERE plan_id = $1 ORDER BY event_id',
      [planId],
    );
    expect(events.rows).toEqual([
      { action: 'claimed', claim_id: 'exec:A', claimed_by: `db:${runA()}`, from_claim: null, from_by: null },
      { action: 'taken_over', claim_id: 'exec:B', claimed_by: `db:${runB()}`, from_claim: 'exec:A', from_by: `db:${runA()}` },
    ]);
    // the killed run, had it come back, records nothing and sends nothing
    await expect(claimPlan(a, planId, 'exec:A')).rejects.toMatchObject({ name: ERROR_NAMES.PlanAlreadyAppliedError });
    await expect(finishPlan(a, { planId, claim: 'exec:A', outcome: {}, bucketEqual: true })).rejects.toThrow(
      /is not being applied by this run/,
    );
  });

  it('a run taken over learns it before it sends: its renewal is refused', async () => {
    const planId = await approvedPlan([110, 120], '1');
    expect((await claimPlan(a, planId, 'exec:A2', 1)).state).toBe('applying');
    await sleep(1500);
    // the take-over is refused unless it names the claim whose lease ended
    await expect(b.query("SELECT syncguard_control.take_over_plan($1, 'exec:B2', 'exec:other', 60)", [planId])).rejects.toThrow(
      /is no longer claimed by run exec:other/,
    );
    await b.query("SELECT syncguard_control.take_over_plan($1, 'exec:B2', 'exec:A2', 60)", [planId]);
    // the first run wakes up and renews its claim before sending: refused, with the new holder
    await expect(claimPlan(a, planId, 'exec:A2', 1)).rejects.toThrow(
      new RegExp(`plan ${planId} is being applied by run exec:B2 \\(db:${runB()}\\), whose claim holds until ${ISO}`),
    );
    expect(await releasePlan(b, planId, 'exec:B2')).toBeUndefined();
    expect((await loadPlan(owner, planId))?.state).toBe('approved');
  });

  it('is idempotent for the same run as the same login, which renews its lease; another login with that claim is refused', async () => {
    const planId = await approvedPlan([210], '2');
    const first = await claimPlan(a, planId, 'exec:X', 60);
    await sleep(50);
    const again = await claimPlan(a, planId, 'exec:X', 60);
    expect(again).toMatchObject({ state: 'applying', claimedBy: `db:${runA()}` });
    expect(Date.parse(again.leaseUntil as string)).toBeGreaterThan(Date.parse(first.leaseUntil as string));
    // the claim id is the workflow's execution, which others can read: it is not enough to take the claim
    await expect(claimPlan(b, planId, 'exec:X', 60)).rejects.toMatchObject({
      name: ERROR_NAMES.PlanClaimedError,
      message: expect.stringMatching(new RegExp(`being applied by run exec:X \\(db:${runA()}\\), whose claim holds until`)),
    });
    await expect(b.query("SELECT syncguard_control.take_over_plan($1, 'exec:Y', 'exec:X')", [planId])).rejects.toThrow(
      /whose claim holds until/,
    );
    // nor to give the claim back or to record an outcome while the lease holds
    await releasePlan(b, planId, 'exec:X');
    expect((await loadPlan(owner, planId))?.state).toBe('applying');
    await expect(finishPlan(b, { planId, claim: 'exec:X', outcome: { forged: true }, bucketEqual: true })).rejects.toThrow(
      new RegExp(`being applied by run exec:X \\(db:${runA()}\\), whose claim holds until .*only that login records its outcome`),
    );
    expect((await loadPlan(owner, planId))?.state).toBe('applying');
    // a lease outside 1 second .. 1 day is refused
    await expect(claimPlan(a, planId, 'exec:X', 0)).rejects.toThrow(/a claim's lease is 1 to 86400 seconds, got 0/);
    // the run applies it under its claim
    const done = await applyStoredPlan(a, ctx.pub, ctx.sub, { planId, claim: 'exec:X', deadline: Deadline.after(20_000) });
    expect(done.counts).toEqual({ applied: 1 });
    // a claim is not renewed past the plan's expiry: nothing more is sent for an expired plan
    const late = await approvedPlan([220], '2', new Date(Date.now() + 1500).toISOString());
    await claimPlan(a, late, 'exec:Z', 60);
    await sleep(1600);
    await expect(claimPlan(a, late, 'exec:Z', 60)).rejects.toThrow(/expired at .* while run exec:Z applied it; .*nothing more is sent/);
  });

  it('the new functions are callable only through grant_role kinds, and the new tables are written only through them', async () => {
    const planId = await approvedPlan([260], '2');
    await expect(approver.query("SELECT syncguard_control.take_over_plan($1, 'x', 'y')", [planId])).rejects.toThrow(
      /permission denied for function take_over_plan/,
    );
    await expect(a.query('SELECT syncguard_control.deployment_id()')).rejects.toThrow(/permission denied for function deployment_id/);
    await expect(
      a.query("INSERT INTO syncguard_control.plan_claim_event (plan_id, action, claim_id, claimed_by) VALUES ($1, 'claimed', 'x', 'y')", [
        planId,
      ]),
    ).rejects.toThrow(/permission denied/);
    const { rows } = await owner.query<{ secdef: boolean; config: string[]; public: boolean }>(
      `SELECT p.prosecdef AS secdef, p.proconfig AS config, has_function_privilege('public', p.oid, 'EXECUTE') AS public
         FROM pg_proc p WHERE p.oid IN ('syncguard_control.take_over_plan(bigint, text, text, integer)'::regprocedure,
                                        'syncguard_control.claim_plan(bigint, text, integer)'::regprocedure,
                                        'syncguard_control.deployment_id()'::regprocedure)`,
    );
    expect(rows).toEqual(Array(3).fill({ secdef: true, config: ['search_path=pg_catalog, pg_temp'], public: false }));
  });
});
