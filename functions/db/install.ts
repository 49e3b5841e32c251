// Installing and upgrading the syncguard schema from the numbered migrations compiled into
// generated/migrations.ts. Idempotent, and safe when installers race (parallel Lambda cold
// starts): a transaction-scoped advisory lock serialises them, and the loser finds the work done.

import { randomInt } from 'node:crypto';
import { IncompatibleError, InputError } from '../core/errors.js';
import { type ApplyOwner, adoptApplyOwner } from './apply-rights.js';
import { type Client, inTransaction } from './connect.js';
import { controlMigrations, type Migration, nodeMigrations } from './generated/migrations.js';

export const MIN_SERVER_VERSION_NUM = 130000;
/** pg_advisory_xact_lock key for schema installs ('SGIN'). */
const INSTALL_LOCK = 0x5347494e;

export interface InstallResult {
  readonly fromVersion: number;
  readonly toVersion: number;
  readonly applied: readonly number[];
  /** FOR ALL TABLES publications on this node (they also publish syncguard's logged tables). */
  readonly allTablesPublications: readonly string[];
  readonly nodeId: string;
  /** The dedicated owner of syncguard.probe (sql/node/0026), and whether it is its. */
  readonly applyOwner: ApplyOwner | null;
}

export async function serverVersionNum(client: Client): Promise<number> {
  const { rows } = await client.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
  return Number(rows[0]?.v);
}

/** syncguard needs PostgreSQL 13 (xid8, pg_current_xact_id, transition tables with ENABLE ALWAYS). */
export function checkServerVersion(versionNum: number, label: string): number {
  if (!(versionNum >= MIN_SERVER_VERSION_NUM)) {
    throw new IncompatibleError(`syncguard requires PostgreSQL 13 or later on the ${label} (detected server_version_num = ${versionNum})`);
  }
  return versionNum;
}

async function requireSupportedServer(client: Client, label: string): Promise<number> {
  return checkServerVersion(await serverVersionNum(client), label);
}

/** Applied migration versions of this node; empty when the schema is not installed. */
export async function installedVersions(client: Client): Promise<number[]> {
  const { rows: present } = await client.query<{ ok: boolean }>("SELECT to_regclass('syncguard.migration') IS NOT NULL AS ok");
  if (!present[0]?.ok) return [];
  const { rows } = await client.query<{ version: number }>(
    'SELECT version FROM syncguard.migration WHERE node_id = syncguard.node_id() ORDER BY version',
  );
  return rows.map((r) => r.version);
}

/** A numbered migration set and how it records what it applied. */
interface MigrationSet {
  readonly what: string;
  readonly migrations: readonly Migration[];
  readonly lockKey: number;
  readonly applied: (client: Client) => Promise<number[]>;
  readonly record: (client: Client, m: Migration) => Promise<unknown>;
  /** Runs after any migration was applied, in the same transaction. */
  readonly after?: (client: Client) => Promise<unknown>;
}

const NODE: MigrationSet = {
  what: 'syncguard schema',
  migrations: nodeMigrations,
  lockKey: INSTALL_LOCK,
  applied: installedVersions,
  record: (c, m) => c.query('INSERT INTO syncguard.migration (version, name) VALUES ($1, $2)', [m.version, m.name]),
  // PostgreSQL grants EXECUTE on every new function to PUBLIC: take it back after each upgrade
  after: async (c) => {
    const { rows } = await c.query<{ ok: boolean }>("SELECT to_regprocedure('syncguard._grants()') IS NOT NULL AS ok");
    if (rows[0]?.ok) await c.query('SELECT syncguard._grants()');
  },
};

const CONTROL: MigrationSet = {
  what: 'syncguard control-plane schema',
  migrations: controlMigrations,
  lockKey: INSTALL_LOCK + 1,
  applied: async (c) => {
    const { rows: present } = await c.query<{ ok: boolean }>("SELECT to_regclass('syncguard_control.migration') IS NOT NULL AS ok");
    if (!present[0]?.ok) return [];
    const { rows } = await c.query<{ version: number }>('SELECT version FROM syncguard_control.migration ORDER BY version');
    return rows.map((r) => r.version);
  },
  record: (c, m) => c.query('INSERT INTO syncguard_control.migration (version, name) VALUES ($1, $2)', [m.version, m.name]),
};

/**
 * Applies the pending migrations of a set in one transaction under an advisory lock: racing
 * installers (parallel Lambda cold starts) serialise, and the loser finds the work done.
 */
async function migrate(
  client: Client,
  set: MigrationSet,
  label: string,
  upTo?: number,
  /** Runs last, inside the locked transaction, at every install. */
  inLock?: (client: Client) => Promise<unknown>,
): Promise<{ fromVersion: number; toVersion: number; applied: number[]; inLock?: unknown }> {
  await requireSupportedServer(client, label);
  const latest = set.migrations.at(-1)?.version ?? 0;
  return inTransaction(client, async () => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [set.lockKey]);
    const done = await set.applied(client);
    const from = done.at(-1) ?? 0;
    if (from > latest) {
      throw new IncompatibleError(
        `the ${set.what} on the ${label} is at version ${from}, newer than this syncguard (${latest}); upgrade syncguard`,
      );
    }
    const todo = set.migrations.filter((m) => !done.includes(m.version) && (upTo === undefined || m.version <= upTo));
    for (const m of todo) {
      await client.query(m.sql);
      await set.record(client, m);
    }
    if (todo.length > 0) await set.after?.(client);
    const applied = todo.map((m) => m.version);
    const extra = await inLock?.(client);
    return { fromVersion: from, toVersion: Math.max(from, ...applied), applied, inLock: extra };
  });
}

/** Creates or upgrades the node schema; `upTo` stops early (tests of upgrades use it). */
export async function installSchema(client: Client, label = 'database', upTo?: number): Promise<InstallResult> {
  // syncguard.probe is given to its dedicated owner (node 0026) in the install's locked
  // transaction: racing installs serialise, and a lock wait is bounded (adoptApplyOwner)
  const { inLock, ...r } = await migrate(client, NODE, label, upTo, async (c) => {
    const { rows: adopt } = await c.query<{ ok: boolean }>("SELECT to_regprocedure('syncguard._adopt_apply_owner()') IS NOT NULL AS ok");
    return adopt[0]?.ok ? adoptApplyOwner(c, label) : null;
  });
  const applyOwner = (inLock ?? null) as ApplyOwner | null;
  const { rows: pubs } = await client.query<{ pubname: string }>('SELECT pubname FROM pg_publication WHERE puballtables ORDER BY 1');
  return { ...r, allTablesPublications: pubs.map((p) => p.pubname), nodeId: await nodeId(client), applyOwner };
}

/**
 * Refuses a single-node install with pending migrations on a node that has a FOR ALL TABLES
 * publication and an active logical slot: the install writes syncguard.migration, which that
 * publication sends to a subscription whose owner nobody checked (the pair form checks it).
 */
export async function requireNoAllTablesSubscriber(client: Client): Promise<void> {
  const latest = nodeMigrations.at(-1)?.version ?? 0;
  if (((await installedVersions(client)).at(-1) ?? 0) >= latest) return;
  const { rows } = await client.query<{ pubs: string[] | null }>(
    `SELECT array_agg(pubname::text ORDER BY pubname) AS pubs FROM pg_publication
      WHERE puballtables AND EXISTS (SELECT 1 FROM pg_replication_slots s
                                      WHERE s.database = current_database() AND s.slot_type = 'logical' AND s.active)`,
  );
  const pubs = rows[0]?.pubs ?? null;
  if (pubs === null) return;
  throw new IncompatibleError(
    `this node has FOR ALL TABLES publication${pubs.length > 1 ? 's' : ''} ${pubs.join(', ')} with an active logical slot, and installing would write syncguard.migration, which a subscriber then has to apply; a single-node install cannot check that the subscription's owner may; nothing was installed; install with the pair form (syncguard install --publisher <this DSN> --subscriber <its subscriber's DSN>)`,
  );
}

/** Creates or upgrades the control-plane schema in its own database; `upTo` stops early (tests of upgrades use it). */
export async function installControl(
  client: Client,
  upTo?: number,
): Promise<{ fromVersion: number; toVersion: number; applied: number[] }> {
  return migrate(client, CONTROL, 'control-plane database', upTo);
}

export async function nodeId(client: Client): Promise<string> {
  const { rows } = await client.query<{ id: string }>('SELECT syncguard.node_id()::text AS id');
  return rows[0]?.id ?? '';
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

/**
 * Installs on a pair: subscriber first, so that a FOR ALL TABLES publication never sends rows of a
 * syncguard table the subscriber lacks. A subscriber cloned from its publisher (same node id) is
 * given a new identity, so the node-keyed rows of the two can never be confused.
 */
export async function installPair(
  publisher: Client,
  subscriber: Client,
  /** Runs before either install: a check that may refuse the publisher's (flows/apply-rights.ts). */
  beforePublisher?: () => Promise<void>,
): Promise<{ publisher: InstallResult; subscriber: InstallResult; reidentified: boolean }> {
  await requireDistinct(publisher, subscriber);
  // before either node is migrated: a refusal changes nothing (issue 17 A1 review H4)
  await beforePublisher?.();
  const sub = await installSchema(subscriber, 'subscriber');
  const pub = await installSchema(publisher, 'publisher');
  if (sub.nodeId === pub.nodeId) {
    const { rows } = await subscriber.query<{ id: string }>('SELECT syncguard.reidentify()::text AS id');
    return { publisher: pub, subscriber: { ...sub, nodeId: rows[0]?.id ?? '' }, reidentified: true };
  }
  return { publisher: pub, subscriber: sub, reidentified: false };
}

/**
 * Which syncguard schemas a database holds: a node's (`syncguard`) and the control plane's
 * (`syncguard_control`). The control plane lives in a database of its own, so install refuses to
 * put one where the other is.
 */
export async function syncguardSchemas(client: Client): Promise<{ node: boolean; control: boolean }> {
  const { rows } = await client.query<{ node: boolean; control: boolean }>(
    "SELECT to_regnamespace('syncguard') IS NOT NULL AS node, to_regnamespace('syncguard_control') IS NOT NULL AS control",
  );
  return { node: rows[0]?.node ?? false, control: rows[0]?.control ?? false };
}

/** A publisher's or subscriber's database given where the control plane's is expected. */
export class NodeAsControlError extends InputError {}

/**
 * Refuses a node's database as the control plane (`--control-dsn` of install, plan, approve,
 * repair and verify): its tables are not the control plane's, and a raw "does not exist" error
 * would not say the DSN is the wrong one. `endpoint` names the database (host:port/name).
 */
export async function refuseNodeAsControl(client: Client, endpoint: string): Promise<void> {
  if ((await syncguardSchemas(client)).node)
    throw new NodeAsControlError(
      `the --control-dsn database ${endpoint} holds a syncguard node schema (it is a publisher or subscriber database); --control-dsn expects the control-plane database, and the control plane needs a database of its own: create one (CREATE DATABASE syncguard_control), run syncguard install --control-dsn with its DSN, and give that DSN`,
    );
}
