// What the subscriber's catalogue says about a subscription's owner and syncguard's replicated
// tables (core/apply-rights.ts decides). Every role can read these columns of pg_subscription,
// pg_subscription_rel, pg_class and pg_roles, and call pg_has_role / has_table_privilege.

import { type ApplyFacts, type ApplyTable, applyRoleSetup } from '../core/apply-rights.js';
import { IncompatibleError } from '../core/errors.js';
import { type Client, one } from './connect.js';
import { SQLSTATE, sqlstateOf } from './sqlstate.js';

/** PostgreSQL 13 lets only superusers read pg_subscription: a named error instead of a raw 42501. */
async function readSubscriptions<T>(sub: Client, q: () => Promise<T>): Promise<T> {
  try {
    return await q();
  } catch (e) {
    if (sqlstateOf(e) !== SQLSTATE.insufficientPrivilege) throw e;
    const { rows } = await sub.query<{ me: string }>('SELECT current_user AS me');
    throw new IncompatibleError(
      `role ${rows[0]?.me} may not read pg_subscription on the subscriber (PostgreSQL 13 lets only superusers), so syncguard cannot tell whether a subscription's owner could apply probes; no probe is sent (verify compares in two rounds)`,
    );
  }
}

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
  const { rows } = await readSubscriptions(sub, () =>
    sub.query<{ owner: string; super: boolean; bypass: boolean; run_as_owner: boolean; tables: ApplyTable[] }>(
      `SELECT r.rolname AS owner, r.rolsuper AS super, r.rolbypassrls AS bypass, ${runAsOwner} AS run_as_owner,
            (SELECT coalesce(json_agg(json_build_object(
                      'table', c.relname, 'owner', o.rolname, 'canSetRole', ${canSet},
                      'select', has_table_privilege(s.subowner, c.oid, 'SELECT'),
                      'insert', has_table_privilege(s.subowner, c.oid, 'INSERT'),
                      'update', has_table_privilege(s.subowner, c.oid, 'UPDATE'),
                      'delete', has_table_privilege(s.subowner, c.oid, 'DELETE'),
                      'ownerSelect', has_table_privilege(c.relowner, c.oid, 'SELECT'),
                      'ownerInsert', has_table_privilege(c.relowner, c.oid, 'INSERT'),
                      'ownerUpdate', has_table_privilege(c.relowner, c.oid, 'UPDATE'),
                      'ownerDelete', has_table_privilege(c.relowner, c.oid, 'DELETE'),
                      'rls', c.relrowsecurity) ORDER BY c.relname), '[]')
               FROM pg_class c JOIN pg_roles o ON o.oid = c.relowner
              WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = 'syncguard')
                AND c.relkind IN ('r', 'p')
                AND (c.relname = 'probe' OR c.oid IN (SELECT sr.srrelid FROM pg_subscription_rel sr WHERE sr.srsubid = s.oid))) AS tables
       FROM pg_subscription s JOIN pg_roles r ON r.oid = s.subowner
      WHERE s.subname = $1 AND s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())`,
      [subscription],
    ),
  );
  const r = rows[0];
  if (r === undefined) return null;
  return {
    subscription,
    major,
    owner: r.owner,
    ownerSuper: r.super,
    ownerBypassRls: r.bypass,
    runAsOwner: r.run_as_owner,
    ...names,
    tables: r.tables,
  };
}

/** Subscriptions of the subscriber's database that carry one of these syncguard tables. */
export async function subscriptionsCarrying(sub: Client, tables: readonly string[]): Promise<string[]> {
  const { rows } = await readSubscriptions(sub, () =>
    sub.query<{ name: string }>(
      `SELECT DISTINCT s.subname AS name FROM pg_subscription s JOIN pg_subscription_rel sr ON sr.srsubid = s.oid
       JOIN pg_class c ON c.oid = sr.srrelid
      WHERE c.relnamespace = (SELECT n.oid FROM pg_namespace n WHERE n.nspname = 'syncguard') AND c.relname = ANY($1)
        AND s.subdbid = (SELECT d.oid FROM pg_database d WHERE d.datname = current_database())
      ORDER BY 1`,
      [tables],
    ),
  );
  return rows.map((r) => r.name);
}

export interface ApplyOwner {
  readonly role: string;
  readonly exists: boolean;
  readonly member: boolean;
  readonly adopted: boolean;
  /** Why an existing role of that name was not adopted (it could log in, owns other objects, ...). */
  readonly unsafe?: string;
  /** When not adopted: what an administrator runs before installing again. */
  readonly setup: readonly string[];
}

/** Gives syncguard.probe to its dedicated owner where the installer may (sql/node/0026). */
export async function adoptApplyOwner(c: Client, label: string): Promise<ApplyOwner> {
  let rows: { r: { role: string; exists: boolean; member: boolean; adopted: boolean; unsafe?: string }; me: string; v: number }[];
  try {
    ({ rows } = await c.query(
      "SELECT syncguard._adopt_apply_owner() AS r, current_user AS me, current_setting('server_version_num')::int AS v",
    ));
  } catch (e) {
    if (sqlstateOf(e) === SQLSTATE.lockNotAvailable) {
      throw new IncompatibleError(
        `on the ${label}, install could not take the lock on syncguard.probe within 5 s to give it to its own role (another session holds it; the apply worker would have waited behind it); nothing was installed; run syncguard install again when no long transaction reads syncguard.probe`,
      );
    }
    throw e;
  }
  const { r, me, v } = one(rows, 'syncguard._adopt_apply_owner');
  if (r.unsafe !== undefined)
    return { ...r, setup: [`DROP ROLE ${JSON.stringify(r.role)} (${r.unsafe}: syncguard does not give it syncguard.probe)`] };
  return { ...r, setup: r.adopted ? [] : applyRoleSetup(r.role, me, r.exists, Math.floor(v / 10000)) };
}
