// Issue 17 item 18, the black-box scenario exactly: as a control-plane writer (a role with the
// documented SELECT, INSERT, UPDATE on syncguard_control's tables, not its owner), plan an upsert
// for a locally changed row, rewrite the plan's change to {"op":"delete","keyValues":[...]}
// keeping its pubHash, recompute the old (client-side, unkeyed) checksum, leave body.sql as it
// was, approve as another role, repair. On the code before the fix the subscriber row was
// deleted while the publisher holds it (and the publisher's next update of it was dropped on
// apply). Now the rewrite is refused by the control plane, the approved plan is the reviewed
// upsert, the row ends equal to the publisher's and replication keeps applying it. And the
// control plane's preview check accepts every plan syncguard prints.

import { describe, expect, it } from 'vitest';
import { OWNER } from '../../dev/pair.js';
import { plainNode } from '../../dev/plain-node.js';
import { TableRef } from '../../functions/core/identifiers.js';
import { planChecksum } from '../../functions/core/repair-plan.js';
import { loadPlan } from '../../functions/db/plans.js';
import { cli } from '../support/cli.js';
import { T, usePlanRoles } from '../support/plan-roles.js';
import { applyErrorCount } from '../support/replication.js';

const { ctx, writer, approver, dsnAs, asRole, pairArgs, rowOf } = usePlanRoles();
const applyErrors = () => applyErrorCount(ctx.pair);

describe('a plan rewritten by a control-plane writer (item 18)', () => {
  it('is refused; the subscriber row is not deleted and replication keeps applying it', async () => {
    const errors = await applyErrors();
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'local change' WHERE id = 42`);

    const planned = await cli('plan', ...pairArgs(), '--table', T, '--bucket', '0', '--control-dsn', dsnAs(writer()));
    expect(planned.code).toBe(0);
    const planId = Number(/stored as plan (\d+)/.exec(planned.out.join('\n'))?.[1]);
    expect(planId).toBeGreaterThan(0);

    // the forgery: the change becomes a delete (pubHash kept), the old checksum recomputed, body.sql left as it was
    const w = await plainNode(dsnAs(writer()));
    let refused: string | null = null;
    try {
      await w.query(
        `UPDATE syncguard_control.repair_plan
            SET body = jsonb_set(body, '{changes,0}', jsonb_build_object(
                  'key', body#>'{changes,0,key}', 'op', 'delete', 'subHash', body#>'{changes,0,subHash}',
                  'pubHash', body#>'{changes,0,pubHash}', 'keyValues', '["42"]'::jsonb))
          WHERE plan_id = $1`,
        [planId],
      );
      const edited = await loadPlan(w, planId);
      await w.query('UPDATE syncguard_control.repair_plan SET checksum = $2 WHERE plan_id = $1', [planId, planChecksum(edited as never)]);
    } catch (err) {
      refused = (err as Error).message;
    } finally {
      await w.close();
    }

    const approved = await cli('approve', '--plan', String(planId), '--control-dsn', dsnAs(approver()));
    expect(approved.code).toBe(0);
    const repaired = await cli('repair', ...pairArgs(), '--plan', String(planId), '--control-dsn', dsnAs(writer()));

    await ctx.pair.catchUp();
    // the row the publisher holds is still on the subscriber, and equal to it
    expect(await rowOf(ctx.pair.sub, 42)).toEqual(await rowOf(ctx.pair.pub, 42));
    expect(repaired.code).toBe(0);
    // replication keeps applying it: the publisher's next update arrives
    await ctx.pair.pub.query(`UPDATE ${T} SET balance = -42 WHERE id = 42`);
    await ctx.pair.catchUp();
    expect(await rowOf(ctx.pair.sub, 42)).toEqual({ id: 42, balance: '-42', note: 'n42' });
    expect(await applyErrors()).toBe(errors);
    expect(refused).toMatch(/permission denied/);
  });
});

describe("the control plane's preview check accepts every plan syncguard prints", () => {
  it('keyed (composite, quotes, backslashes, NULLs) and keyless plans', async () => {
    const { planSql } = await import('../../functions/core/repair-plan.js');
    const cols = (keyColumns: string[]) => ({
      columns: ['a', 'b', 'c'],
      keyColumns,
      identityAlways: [],
      generated: [],
      content: 'ROW(sg_t.a, sg_t.b, sg_t.c)::text',
      rows: new Map(),
    });
    const changes = [
      { key: "(x'y,2)", op: 'delete' as const, subHash: '-12', pubHash: null, keyValues: ["x'y", '2'] },
      { key: '(a\\b,3)', op: 'delete' as const, subHash: '7', pubHash: null, keyValues: ['a\\b', '3'] },
      { key: '(k,1)', op: 'upsert' as const, subHash: null, pubHash: '99', values: ['k', '1', null] },
      { key: '(k,4)', op: 'upsert' as const, subHash: '5', pubHash: '6', values: ['k', '4', "it's \\ here\nnext"] },
    ];
    const keyless = [
      {
        key: 'd41d8cd98f00b204e9800998ecf8427e#2',
        op: 'delete' as const,
        subHash: '1',
        pubHash: null,
        keyValues: ['d41d8cd98f00b204e9800998ecf8427e'],
      },
      { key: 'aa#1', op: 'upsert' as const, subHash: null, pubHash: '2', values: ['x', null, 'y'] },
    ];
    const t = TableRef.of('public', 'Odd "name"');
    await asRole(OWNER, async (c) => {
      for (const [keys, list] of [
        [['a', 'b'], changes],
        [[], keyless],
      ] as const) {
        const sql = planSql(t, cols([...keys]), list);
        const { rows } = await c.query('SELECT syncguard_control._preview_mismatch($1, $2) AS why', [JSON.stringify(list), sql]);
        expect(rows, sql).toEqual([{ why: null }]);
      }
    });
  });
});
