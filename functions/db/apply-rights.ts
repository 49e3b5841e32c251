// What the subscriber's catalogue says about a subscription's owner and syncguard's replicated
// tables (core/apply-rights.ts decides). Every role can read these columns of pg_subscription,
// pg_subscription_rel, pg_class and pg_roles, and call pg_has_role / has_table_privilege.

import { type ApplyFacts, type ApplyTable, applyRoleSetup } from '../core/apply-rights.js';
import { type Client, one } from './connect.js';

/**
 * The facts for one subscription of the subscriber's database: its owner, run_as_owner, and for
 * syncguard.probe and every other logged syncguard table in the subscription, its owner and the
 * subscription owner's rights on it. `names` comes from syncguard.probe_route(). Null when the
 * subscription does not exist here.
 */
export async function applyFacts(
  sub: Client,
  subscription: string,
  major: number,
  names: { installer: string; applyRole: string; applyRoleExists: boolean },
): Promise<ApplyFacts | null> {
  const runAsOwner = major >= 16 ? 's.subrunasowner' : 'false';
  const canSet = major >= 16 ? "pg_has_role(s.subowner, c.relowner, 'SET')" : "pg_has_role(s.subowner, c.relowner, 'MEMBER')";
  const { rows } = await sub.query<{ owner: string; super: boolean; run_as_owner: boolean; tables: ApplyTable[] }>(
    `SELECT r.rolname AS owner, r.rolsuper AS super, ${runAsOwner} AS run_as_owner,
            (SELECT coalesce(json_agg(json_build_object(
                      'table', c.relname, 'owner', o.rolname, 'canSetRole', ${canSet},
                      'select', has_table_privilege(s.subowner, c.oid, 'SELECT'),
                      'insert', has_table_privilege(s.subowner, c.oid, 'INSERT'),
                      'update', has_table_privilege(s.subowner, c.oid, 'UPDATE'),
                      'delete', has_table_privilege(s.subowner, c.oid, 'DELETE')) ORDER BY c.relname), '[]')
               FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner
              WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = 'syncguard')
                AND c.relkind IN ('r', 'p') AND c.relpersistence = 'p'
                AND (c.relname = 'probe' OR c.oid IN (SELECT sr.srrelid FROM pg_subscription_rel sr WHERE sr.srsubid = s.oid))) AS tables
       FROM pg_subscription s JOIN pg_roles r ON r.oid = s.subowner
      WHERE s.subname = $1 AND s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())`,
    [subscription],
  );
  const r = rows[0];
  if (r === undefined) return null;
  return {
    subscription,
    major,
    owner: r.owner,
    ownerSuper: r.super,
    runAsOwner: r.run_as_owner,
    ...names,
    tables: r.tables,
  };
}

/** Subscriptions of the subscriber's database that carry one of these syncguard tables. */
export async function subscriptionsCarrying(sub: Client, tables: readonly string[]): Promise<string[]> {
  const { rows } = await sub.query<{ name: string }>(
    `SELECT DISTINCT s.subname AS name FROM pg_subscription s JOIN pg_subscription_rel sr ON sr.srsubid = s.oid
       JOIN pg_class c ON c.oid = sr.srrelid
      WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = 'syncguard') AND c.relname = ANY($1)
        AND s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
      ORDER BY 1`,
    [tables],
  );
  return rows.map((r) => r.name);
}

export interface ApplyOwner {
  readonly role: string;
  readonly exists: boolean;
  readonly member: boolean;
  readonly adopted: boolean;
  /** When not adopted: what an administrator runs before installing again. */
  readonly setup: readonly string[];
}

/** Gives syncguard's logged tables to their dedicated owner where the installer may (sql/node/0026). */
export async function adoptApplyOwner(c: Client): Promise<ApplyOwner> {
  const { rows } = await c.query<{ r: { role: string; exists: boolean; member: boolean; adopted: boolean }; me: string; v: number }>(
    "SELECT syncguard._adopt_apply_owner() AS r, current_user AS me, current_setting('server_version_num')::int AS v",
  );
  const { r, me, v } = one(rows, 'syncguard._adopt_apply_owner');
  return { ...r, setup: r.adopted ? [] : applyRoleSetup(r.role, me, r.exists, Math.floor(v / 10000)) };
}
