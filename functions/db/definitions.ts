// The current definitions of a schema (sql/<set>/current, compiled into generated/migrations.ts)
// and how install re-applies them: every file, the checksum in definitions_id(), the EXECUTE grants
// a re-created function lost, then what the definitions generate and the grants. docs/schema.md
// says when this runs and how a definition whose shape changes is replaced.

import { IncompatibleError } from '../core/errors.js';
import { isNewerRelease } from '../core/release.js';
import type { Client } from './connect.js';
import type { Definitions } from './generated/migrations.js';
import { SQLSTATE, sqlstateOf } from './sqlstate.js';

export type SchemaName = 'syncguard' | 'syncguard_control';

/** The schema whose definitions are applied, as install knows it. */
export interface DefinitionsTarget {
  readonly what: string;
  readonly schema: SchemaName;
  /** Runs after the definitions were applied, in the same transaction: what they generate, then the grants. */
  readonly afterDefinitions: (client: Client) => Promise<unknown>;
}

/** A current definition that cannot replace the installed object as it stands (see docs/schema.md). */
export class DefinitionShapeError extends IncompatibleError {}

/** Definitions a newer release installed, which this one may not replace. */
export class NewerDefinitionsError extends IncompatibleError {}

/** What definitions_id() of a schema says: the checksum of its definitions and the release that wrote them. */
export interface InstalledDefinitions {
  readonly checksum: string;
  /** Empty when written before releases were recorded. */
  readonly release: string;
}

/**
 * The definitions installed in a schema; null when they predate definitions_id(). Read from
 * pg_proc (readable by every login), so a login granted nothing is told too, and an installer that
 * may not call the function still sees that nothing changed.
 */
export async function readInstalledDefinitions(client: Client, schema: SchemaName = 'syncguard'): Promise<InstalledDefinitions | null> {
  const { rows } = await client.query<{ src: string | null }>(
    'SELECT prosrc AS src FROM pg_catalog.pg_proc WHERE oid = to_regprocedure($1)',
    [`${schema}.definitions_id()`],
  );
  const src = rows[0]?.src;
  if (src === undefined || src === null) return null;
  const checksum = /'([0-9a-f]*)'/.exec(src)?.[1];
  if (checksum === undefined) return null;
  return { checksum, release: /\/\* syncguard ([0-9A-Za-z.+-]+) \*\//.exec(src)?.[1] ?? '' };
}

/** The checksum of the definitions installed in a schema; null when they predate definitions_id(). */
export async function installedDefinitions(client: Client, schema: SchemaName = 'syncguard'): Promise<string | null> {
  return (await readInstalledDefinitions(client, schema))?.checksum ?? null;
}

/**
 * Refuses to replace definitions a newer release wrote (an older CLI or Lambda beside a newer one,
 * at the same schema version): they would take the node back to older function bodies, and the
 * newer release would then find its own definitions gone.
 */
export function refuseNewerDefinitions(installed: InstalledDefinitions | null, ours: Definitions, what: string, label: string): void {
  if (installed === null || installed.checksum === ours.checksum || !isNewerRelease(installed.release, ours.release)) return;
  throw new NewerDefinitionsError(
    `the ${what} on the ${label} holds definitions written by syncguard ${installed.release}, newer than this syncguard (${ours.release}); nothing was changed; run install with syncguard ${installed.release} or later`,
  );
}

/** Who may EXECUTE which function of a schema, besides its owner, as `function|role` (catalogue-quoted). */
export async function executeGrants(client: Client, schema: SchemaName): Promise<Set<string>> {
  const { rows } = await client.query<{ g: string }>(
    `SELECT p.oid::regprocedure::text || '|' || a.grantee::regrole::text AS g
       FROM pg_catalog.pg_proc p CROSS JOIN LATERAL pg_catalog.aclexplode(p.proacl) a
      WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)
        AND a.privilege_type = 'EXECUTE' AND a.grantee <> 0 AND a.grantee <> p.proowner`,
    [schema],
  );
  return new Set(rows.map((r) => r.g));
}

/**
 * Re-applies every current definition of a set, in the install's transaction. Function bodies are
 * not checked at creation (check_function_bodies = off, as pg_dump does), so the files may come in
 * any order; the tests run every function. A definition that changes a function's return type,
 * argument names or defaults, or drops a view's column, fails here with DefinitionShapeError: the
 * old object must be dropped first, by a numbered migration (docs/schema.md).
 */
export async function applyDefinitions(
  client: Client,
  set: DefinitionsTarget,
  definitions: Definitions,
  grantsBefore: Set<string>,
): Promise<void> {
  const { rows } = await client.query<{ v: string }>("SELECT current_setting('check_function_bodies') AS v");
  await client.query("SELECT set_config('check_function_bodies', 'off', true)");
  for (const f of definitions.files) {
    try {
      await client.query(f.sql);
    } catch (err) {
      const code = sqlstateOf(err);
      if (code !== SQLSTATE.invalidFunctionDefinition && code !== SQLSTATE.invalidTableDefinition) throw err;
      const hint = (err as { hint?: string }).hint;
      throw new DefinitionShapeError(
        `${f.file} cannot replace what the ${set.what} holds: ${(err as Error).message}${hint ? ` (${hint})` : ''}; nothing was installed; a definition whose shape changes (return type, argument names or defaults, a view's columns) needs a numbered migration that drops the old one first, without CASCADE (docs/schema.md)`,
        { cause: err },
      );
    }
  }
  // the checksum is hex and the release a semver (scripts/build-sql.mjs), so both are written as literals
  if (!/^[0-9a-f]*$/.test(definitions.checksum)) throw new Error(`bad definitions checksum ${definitions.checksum}`);
  if (!/^[0-9A-Za-z.+-]*$/.test(definitions.release)) throw new Error(`bad definitions release ${definitions.release}`);
  await client.query(
    `CREATE OR REPLACE FUNCTION ${set.schema}.definitions_id() RETURNS text LANGUAGE sql IMMUTABLE SET search_path = pg_catalog, pg_temp
       AS $$ SELECT '${definitions.checksum}'::text /* syncguard ${definitions.release} */ $$`,
  );
  await client.query("SELECT set_config('check_function_bodies', $1, true)", [rows[0]?.v ?? 'on']);
  // a function a migration dropped and a definition created again has lost its grants: give them back
  const now = await executeGrants(client, set.schema);
  const { rows: fns } = await client.query<{ fn: string }>(
    'SELECT p.oid::regprocedure::text AS fn FROM pg_catalog.pg_proc p WHERE p.pronamespace = (SELECT oid FROM pg_catalog.pg_namespace WHERE nspname = $1)',
    [set.schema],
  );
  const present = new Set(fns.map((r) => r.fn));
  for (const g of grantsBefore) {
    const [fn = '', role = ''] = g.split('|');
    // both are catalogue output (regprocedure, regrole), quoted as SQL needs them
    if (!now.has(g) && present.has(fn)) await client.query(`GRANT EXECUTE ON FUNCTION ${fn} TO ${role}`);
  }
  await set.afterDefinitions(client);
}
