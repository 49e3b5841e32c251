// Issue 17 item A1: a subscription owned by a non-superuser role other than syncguard's installer.
// Tables owned by `app`; the subscription created by `subowner` (PG16+: a member of
// pg_create_subscription, granted app WITH SET TRUE; PG15: made its owner by a superuser, granted
// app); syncguard installed and the table registered by sg_owner. Before the fix the first verify
// sent probes the apply worker could not apply (it may not SET ROLE to the owner of syncguard.probe,
// or lacks INSERT on it), and replication stopped. Now nothing of syncguard reaches such a
// subscriber, verify says what it does instead and prints the fix; with the fix applied, probes work.

import { afterAll, describe, expect, inject, it } from 'vitest';
import { type Cluster, type ClusterInfo, startCluster } from '../../dev/cluster.js';
import { OWNER } from '../../dev/pair.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { subscriptionApplyCheck } from '../../functions/flows/apply-rights.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { applyErrorCount, rowArrives as rowArrivesOn } from '../support/replication.js';
import { connectAs } from '../support/roles.js';
import { applyFix, disposeScenarios, type Opened, PW, type Scenario, scenario } from '../support/subscription-owner.js';
import { enableProbes } from '../support/syncguard.js';

const T = 'public.orders';
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const open: Opened[] = [];
const ownClusters: Cluster[] = [];

afterAll(async () => {
  await disposeScenarios(open);
  for (const c of ownClusters) await c.stop();
});

const scenarioOn = (subscriber: ClusterInfo, label: string, runAsOwner: boolean | null) =>
  scenario(open, inject('publisherCluster'), subscriber, label, T, runAsOwner);
const applyErrors = (s: Scenario) => applyErrorCount(s.pair);
const rowArrives = (s: Scenario, id: number) => rowArrivesOn(s.pair, T, id);

async function probeInSubscription(s: Scenario): Promise<boolean> {
  const { rows } = await s.pair.sub.query(
    `SELECT 1 FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
      WHERE s.subname = $1 AND r.srrelid = 'syncguard.probe'::regclass`,
    [s.pair.name],
  );
  return rows.length > 0;
}

async function check(s: Scenario, expectedFix: RegExp, privilegeMode: boolean): Promise<void> {
  // 1. verify: replication keeps running, and verify says what it did instead, with the fix
  const first = await verifyPair(s.pub, s.sub, { table: parseTableName(T), deadline: Deadline.after(20_000) });
  expect(await rowArrives(s, 10_001)).toBe(true);
  expect(await applyErrors(s)).toBe(0);
  expect(await probeInSubscription(s)).toBe(false);
  expect(first.reasons).toEqual([]);
  expect(first.status).toBe('in_sync');
  expect(first.tables.map((t) => t.method)).toEqual(['two_rounds']);
  const check1 = await subscriptionApplyCheck(s.sub, s.pair.name);
  expect(check1.ok).toBe(false);
  if (check1.ok) return;
  expect(check1.fix.join('; ')).toMatch(expectedFix);
  expect(check1.fix.join('; ')).not.toMatch(new RegExp(`GRANT "?${OWNER}"? TO`)); // never the installer's role
  const warning = first.warnings.find((w) => w.includes('probes cannot reach it'));
  expect(warning).toContain(s.subowner);
  expect(warning).toContain(check1.fix.at(-1));

  // 2. the printed fix; then the probe route is added and probes work
  await applyFix(s, check1.fix);
  expect((await subscriptionApplyCheck(s.sub, s.pair.name)).ok).toBe(true);
  await enableProbes(s.pair);
  expect(await probeInSubscription(s)).toBe(true);
  // a writer keeps a bucket dirty: only a probe settles it
  let writing = true;
  const writer = (async () => {
    for (let i = 0; writing; i++) await s.pair.pub.query(`UPDATE ${T} SET v = $1 WHERE id = 7`, [`w${i}`]);
  })();
  let second: Awaited<ReturnType<typeof verifyPair>>;
  try {
    await sleep(200);
    second = await verifyPair(s.pub, s.sub, { table: parseTableName(T), deadline: Deadline.after(20_000) });
  } finally {
    writing = false;
    await writer;
  }
  expect(second.reasons).toEqual([]);
  expect(second.status).toBe('in_sync');
  expect(second.tables.map((t) => t.method)).toEqual(['probe']);
  expect(second.probes.probes).toBeGreaterThan(0);
  // probe rows deleted on the publisher are applied too (DELETE)
  await s.pair.pub.query('DELETE FROM syncguard.probe');
  expect(await rowArrives(s, 10_002)).toBe(true);
  expect(await applyErrors(s)).toBe(0);

  // the subscription owner may SET ROLE to the tables' owner, and so add a trigger on
  // syncguard.probe that would run before syncguard's: then probes are not trusted at all
  if (!privilegeMode) {
    await s.pair.sub.query('CREATE FUNCTION public.sg_foreign() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NEW; END $$');
    const so = await connectAs(s.pair.subscriberDsn, s.subowner, PW);
    try {
      const role = (
        await s.sub.query<{ r: string }>('SELECT relowner::regrole::text AS r FROM pg_class WHERE oid = $1::regclass', ['syncguard.probe'])
      ).rows[0]?.r;
      await so.query(
        `SET ROLE ${role}; CREATE TRIGGER a_foreign BEFORE INSERT ON syncguard.probe FOR EACH ROW EXECUTE FUNCTION public.sg_foreign(); RESET ROLE`,
      );
      const third = await verifyPair(s.pub, s.sub, { table: parseTableName(T), deadline: Deadline.after(20_000) });
      expect(third.tables.map((t) => t.method)).toEqual(['two_rounds']);
      expect(third.warnings.join('\n')).toContain('trigger a_foreign on probe, which syncguard did not create');
      await so.query(`SET ROLE ${role}; DROP TRIGGER a_foreign ON syncguard.probe; RESET ROLE`);
    } finally {
      await so.close();
    }
    expect(await rowArrives(s, 10_003)).toBe(true);
  }

  // 3. an application role cannot insert probes, nor can the subscription owner granted the
  // dedicated role WITH INHERIT FALSE (only after SET ROLE, and then no answer is computed); nobody
  // but syncguard writes an answer
  for (const role of [s.writer, s.subowner]) {
    const c = await connectAs(s.pair.subscriberDsn, role, PW);
    try {
      const insert = "INSERT INTO syncguard.probe (origin, id, kind) VALUES (gen_random_uuid(), 1, 'marker')";
      if (role === s.writer || !privilegeMode) await expect(c.query(insert)).rejects.toThrow(/permission denied/);
      await expect(c.query('INSERT INTO syncguard.probe_result (origin, id, ok) VALUES (gen_random_uuid(), 1, true)')).rejects.toThrow(
        /permission denied/,
      );
    } finally {
      await c.close();
    }
  }
}

describe('a subscription owned by a non-superuser other than the installer', () => {
  it('PostgreSQL 18, run_as_owner = false: no probe reaches it until it may SET ROLE to syncguard_apply', async () => {
    const s = await scenarioOn(inject('subscriberCluster'), 'apo_off', false);
    await check(s, /GRANT "syncguard_apply_[a-z0-9_]+" TO "subowner_[a-z0-9]+" WITH SET TRUE, INHERIT FALSE/, false);
  });

  it('PostgreSQL 18, run_as_owner = true: no probe reaches it until it may read, insert and delete probes', async () => {
    const s = await scenarioOn(inject('subscriberCluster'), 'apo_on', true);
    await check(s, /^GRANT SELECT, INSERT, DELETE ON syncguard\.probe TO "subowner_[a-z0-9]+"$/, true);
  });

  it('PostgreSQL 15 subscriber: no probe reaches it until it may read, insert and delete probes', async () => {
    const c = await startCluster('subscriber15', 15);
    ownClusters.push(c);
    const s = await scenarioOn(c, 'apo_15', null);
    expect(s.major).toBe(15);
    await check(s, /^GRANT SELECT, INSERT, DELETE ON syncguard\.probe TO "subowner_[a-z0-9]+"$/, true);
  });
});
