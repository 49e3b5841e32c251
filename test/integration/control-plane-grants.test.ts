// The control plane's functions are granted per job (review finding 1): PostgreSQL gives PUBLIC
// EXECUTE on every new function, so a role with only USAGE on the schema could decide, claim and
// release plans and take or replace task tokens; and a task token is stored once, only while its
// plan awaits the decision.

import { describe, expect, it } from 'vitest';
import { OWNER } from '../../dev/pair.js';
import { cli } from '../support/cli.js';
import { T, usePlanRoles } from '../support/plan-roles.js';

const { ctx, writer, approver, dashboard, dsnAs, asRole, pairArgs, planAs } = usePlanRoles();

describe('the control plane functions are granted per job (review finding 1)', () => {
  it('a role with USAGE and SELECT only cannot approve, claim, release or touch task tokens', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'drift' WHERE id = 2001`);
    const planId = await planAs(writer(), '2');
    await asRole(dashboard(), async (d) => {
      // it reads the plan
      expect((await d.query('SELECT state FROM syncguard_control.repair_plan WHERE plan_id = $1', [planId])).rows).toEqual([
        { state: 'proposed' },
      ]);
      for (const [sql, args] of [
        ["SELECT syncguard_control.decide_plan($1, 'approved')", [planId]],
        ["SELECT syncguard_control.create_plan('{}'::jsonb)", []],
        ["SELECT syncguard_control.claim_plan($1, 'x')", [planId]],
        ["SELECT syncguard_control.finish_plan($1, 'x', '{}'::jsonb, true)", [planId]],
        ["SELECT syncguard_control.release_plan($1, 'x')", [planId]],
        ["SELECT syncguard_control.set_task_token($1, 'stolen')", [planId]],
        ['SELECT syncguard_control.take_task_token($1)', [planId]],
        ["SELECT syncguard_control.record_run('{}'::jsonb, '{}'::jsonb)", []],
        ["SELECT syncguard_control.grant_role($1, 'approver')", [dashboard()]],
      ] as const) {
        await expect(d.query(sql, [...args]), sql).rejects.toThrow(/permission denied for function/);
      }
    });
    await asRole(OWNER, async (c) => {
      const r = await c.query<{ state: string; task_token: string | null }>(
        'SELECT state, task_token FROM syncguard_control.repair_plan WHERE plan_id = $1',
        [planId],
      );
      expect(r.rows).toEqual([{ state: 'proposed', task_token: null }]);
    });
    expect((await cli('approve', '--plan', String(planId), '--control-dsn', dsnAs(approver()))).code).toBe(0);
    {
      const r = await cli('repair', ...pairArgs(), '--plan', String(planId), '--control-dsn', dsnAs(writer()));
      expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: [] });
    }
  });

  it('stores a task token once, and only while the plan awaits its decision', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'drift' WHERE id = 2101`);
    const planId = await planAs(writer(), '2');
    await asRole(OWNER, async (c) => {
      const set = async (t: string) =>
        (await c.query<{ r: string }>('SELECT syncguard_control.set_task_token($1, $2) AS r', [planId, t])).rows[0]?.r;
      const stored = async () =>
        (await c.query<{ t: string | null }>('SELECT task_token AS t FROM syncguard_control.repair_plan WHERE plan_id = $1', [planId]))
          .rows[0]?.t;
      expect(await set('token-1')).toBe('proposed');
      expect(await set('token-1')).toBe('proposed'); // the same wait, again
      await expect(set('token-2')).rejects.toThrow(/already has a workflow waiting for its decision; its task token is not replaced/);
      expect(await stored()).toBe('token-1');
      // not taken while the plan waits
      expect((await c.query('SELECT syncguard_control.take_task_token($1) AS t', [planId])).rows[0]?.t).toBeNull();
      expect(await stored()).toBe('token-1');
    });
    expect((await cli('approve', '--plan', String(planId), '--control-dsn', dsnAs(approver()))).code).toBe(0);
    await asRole(OWNER, async (c) => {
      // decided: a new token is not stored (its caller completes it), the waiting one is taken once
      expect((await c.query('SELECT syncguard_control.set_task_token($1, $2) AS r', [planId, 'token-3'])).rows[0]?.r).toBe('approved');
      expect((await c.query('SELECT syncguard_control.take_task_token($1) AS t', [planId])).rows[0]?.t).toBe('token-1');
      expect((await c.query('SELECT syncguard_control.take_task_token($1) AS t', [planId])).rows[0]?.t).toBeNull();
    });
    {
      const r = await cli('repair', ...pairArgs(), '--plan', String(planId), '--control-dsn', dsnAs(writer()));
      expect({ code: r.code, err: r.err }).toEqual({ code: 0, err: [] });
    }
  });
});
