// What a reader checks before it trusts a node or a pair: the schema and the definitions are this
// syncguard's (installed, not behind, not newer), and a publisher and a subscriber are two
// databases. Installing is db/install.ts.

import { randomInt } from 'node:crypto';
import { IncompatibleError, InputError } from '../core/errors.js';
import { isNewerRelease } from '../core/release.js';
import type { Client } from './connect.js';
import { readInstalledDefinitions } from './definitions.js';
import { nodeDefinitions, nodeMigrations } from './generated/migrations.js';

/** Applied migration versions of this node; empty when the schema is not installed. */
export async function installedVersions(client: Client): Promise<number[]> {
  const { rows: present } = await client.query<{ ok: boolean }>("SELECT to_regclass('syncguard.migration') IS NOT NULL AS ok");
  if (!present[0]?.ok) return [];
  const { rows } = await client.query<{ version: number }>(
    'SELECT version FROM syncguard.migration WHERE node_id = syncguard.node_id() ORDER BY version',
  );
  return rows.map((r) => r.version);
}

/**
 * Fails with the command to run when the schema is missing or behind this syncguard. Reads the
 * version through syncguard.schema_version(), which a drain or verify role may call without any
 * table privilege.
 */
export async function requireInstalled(client: Client, label: string): Promise<void> {
  const { rows } = await client.query<{ fn: boolean; tbl: boolean }>(
    "SELECT to_regprocedure('syncguard.schema_version()') IS NOT NULL AS fn, to_regclass('syncguard.migration') IS NOT NULL AS tbl",
  );
  const version = rows[0]?.fn
    ? Number((await client.query<{ v: number | null }>('SELECT syncguard.schema_version() AS v')).rows[0]?.v ?? 0)
    : rows[0]?.tbl
      ? ((await installedVersions(client)).at(-1) ?? 0)
      : 0;
  const latest = nodeMigrations.at(-1)?.version ?? 0;
  const kind = label.split(' ')[0]; // "database 127.0.0.1:5432/app": the DSN of a database
  if (version === 0) {
    throw new IncompatibleError(`syncguard is not installed on the ${label}; run: syncguard install --dsn <${kind} DSN>`);
  }
  if (version < latest) {
    throw new IncompatibleError(
      `the syncguard schema on the ${label} is at version ${version}, this syncguard needs ${latest}; run: syncguard install --dsn <${kind} DSN>`,
    );
  }
  if (version > latest) {
    throw new IncompatibleError(
      `the syncguard schema on the ${label} is at version ${version}, newer than this syncguard (${latest}); upgrade syncguard`,
    );
  }
  const defs = await readInstalledDefinitions(client);
  if (defs?.checksum !== nodeDefinitions.checksum) {
    if (defs !== null && isNewerRelease(defs.release, nodeDefinitions.release)) {
      throw new IncompatibleError(
        `the syncguard functions on the ${label} were installed by syncguard ${defs.release}, newer than this syncguard (${nodeDefinitions.release}); upgrade syncguard`,
      );
    }
    throw new IncompatibleError(
      `the syncguard functions on the ${label} are not this syncguard's (definitions ${defs?.checksum ?? 'from before they were tracked'} installed, this syncguard has ${nodeDefinitions.checksum}); run: syncguard install --dsn <${kind} DSN>`,
    );
  }
}

/**
 * Refuses two connections to the same database as a publisher and its subscriber (the same DSN
 * twice, or two DSNs naming one database): the publisher connection holds an advisory lock on a
 * random key for a moment, and the subscriber connection looks for exactly that lock, held by that
 * backend, in its own database (pg_locks is readable by every role).
 */
export async function requireDistinct(publisher: Client, subscriber: Client): Promise<void> {
  const key = [randomInt(1, 2 ** 31 - 1), randomInt(1, 2 ** 31 - 1)];
  const { rows } = await publisher.query<{ pid: number }>('SELECT pg_backend_pid() AS pid, pg_advisory_lock($1, $2)', key);
  try {
    const { rows: seen } = await subscriber.query(
      `SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND classid = $1 AND objid = $2 AND objsubid = 2 AND pid = $3
          AND database = (SELECT oid FROM pg_database WHERE datname = current_database())`,
      [...key, rows[0]?.pid],
    );
    if (seen.length > 0) {
      throw new InputError(
        'the publisher and subscriber DSNs name the same database; give the publisher database and the subscriber database that replicates it',
      );
    }
  } finally {
    await publisher.query('SELECT pg_advisory_unlock($1, $2)', key);
  }
}
