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
// syncguard's replicated tables (sql/node/0026_apply_owner.sql), otherwise table privileges.

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
}

export interface ApplyFacts {
  readonly subscription: string;
  readonly major: number;
  readonly owner: string;
  readonly ownerSuper: boolean;
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
    };

const ident = (s: string): string => `"${s.replace(/"/g, '""')}"`;

/** The privileges apply needs on a syncguard table. */
export const neededPrivileges = (table: string): readonly ('SELECT' | 'INSERT' | 'UPDATE' | 'DELETE')[] =>
  table === 'probe' ? ['SELECT', 'INSERT', 'DELETE'] : ['SELECT', 'INSERT', 'UPDATE', 'DELETE'];

/** What an administrator runs so that install can give syncguard's replicated tables to their own role. */
export function applyRoleSetup(role: string, installer: string, exists: boolean, major: number): string[] {
  return [
    ...(exists ? [] : [`CREATE ROLE ${ident(role)} NOLOGIN NOINHERIT`]),
    major >= 16 ? `GRANT ${ident(role)} TO ${ident(installer)} WITH INHERIT TRUE, SET TRUE` : `GRANT ${ident(role)} TO ${ident(installer)}`,
  ];
}

export function checkApplyRights(f: ApplyFacts): ApplyCheck {
  if (f.ownerSuper || f.tables.length === 0) return { ok: true };
  const who = `subscription ${f.subscription} (owner ${f.owner})`;
  if (f.major >= 16 && !f.runAsOwner) {
    const blocked = f.tables.filter((t) => !t.canSetRole);
    if (blocked.length === 0) return { ok: true };
    const owners = [...new Set(blocked.map((t) => t.owner))];
    const reason = `${who} applies as each table's owner (run_as_owner = false), and ${f.owner} may not SET ROLE to ${owners.join(', ')}, the owner of ${blocked.map((t) => `syncguard.${t.table}`).join(', ')}`;
    const grant = `GRANT ${ident(f.applyRole)} TO ${ident(f.owner)} WITH SET TRUE, INHERIT FALSE`;
    if (owners.every((o) => o === f.applyRole)) return { ok: false, reason, fix: [grant] };
    return {
      ok: false,
      reason,
      fix: [
        ...applyRoleSetup(f.applyRole, f.installer, f.applyRoleExists, f.major),
        `syncguard install --dsn <subscriber DSN> (as ${f.installer}: it gives syncguard's replicated tables to ${f.applyRole})`,
        grant,
      ],
    };
  }
  const missing = f.tables.filter((t) =>
    neededPrivileges(t.table).some((p) => !t[p.toLowerCase() as 'select' | 'insert' | 'update' | 'delete']),
  );
  if (missing.length === 0) return { ok: true };
  const mode = f.major >= 16 ? 'applies as its owner (run_as_owner = true)' : `applies as its owner (PostgreSQL ${f.major})`;
  const reason = `${who} ${mode}, and ${f.owner} lacks ${missing
    .map((t) => `${neededPrivileges(t.table).join(', ')} on syncguard.${t.table}`)
    .join('; ')}`;
  const groups = new Map<string, string[]>();
  for (const t of missing) {
    const privs = neededPrivileges(t.table).join(', ');
    groups.set(privs, [...(groups.get(privs) ?? []), `syncguard.${t.table}`]);
  }
  return { ok: false, reason, fix: [...groups].map(([privs, tables]) => `GRANT ${privs} ON ${tables.join(', ')} TO ${ident(f.owner)}`) };
}

/** One line for a report: what cannot be applied, that nothing is sent, and the fix. */
export function applyCheckText(c: Exclude<ApplyCheck, { ok: true }>): string {
  return `${c.reason}; nothing of syncguard is sent to it until that is fixed; fix, as an administrator on the subscriber: ${c.fix.join('; ')}`;
}
