// A stable text dump of everything that defines an installed syncguard schema: relations and their
// columns, defaults, constraints, indexes, triggers, policies, views, and every function with its
// full definition (SECURITY DEFINER and SET clauses included), owner and grants. One line per
// object, sorted; names that differ between installs are masked: the installing role, the database
// (and so the apply role syncguard_apply_<db>), and the node id.
// sql/schema/*.dump hold the dump of a fresh install on PostgreSQL 18 (npm run schema:dump writes
// them); schema-dump.test.ts fails when an install produces anything else, and install.test.ts
// checks that an upgrade from every earlier version produces the fresh install's dump.

import type { Client } from '../functions/db/connect.js';

export type { SchemaName } from '../functions/db/definitions.js';

import type { SchemaName } from '../functions/db/definitions.js';

const DUMP_SQL = `
WITH ns AS (SELECT oid FROM pg_namespace WHERE nspname = $1)
SELECT line FROM (
  SELECT format('rel %s %s %s owner=%s acl=%s rls=%s', c.relname, c.relkind, c.relpersistence, c.relowner::regrole,
                coalesce(c.relacl::text, '-'), c.relrowsecurity) AS line
    FROM pg_class c WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind <> 'i'
  UNION ALL
  SELECT format('col %s.%s %s notnull=%s default=%s acl=%s', c.relname, a.attname, format_type(a.atttypid, a.atttypmod),
                a.attnotnull, coalesce(pg_get_expr(d.adbin, d.adrelid), '-'), coalesce(a.attacl::text, '-'))
    FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
    LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
   WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind IN ('r', 'v', 'p', 'm') AND a.attnum > 0 AND NOT a.attisdropped
  UNION ALL
  SELECT format('con %s.%s %s', c.relname, k.conname, pg_get_constraintdef(k.oid))
    FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid WHERE k.connamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT format('idx %s', pg_get_indexdef(i.indexrelid)) FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid
   WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT format('trg %s enabled=%s', pg_get_triggerdef(t.oid), t.tgenabled) FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE c.relnamespace = (SELECT oid FROM ns) AND NOT t.tgisinternal
  UNION ALL
  SELECT format('pol %s.%s %s', c.relname, p.polname, p.polcmd) FROM pg_policy p JOIN pg_class c ON c.oid = p.polrelid
   WHERE c.relnamespace = (SELECT oid FROM ns)
  UNION ALL
  SELECT format('view %s %s', c.relname, pg_get_viewdef(c.oid)) FROM pg_class c
   WHERE c.relnamespace = (SELECT oid FROM ns) AND c.relkind = 'v'
  UNION ALL
  SELECT format('type %s %s owner=%s', t.typname, t.typtype, t.typowner::regrole) FROM pg_type t
   WHERE t.typnamespace = (SELECT oid FROM ns) AND t.typtype <> 'b'
     AND NOT EXISTS (SELECT 1 FROM pg_class c WHERE c.oid = t.typrelid AND c.relkind <> 'c')
  UNION ALL
  SELECT format('fn %s owner=%s acl=%s%s%s', p.oid::regprocedure, p.proowner::regrole, coalesce(p.proacl::text, '-'),
                E'\\n', pg_get_functiondef(p.oid))
    FROM pg_proc p WHERE p.pronamespace = (SELECT oid FROM ns) AND p.prokind IN ('f', 'p')
  UNION ALL
  SELECT format('schema %s owner=%s acl=%s', n.nspname, n.nspowner::regrole, coalesce(n.nspacl::text, '-'))
    FROM pg_namespace n WHERE n.oid = (SELECT oid FROM ns)
) d ORDER BY line COLLATE "C"`;

/** The dump of one installed schema, as text; masked so that two installs compare equal. */
export async function schemaDump(c: Client, schema: SchemaName): Promise<string> {
  const { rows: who } = await c.query<{ installer: string; db: string }>(
    'SELECT n.nspowner::regrole::text AS installer, current_database() AS db FROM pg_namespace n WHERE n.nspname = $1',
    [schema],
  );
  const installer = who[0]?.installer;
  if (installer === undefined) throw new Error(`schema ${schema} is not installed in this database`);
  const db = who[0]?.db ?? '';
  let nodeId: string | null = null;
  if (schema === 'syncguard') nodeId = (await c.query<{ id: string }>('SELECT syncguard.node_id()::text AS id')).rows[0]?.id ?? null;
  const { rows } = await c.query<{ line: string }>(DUMP_SQL, [schema]);
  const mask = (s: string): string => {
    let out = s.replaceAll(`syncguard_apply_${db}`, 'syncguard_apply_<db>');
    if (nodeId !== null) out = out.replaceAll(nodeId, '<node-id>');
    // role names appear bare (owner=sg_owner) or in ACLs (sg_owner=arwd/sg_owner)
    return out.replace(
      new RegExp(`(?<![A-Za-z0-9_])${installer.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(?![A-Za-z0-9_])`, 'g'),
      '<installer>',
    );
  };
  return `${rows.map((r) => mask(r.line)).join('\n')}\n`;
}

/** The role that installs the dumped schemas: a plain owner, as in the tests (no CREATEROLE, no superuser). */
export const DUMP_INSTALLER = 'sg_dump_installer';
export const DUMP_INSTALLER_PASSWORD = 'sg-dump-pw';

/** Creates DUMP_INSTALLER on a server unless it is there; `admin` is a superuser connection. */
export async function ensureDumpInstaller(admin: Client): Promise<void> {
  await admin.query(`DO $$ BEGIN
      IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${DUMP_INSTALLER}') THEN
        CREATE ROLE ${DUMP_INSTALLER} LOGIN PASSWORD '${DUMP_INSTALLER_PASSWORD}' NOSUPERUSER NOCREATEDB NOCREATEROLE;
      END IF;
    END $$`);
}

/**
 * Installs both schemas into two new databases of a server (as DUMP_INSTALLER) and returns their
 * dumps. `admin` is a superuser connection to that server; `dsnFor` builds the installer's DSN.
 */
export async function freshInstallDumps(
  admin: Client,
  dsnFor: (database: string, user: string, password: string) => string,
  suffix: string,
): Promise<Record<SchemaName, string>> {
  const { connect } = await import('../functions/db/connect.js');
  const { installControl, installSchema } = await import('../functions/db/install.js');
  await ensureDumpInstaller(admin);
  const out = {} as Record<SchemaName, string>;
  for (const schema of ['syncguard', 'syncguard_control'] as const) {
    const db = `sg_dump_${schema === 'syncguard' ? 'node' : 'control'}_${suffix}`;
    await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    await admin.query(`CREATE DATABASE ${db} OWNER ${DUMP_INSTALLER}`);
    const c = await connect(dsnFor(db, DUMP_INSTALLER, DUMP_INSTALLER_PASSWORD), 'database');
    try {
      if (schema === 'syncguard') await installSchema(c);
      else await installControl(c);
      out[schema] = await schemaDump(c, schema);
    } finally {
      await c.close();
      await admin.query(`DROP DATABASE IF EXISTS ${db} WITH (FORCE)`);
    }
  }
  return out;
}
