// The control plane's functions are granted per job (review finding 1): PostgreSQL gives PUBLIC
// EXECUTE on every new function, so a role with only USAGE on the schema could decide, claim and
// release plans and take or replace task tokens; and a task token is stored once, only while its
// plan awaits the decision.

import { describe, expect, it } from 'vitest';
import { OWNER } from '../../dev/pair.js';
import { connect } from '../../functions/db/connect.js';
import { controlDefinitions } from '../../functions/db/generated/migrations.js';
import { installControl } from '../../functions/db/install.js';
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

  it("an install gives every login its kind's functions as they are now (a function a release adds to a kind reaches it)", async () => {
    const holds = async (c: { query: typeof ctx.pair.pub.query }, role: string, fn: string) =>
      (await c.query<{ ok: boolean }>('SELECT has_function_privilege($1, $2, $3) AS ok', [role, fn, 'EXECUTE'])).rows[0]?.ok;
    const takeOver = 'syncguard_control.take_over_plan(bigint, text, text, integer)';
    await asRole(OWNER, async (c) => {
      // as if the writer had been made an applier by a release before take_over_plan was an applier's
      await c.query(`REVOKE EXECUTE ON FUNCTION ${takeOver} FROM ${writer()}`);
      expect(await holds(c, writer(), takeOver)).toBe(false);
      // a release whose definitions differ from those installed
      const r = await installControl(c, { definitions: { ...controlDefinitions, checksum: '0'.repeat(16) } });
      expect(r.definitions).toBe(true);
      expect(await holds(c, writer(), takeOver)).toBe(true);
      // nothing more than its kinds: the approver is no applier, the dashboard holds no function
      expect(await holds(c, approver(), takeOver)).toBe(false);
      expect(await holds(c, dashboard(), 'syncguard_control.decide_plan(bigint, text, text, boolean, text, text)')).toBe(false);
      expect(await holds(c, approver(), 'syncguard_control.decide_plan(bigint, text, text, boolean, text, text)')).toBe(true);
      expect((await installControl(c)).definitions).toBe(true); // back to this release's checksum
    });
  });

  it('a recorder writes the run tables only; install takes back the writes on plans and approvals an earlier grant_role gave', async () => {
    const db = `${ctx.pair.name}_rec`;
    const recorder = `${ctx.pair.name}_oldrec`;
    await ctx.pair.pub.query(`CREATE DATABASE ${db} OWNER ${OWNER}`);
    await ctx.pair.pub.query(`CREATE ROLE ${recorder} LOGIN`);
    const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/?]+)$/, `/${db}`), 'control-plane database');
    const may = async (table: string, what: string) =>
      (await c.query<{ ok: boolean }>('SELECT has_table_privilege($1, $2, $3) AS ok', [recorder, `syncguard_control.${table}`, what]))
        .rows[0]?.ok;
    try {
      // the release before: its grant_role gave a recorder INSERT and UPDATE on every table
      await installControl(c, { upTo: 6 });
      await c.query("SELECT syncguard_control.grant_role($1, 'recorder')", [recorder]);
      expect([await may('repair_plan', 'INSERT'), await may('plan_approval', 'UPDATE')]).toEqual([true, true]);
      // this release: taken back on install, the run tables kept, and record_run still callable
      await installControl(c);
      for (const t of ['repair_plan', 'plan_approval', 'approval_policy', 'plan_claim_event', 'deployment'])
        for (const w of ['INSERT', 'UPDATE', 'DELETE']) expect(await may(t, w), `${w} on ${t}`).toBe(false);
      for (const t of ['verification_run', 'divergence', 'divergence_event', 'table_verified'])
        expect([await may(t, 'INSERT'), await may(t, 'UPDATE')], t).toEqual([true, true]);
      const { rows } = await c.query<{ ok: boolean }>(
        "SELECT has_function_privilege($1, 'syncguard_control.record_run(jsonb, jsonb)', 'EXECUTE') AS ok",
        [recorder],
      );
      expect(rows[0]?.ok).toBe(true);
      // and a recorder granted now gets no more
      await c.query("SELECT syncguard_control.grant_role($1, 'recorder')", [recorder]);
      expect(await may('repair_plan', 'INSERT')).toBe(false);
    } finally {
      await c.close();
      await ctx.pair.pub.query(`DROP DATABASE ${db} WITH (FORCE)`);
      await ctx.pair.pub.query(`DROP ROLE ${recorder}`);
    }
  });

  it('leaves no syncguard function, old or added by this release, executable by PUBLIC, on the node or the control plane', async () => {
    const publicFunctions = async (c: { query: typeof ctx.pub.query }, schema: string) =>
      (
        await c.query<{ fn: string }>(
          `SELECT p.oid::regprocedure::text AS fn FROM pg_proc p
             CROSS JOIN LATERAL aclexplode(coalesce(p.proacl, acldefault('f', p.proowner))) a
            WHERE p.pronamespace = $1::regnamespace AND a.grantee = 0 AND a.privilege_type = 'EXECUTE'`,
          [schema],
        )
      ).rows.map((r) => r.fn);
    expect(await publicFunctions(ctx.pub, 'syncguard')).toEqual([]);
    expect(await publicFunctions(ctx.sub, 'syncguard')).toEqual([]);
    await asRole(OWNER, async (c) => expect(await publicFunctions(c, 'syncguard_control')).toEqual([]));
  });
});
