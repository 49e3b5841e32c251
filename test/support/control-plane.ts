// A control-plane database of a pair's own, for files that plan, approve and repair: created on
// the publisher's server, owned by the pair's owner role, installed; with login roles that have
// what docs/deploy.md tells a deployer to grant; all dropped after the file.

import { afterAll, beforeAll } from 'vitest';
import { superuserDsn } from '../../dev/cluster.js';
import { OWNER } from '../../dev/pair.js';
import { plainNode } from '../../dev/plain-node.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { installControl } from '../../functions/db/install.js';
import { dropRoles, dsnAs } from './roles.js';
import type { PairContext } from './use-pair.js';

export interface ControlRole {
  /** The role is named `<pair>_<suffix>`, password `pw-<name>`. */
  readonly suffix: string;
  /** write: SELECT, INSERT, UPDATE on the control plane's tables; read: SELECT only (a dashboard). */
  readonly access: 'write' | 'read';
  /** The jobs it is granted by the owner (syncguard_control.grant_role): recorder, planner, approver, applier. */
  readonly jobs?: readonly string[];
}

export interface ControlPlane {
  /** The database's name. */
  readonly database: () => string;
  /** Its DSN as the owner role. */
  readonly dsn: () => string;
  /** A role's name by its suffix. */
  readonly role: (suffix: string) => string;
  /** Its DSN as a role made here (by name), or as the owner for OWNER. */
  readonly dsnOf: (role: string) => string;
  /** Runs f on a connection to it as that role, closed afterwards. */
  readonly as: <R>(role: string, f: (c: Client) => Promise<R>) => Promise<R>;
}

/** Call at top level, after usePair: the hooks run after the pair's setup and before its teardown. */
export function useControlPlane(
  ctx: PairContext,
  setup: { roles?: readonly ControlRole[]; afterInstall?: (owner: Client) => Promise<void> } = {},
): ControlPlane {
  const database = () => `${ctx.pair.name}_ctl`;
  const dsn = () => ctx.pair.publisherDsn.replace(/\/([^/?]+)$/, `/${database()}`);
  const role = (suffix: string) => `${ctx.pair.name}_${suffix}`;
  const dsnOf = (r: string) => (r === OWNER ? dsn() : dsnAs(dsn(), r, `pw-${r}`));
  const as = async <R>(r: string, f: (c: Client) => Promise<R>): Promise<R> => {
    const c = await plainNode(dsnOf(r));
    try {
      return await f(c);
    } finally {
      await c.close();
    }
  };

  beforeAll(async () => {
    await ctx.pair.pub.query(`CREATE DATABASE ${database()} OWNER ${OWNER}`);
    const roles = setup.roles ?? [];
    const owner = await connect(dsn(), 'control-plane database');
    try {
      await installControl(owner);
      const admin = await plainNode(superuserDsn(ctx.pair.publisher, database()));
      try {
        for (const r of roles) {
          const name = role(r.suffix);
          await admin.query(`CREATE ROLE ${name} LOGIN PASSWORD 'pw-${name}'`);
          await admin.query(`GRANT USAGE ON SCHEMA syncguard_control TO ${name}`);
          await admin.query(
            `GRANT ${r.access === 'write' ? 'SELECT, INSERT, UPDATE' : 'SELECT'} ON ALL TABLES IN SCHEMA syncguard_control TO ${name}`,
          );
          if (r.access === 'write') await admin.query(`GRANT USAGE ON ALL SEQUENCES IN SCHEMA syncguard_control TO ${name}`);
        }
      } finally {
        await admin.close();
      }
      // the functions each job calls, granted by the owner (docs/deploy.md)
      for (const r of roles)
        for (const job of r.jobs ?? []) await owner.query('SELECT syncguard_control.grant_role($1, $2)', [role(r.suffix), job]);
      await setup.afterInstall?.(owner);
    } finally {
      await owner.close();
    }
  });

  afterAll(async () => {
    await ctx.pair.pub.query(`DROP DATABASE IF EXISTS ${database()} WITH (FORCE)`).catch(() => {});
    await dropRoles(
      [ctx.pair.publisher],
      (setup.roles ?? []).map((r) => role(r.suffix)),
    );
  });

  return { database, dsn, role, dsnOf, as };
}
