// A pair with an accounts table (T) and a control plane in its own database, with login roles
// that are not its owner: a writer with the documented grants and every job, an approver, and a
// dashboard that only reads; for the files that plan, approve and repair as those roles through
// the CLI.

import { expect } from 'vitest';
import type { Client } from '../../functions/db/connect.js';
import { cli } from './cli.js';
import { useControlPlane } from './control-plane.js';
import { register, settle } from './syncguard.js';
import { usePair } from './use-pair.js';

export const T = 'public.accounts';

/** Call at top level. */
export function usePlanRoles() {
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
  const planAs = async (role: string, bucket: string) => {
    const r = await cli('plan', ...pairArgs(), '--table', T, '--bucket', bucket, '--control-dsn', dsnAs(role));
    expect(r.code, r.err.join('\n')).toBe(0);
    return Number(/stored as plan (\d+)/.exec(r.out.join('\n'))?.[1]);
  };

  const rowOf = async (c: Client, id: number) =>
    (await c.query(`SELECT id, balance::text, note FROM ${T} WHERE id = $1`, [id])).rows[0] ?? null;

  return { ctx, control, writer, approver, dashboard, dsnAs, asRole, pairArgs, planAs, rowOf };
}
