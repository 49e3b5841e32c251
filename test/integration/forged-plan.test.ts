// Issue 17 item 18, the black-box scenario exactly: as a control-plane writer (a role with the
// documented SELECT, INSERT, UPDATE on syncguard_control's tables, not its owner), plan an upsert
// for a locally changed row, rewrite the plan's change to {"op":"delete","keyValues":[...]}
// keeping its pubHash, recompute the old (client-side, unkeyed) checksum, leave body.sql as it
// was, approve as another role, repair. On the code before the fix the subscriber row was
// deleted while the publisher holds it (and the publisher's next update of it was dropped on
// apply). Now the rewrite is refused by the control plane, the approved plan is the reviewed
// upsert, the row ends equal to the publisher's and replication keeps applying it.

import pg from 'pg';
import { describe, expect, it } from 'vitest';
import { superuserDsn } from '../../dev/cluster.js';
import { OWNER } from '../../dev/pair.js';
import { TableRef } from '../../functions/core/identifiers.js';
import { planChecksum } from '../../functions/core/repair-plan.js';
import { loadPlan } from '../../functions/db/plans.js';
import { cli } from '../support/cli.js';
import { useControlPlane } from '../support/control-plane.js';
import { applyErrorCount } from '../support/replication.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.accounts';

const ctx = usePair({
  label: 'forged',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, balance bigint NOT NULL, note text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, i, 'n' || i FROM generate_series(1, 3000) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 1000 });
    await settle(pub);
    await settle(sub);
  },
});

// a writer with the documented grants and every job; an approver; a dashboard that only reads
const control = useControlPlane(ctx, {
  roles: [
    { suffix: 'writer', access: 'write', jobs: ['recorder', 'planner', 'approver', 'applier'] },
    { suffix: 'approver', access: 'write', jobs: ['approver'] },
    { suffix: 'dashboard', access: 'read' },
  ],
});
const writer = () => control.role('writer');
const approver = () => control.role('approver');
const dashboard = () => control.role('dashboard');
const dsnAs = (role: string) => control.dsnOf(role);
const asRole = control.as;
const pairArgs = () => ['--publisher-dsn', ctx.pair.publisherDsn, '--subscriber-dsn', ctx.pair.subscriberDsn];
const applyErrors = () => applyErrorCount(ctx.pair);
const planAs = async (role: string, bucket: string) => {
  const r = await cli('plan', ...pairArgs(), '--table', T, '--bucket', bucket, '--control-dsn', dsnAs(role));
  expect(r.code, r.err.join('\n')).toBe(0);
  return Number(/stored as plan (\d+)/.exec(r.out.join('\n'))?.[1]);
};

const rowOf = async (c: pg.Client, id: number) =>
  (await c.query(`SELECT id, balance::text, note FROM ${T} WHERE id = $1`, [id])).rows[0] ?? null;

describe('a plan rewritten by a control-plane writer (item 18)', () => {
  it('is refused; the subscriber row is not deleted and replication keeps applying it', async () => {
    const errors = await applyErrors();
    await ctx.pair.sub.query(`UPDATE ${T} SET note = 'local change' WHERE id = 42`);

    const planned = await cli('plan', ...pairArgs(), '--table', T, '--bucket', '0', '--control-dsn', dsnAs(writer()));
    expect(planned.code).toBe(0);
    const planId = Number(/stored as plan (\d+)/.exec(planned.out.join('\n'))?.[1]);
    expect(planId).toBeGreaterThan(0);

    // the forgery: the change becomes a delete (pubHash kept), the old checksum recomputed, body.sql left as it was
    const w = new pg.Client({ connectionString: dsnAs(writer()) });
    await w.connect();
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
      await w.end();
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

// Item 9: identities come from the server, four-eyes is the deployment's, and the checksum covers
// what the reviewer reads and is computed and checked by the control plane.
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
    const admin = new pg.Client({ connectionString: superuserDsn(ctx.pair.publisher, control.database()) });
    await admin.connect();
    await admin.query(`GRANT ALL ON ALL TABLES IN SCHEMA syncguard_control TO ${writer()}`);
    await admin.end();
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

// Review finding 1: PostgreSQL gives PUBLIC EXECUTE on every new function, so a role with only USAGE
// on the schema could decide, claim and release plans and take or replace task tokens.
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
