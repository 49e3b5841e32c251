// Can a subscription's apply worker apply what syncguard writes to its replicated tables?
// (issue 17 item A1; docs/permissions.md "The subscription's owner".)
//
// PostgreSQL checks the apply worker's rights before any trigger runs, so an answer of "no" means
// a probe (or, under FOR ALL TABLES, an install or a registration) would stop the subscription:
//   - PostgreSQL 16+ with run_as_owner = false: the worker switches to each table's owner, and
//     its owner must be able to SET ROLE to that owner (superusers can);
//   - run_as_owner = true, and PostgreSQL 15: the worker writes as the subscription's owner, which
//     needs the privilege of each operation, and SELECT for a DELETE or UPDATE (measured on 18:
//     with INSERT and DELETE alone, a replicated DELETE of a probe stopped the subscription).
//     syncguard.probe only receives INSERT and DELETE (the publisher inserts probes and deletes old
//     ones, never updates one); the other logged tables receive all three.
// The fix never grants the installer's role: from 16 with run_as_owner off, the dedicated owner of
// syncguard.probe (sql/node/0026_apply_owner.sql), otherwise table privileges on syncguard.probe.
// Never a grant on syncguard.migration, registration or node_state (see checkApplyRights).

export interface ApplyTable {
  /** A logged syncguard table, by name in schema syncguard. */
  readonly table: string;
  readonly owner: string;
  /** The subscription's owner may SET ROLE to the table's owner (PostgreSQL 15: is a member). */
  readonly canSetRole: boolean;
  readonly select: boolean;
  readonly insert: boolean;
  readonly update: boolean;
  readonly delete: boolean;
  /** The table's owner's own privileges (an owner may revoke them from itself). */
  readonly ownerSelect: boolean;
  readonly ownerInsert: boolean;
  readonly ownerUpdate: boolean;
  readonly ownerDelete: boolean;
  /** relrowsecurity: apply into it as a role subject to row-level security is refused. */
  readonly rls: boolean;
}

export interface ApplyFacts {
  readonly subscription: string;
  readonly major: number;
  readonly owner: string;
  readonly ownerSuper: boolean;
  /** rolbypassrls of the subscription's owner. */
  readonly ownerBypassRls: boolean;
  /** subrunasowner (PostgreSQL 16+); false before. */
  readonly runAsOwner: boolean;
  /** The role that installed syncguard on the subscriber (owner of the schema). */
  readonly installer: string;
  /** The dedicated owner role's name for this database, and whether it exists. */
  readonly applyRole: string;
  readonly applyRoleExists: boolean;
  /** The syncguard tables syncguard's writes would reach this subscription through. */
  readonly tables: readonly ApplyTable[];
}

export type ApplyCheck =
  | { readonly ok: true }
  | {
      readonly ok: false;
      /** What the apply worker could not do, naming the subscription, its owner and the tables. */
      readonly reason: string;
      /** The steps that fix it, in order: SQL statements, or "syncguard install ..." to re-run. */
      readonly fix: readonly string[];
      /** PostgreSQL 16+: another fix, which lets the subscription owner run no DDL on syncguard.probe. */
      readonly alternative?: readonly string[];
    };

const ident = (s: string): string => `"${s.replace(/"/g, '""')}"`;

type Priv = 'SELECT' | 'INSERT' | 'UPDATE' | 'DELETE';

/** The privileges apply needs on a syncguard table. */
export const neededPrivileges = (table: string): readonly Priv[] =>
  table === 'probe' ? ['SELECT', 'INSERT', 'DELETE'] : ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

const has = (t: ApplyTable, p: Priv): boolean => t[p.toLowerCase() as 'select' | 'insert' | 'update' | 'delete'];
const ownerHas = (t: ApplyTable, p: Priv): boolean =>
  t[`owner${p[0]}${p.slice(1).toLowerCase()}` as 'ownerSelect' | 'ownerInsert' | 'ownerUpdate' | 'ownerDelete'];

/** What an administrator runs so that install can give syncguard.probe to its own role. */
export function applyRoleSetup(role: string, installer: string, exists: boolean, major: number): string[] {
  return [
    ...(exists ? [] : [`CREATE ROLE ${ident(role)} NOLOGIN NOINHERIT`]),
    major >= 16 ? `GRANT ${ident(role)} TO ${ident(installer)} WITH INHERIT TRUE, SET TRUE` : `GRANT ${ident(role)} TO ${ident(installer)}`,
  ];
}

/** Can this subscription apply writes to this table? Null when it can, else why not. */
function blockedBy(f: ApplyFacts, t: ApplyTable): string | null {
  const needed = neededPrivileges(t.table);
  if (f.major >= 16 && !f.runAsOwner) {
    if (!t.canSetRole) return `may not SET ROLE to ${t.owner}, the owner of syncguard.${t.table}`;
    const lacking = needed.filter((p) => !ownerHas(t, p));
    if (lacking.length > 0) return `${t.owner}, the owner of syncguard.${t.table}, lacks ${lacking.join(', ')} on it`;
    if (t.rls) return `syncguard.${t.table} has row-level security enabled`;
    return null;
  }
  const lacking = needed.filter((p) => !has(t, p));
  if (lacking.length > 0) return `lacks ${lacking.join(', ')} on syncguard.${t.table}`;
  if (t.rls && !f.ownerBypassRls) return `syncguard.${t.table} has row-level security enabled and ${f.owner} does not bypass it`;
  return null;
}

export function checkApplyRights(f: ApplyFacts): ApplyCheck {
  if (f.ownerSuper || f.tables.length === 0) return { ok: true };
  const who = `subscription ${f.subscription} (owner ${f.owner})`;
  const mode =
    f.major >= 16 && !f.runAsOwner
      ? "applies as each table's owner (run_as_owner = false)"
      : f.major >= 16
        ? 'applies as its owner (run_as_owner = true)'
        : `applies as its owner (PostgreSQL ${f.major})`;
  const blocked = f.tables.map((t) => ({ t, why: blockedBy(f, t) })).filter((b) => b.why !== null);
  if (blocked.length === 0) return { ok: true };
  const reason = `${who} ${mode}, and ${f.owner} ${blocked.map((b) => b.why).join('; ')}`;
  // syncguard.migration, registration and node_state (a FOR ALL TABLES publication) stay the
  // installer's: a role that may write registration text could make syncguard's SECURITY DEFINER
  // functions run its SQL, so syncguard prints no grant on them
  const state = blocked.filter((b) => b.t.table !== 'probe');
  if (state.length > 0) {
    return {
      ok: false,
      reason: `${reason}; syncguard grants no role the right to write syncguard.${state.map((b) => b.t.table).join(', syncguard.')} (registration text is run by syncguard's functions)`,
      fix: [
        `let a role that may apply them own the subscription: ALTER SUBSCRIPTION ${ident(f.subscription)} OWNER TO <a superuser, or ${f.installer}> (as a superuser)`,
        'or publish the application tables by name (CREATE PUBLICATION ... FOR TABLE ..., or FOR TABLES IN SCHEMA ...) instead of FOR ALL TABLES',
      ],
    };
  }
  const probe = blocked[0]?.t as ApplyTable;
  const privGrant = `GRANT ${neededPrivileges('probe').join(', ')} ON syncguard.probe TO ${ident(f.owner)}`;
  if (!(f.major >= 16 && !f.runAsOwner)) {
    const fix: string[] = [];
    if (neededPrivileges('probe').some((p) => !has(probe, p))) fix.push(privGrant);
    if (probe.rls && !f.ownerBypassRls) fix.push('ALTER TABLE syncguard.probe DISABLE ROW LEVEL SECURITY, NO FORCE ROW LEVEL SECURITY');
    return { ok: false, reason, fix };
  }
  // the privileges alternative: the subscription owner writes probe rows, and may run no DDL on it
  const alternative = [`ALTER SUBSCRIPTION ${ident(f.subscription)} SET (run_as_owner = true)`, privGrant];
  const grant = `GRANT ${ident(f.applyRole)} TO ${ident(f.owner)} WITH SET TRUE, INHERIT FALSE`;
  if (probe.owner !== f.applyRole) {
    if (probe.canSetRole)
      return {
        ok: false,
        reason,
        fix: [`syncguard install --dsn <subscriber DSN> (as ${f.installer}: it restores the owner's rights on syncguard.probe)`],
        alternative,
      };
    return {
      ok: false,
      reason,
      fix: [
        ...applyRoleSetup(f.applyRole, f.installer, f.applyRoleExists, f.major),
        `syncguard install --dsn <subscriber DSN> (as ${f.installer}: it gives syncguard.probe to ${f.applyRole})`,
        grant,
      ],
      alternative,
    };
  }
  if (!probe.canSetRole) return { ok: false, reason, fix: [grant], alternative };
  return {
    ok: false,
    reason,
    fix: [
      `syncguard install --dsn <subscriber DSN> (as ${f.installer}: it restores ${f.applyRole}'s rights on syncguard.probe and checks the table)`,
    ],
    alternative,
  };
}

/** One line for a report: what cannot be applied, that nothing is sent, and the fix. */
export function applyCheckText(c: Exclude<ApplyCheck, { ok: true }>): string {
  const alt =
    c.alternative === undefined
      ? ''
      : `; or, so that the subscription's owner may run no DDL on syncguard.probe (safer): ${c.alternative.join('; ')}`;
  return `${c.reason}; nothing of syncguard is sent to it until that is fixed; fix, as an administrator on the subscriber: ${c.fix.join('; ')}${alt}`;
}
