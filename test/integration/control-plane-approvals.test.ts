// Approvals recorded by the control plane (issue 17 item 9), as control-plane roles that are not
// its owner: identities come from the server, four-eyes is the deployment's, and the checksum
// covers what the reviewer reads and is computed and checked by the control plane.

import { describe, expect, it } from 'vitest';
import { superuserDsn } from '../../dev/cluster.js';
import { OWNER } from '../../dev/pair.js';
import { plainNode } from '../../dev/plain-node.js';
import { loadPlan } from '../../functions/db/plans.js';
import { cli } from '../support/cli.js';
import { T, usePlanRoles } from '../support/plan-roles.js';

const { ctx, control, writer, approver, dsnAs, asRole, pairArgs, planAs, rowOf } = usePlanRoles();

describe('approvals recorded by the control plane (item 9)', () => {
  it('a writer cannot record a decision, or a decision in another name, by writing the tables', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'drift' WHERE id = 1001`);
    const planId = await planAs(writer(), '1');
    await asRole(writer(), async (w) => {
      await expect(
        w.query(
          "INSERT INTO syncguard_control.plan_approval (plan_id, checksum, decision, decided_by) SELECT plan_id, checksum, 'approved', 'someone else' FROM syncguard_control.repair_plan WHERE plan_id = $1",
          [planId],
        ),
      ).rejects.toThrow(/permission denied/);
      await expect(w.query("UPDATE syncguard_control.repair_plan SET state = 'approved' WHERE plan_id = $1", [planId])).rejects.toThrow(
        /permission denied/,
      );
      // nor in an AWS principal's name through the function: only the trusted roles may pass one
      await expect(
        w.query("SELECT syncguard_control.decide_plan($1, 'approved', NULL, false, 'arn:aws:iam::123456789012:user/alice')", [planId]),
      ).rejects.toThrow(/may not record an AWS identity/);
      // nor change the deployment's policy
      await expect(w.query('SELECT syncguard_control.set_approval_policy(false)')).rejects.toThrow(/permission denied/);
    });
    // a GRANT given after the install does not open the tables again
    const admin = await plainNode(superuserDsn(ctx.pair.publisher, control.database()));
    await admin.query(`GRANT ALL ON ALL TABLES IN SCHEMA syncguard_control TO ${writer()}`);
    await admin.close();
    await asRole(writer(), async (w) => {
      await expect(w.query("UPDATE syncguard_control.repair_plan SET state = 'approved' WHERE plan_id = $1", [planId])).rejects.toThrow(
        /permission denied: repair_plan is written only through the syncguard_control functions/,
      );
      await expect(w.query('DELETE FROM syncguard_control.plan_approval')).rejects.toThrow(/permission denied/);
    });
    // the approval is recorded as the login that made it, whatever the caller claims
    expect((await cli('approve', '--plan', String(planId), '--control-dsn', dsnAs(approver()))).out[0]).toMatch(
      new RegExp(`^plan ${planId} approved by db:${approver()} \\(checksum sha256:[0-9a-f]{64}\\)$`),
    );
    const recorded = await asRole(
      approver(),
      async (c) =>
        (
          await c.query(
            'SELECT p.created_by, a.decided_by, a.checksum = p.checksum AS same FROM syncguard_control.repair_plan p JOIN syncguard_control.plan_approval a USING (plan_id) WHERE plan_id = $1',
            [planId],
          )
        ).rows,
    );
    expect(recorded).toEqual([{ created_by: `db:${writer()}`, decided_by: `db:${approver()}`, same: true }]);
    {
      const r = await cli('repair', ...pairArgs(), '--plan', String(planId), '--control-dsn', dsnAs(writer()));
      expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: [] });
    }
  });

  it('enforces four-eyes when the control plane says so, whatever the approver passes', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'drift' WHERE id = 1101`);
    const planId = await planAs(writer(), '1');
    await asRole(OWNER, (c) => c.query('SELECT syncguard_control.set_approval_policy(true)'));
    try {
      const self = await cli('approve', '--plan', String(planId), '--control-dsn', dsnAs(writer()));
      expect(self.code).toBe(2);
      expect(self.err[0]).toMatch(new RegExp(`four-eyes approval is on: db:${writer()} made plan ${planId} and may not approve it`));
      expect((await cli('approve', '--plan', String(planId), '--control-dsn', dsnAs(approver()))).code).toBe(0);
    } finally {
      await asRole(OWNER, (c) => c.query('SELECT syncguard_control.set_approval_policy(false)'));
    }
    {
      const r = await cli('repair', ...pairArgs(), '--plan', String(planId), '--control-dsn', dsnAs(writer()));
      expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: [] });
    }
  });

  it('stores a plan only when its SQL preview shows its changes, and applies it only as approved', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'drift' WHERE id = 1201`);
    const planId = await planAs(writer(), '1');
    const stored = await asRole(writer(), async (c) => loadPlan(c, planId));
    const forged = {
      pair: stored?.pair,
      table: T,
      bucket: '1',
      fingerprint: stored?.fingerprint,
      expiresAt: stored?.expiresAt,
      body: {
        changes: [{ ...stored?.changes[0], op: 'delete', keyValues: ['1201'], values: undefined }],
        sql: stored?.sql,
      },
    };
    await asRole(writer(), async (c) => {
      await expect(c.query('SELECT syncguard_control.create_plan($1)', [JSON.stringify(forged)])).rejects.toThrow(
        /the plan's SQL preview does not show its changes: change 1 \(key \(1201\)\) is a delete, but its statement is INSERT/,
      );
    });
    // the owner (who may write the tables) edits the preview after the approval: refused at apply
    expect((await cli('approve', '--plan', String(planId), '--control-dsn', dsnAs(approver()))).code).toBe(0);
    await asRole(OWNER, (c) =>
      c.query(
        "UPDATE syncguard_control.repair_plan SET body = jsonb_set(body, '{sql}', to_jsonb((body->>'sql') || ' ')) WHERE plan_id = $1",
        [planId],
      ),
    );
    const r = await cli('repair', ...pairArgs(), '--plan', String(planId), '--control-dsn', dsnAs(writer()));
    expect(r.code).toBe(2);
    expect(r.err[0]).toMatch(/was approved as sha256:[0-9a-f]+, but is now sha256:[0-9a-f]+/);
    expect(await rowOf(ctx.pair.sub, 1201)).toEqual({ id: 1201, balance: '1201', note: 'drift' });
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'n1201' WHERE id = 1201`);
  });
});
