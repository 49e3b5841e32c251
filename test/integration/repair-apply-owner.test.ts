// Inspect and repair through a subscription owned by a non-superuser other than the installer
// (issue 17 item A1 follow-up). The probe trigger answers an inspection and applies a repair
// inside the apply worker; the apply worker writes syncguard.probe with the subscription owner's
// rights (PostgreSQL 16+ with run_as_owner off: after SET ROLE to the dedicated owner of
// syncguard.probe; with run_as_owner on: its own SELECT, INSERT, DELETE on it). With the grant
// syncguard prints, a drifted row is inspected and repaired, and replication keeps running.

import { afterAll, describe, expect, inject, it } from 'vitest';
import type { ClusterInfo } from '../../dev/cluster.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import { Deadline } from '../../functions/db/deadline.js';
import { subscriptionApplyCheck } from '../../functions/flows/apply-rights.js';
import { applyPlan, planBucket } from '../../functions/flows/repair.js';
import { verifyPair } from '../../functions/flows/verify.js';
import { applyErrorCount, rowArrives } from '../support/replication.js';
import { applyFix, disposeScenarios, type Opened, scenario } from '../support/subscription-owner.js';
import { enableProbes } from '../support/syncguard.js';

const T = 'public.drifted';
const open: Opened[] = [];

afterAll(async () => {
  await disposeScenarios(open);
});

async function repairsThrough(subscriber: ClusterInfo, label: string, runAsOwner: boolean, expectedFix: RegExp): Promise<void> {
  const s = await scenario(open, inject('publisherCluster'), subscriber, label, T, runAsOwner);
  const check = await subscriptionApplyCheck(s.sub, s.pair.name);
  expect(check.ok).toBe(false);
  if (check.ok) return;
  expect(check.fix.join('; ')).toMatch(expectedFix);
  await applyFix(s, check.fix);
  expect((await subscriptionApplyCheck(s.sub, s.pair.name)).ok).toBe(true);
  await enableProbes(s.pair);

  // drift on the subscriber: a changed row, a missing one and an extra one in one bucket
  await s.pair.sub.query(
    `UPDATE ${T} SET v = 'drifted' WHERE id = 7; DELETE FROM ${T} WHERE id = 8; INSERT INTO ${T} VALUES (9999, 'extra')`,
  );
  const before = await verifyPair(s.pub, s.sub, { table: parseTableName(T), deadline: Deadline.after(20_000) });
  expect(before.status).toBe('diverged');
  expect(before.tables.map((t) => t.method)).toEqual(['probe']);
  expect(await applyErrorCount(s.pair)).toBe(0);

  for (const m of before.mismatches) {
    const { inspection, plan } = await planBucket(s.pub, s.sub, parseTableName(T), m.bucket, { pair: 'test' });
    expect(inspection.diffs.length).toBeGreaterThan(0);
    const outcome = await applyPlan(s.pub, s.sub, { id: `test-${m.bucket}`, ...plan });
    expect(outcome.changes.filter((c) => c.outcome !== 'applied')).toEqual([]);
    expect(outcome.counts).toEqual({ applied: plan.rowCount });
    expect(outcome.bucketAfter).toBe('equal');
  }
  expect(await rowArrives(s.pair, T, 10_001)).toBe(true);
  expect(await applyErrorCount(s.pair)).toBe(0);
  const { rows } = await s.pair.sub.query(`SELECT id, v FROM ${T} WHERE id IN (7, 8, 9999) ORDER BY id`);
  expect(rows).toEqual([
    { id: 7, v: 'v7' },
    { id: 8, v: 'v8' },
  ]);
  const after = await verifyPair(s.pub, s.sub, { table: parseTableName(T), deadline: Deadline.after(20_000) });
  expect(after.status).toBe('in_sync');
  expect(await applyErrorCount(s.pair)).toBe(0);
}

describe('inspect and repair through a subscription owned by a non-superuser other than the installer', () => {
  it('PostgreSQL 18, run_as_owner = false, with the dedicated owner granted WITH SET TRUE, INHERIT FALSE', async () => {
    await repairsThrough(
      inject('subscriberCluster'),
      'rao_off',
      false,
      /GRANT "syncguard_apply_[a-z0-9_]+" TO "subowner_[a-z0-9]+" WITH SET TRUE, INHERIT FALSE/,
    );
  });

  it('PostgreSQL 18, run_as_owner = true, with SELECT, INSERT, DELETE on syncguard.probe', async () => {
    await repairsThrough(
      inject('subscriberCluster'),
      'rao_on',
      true,
      /^GRANT SELECT, INSERT, DELETE ON syncguard\.probe TO "subowner_[a-z0-9]+"$/,
    );
  });
});
