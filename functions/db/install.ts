// Installing and upgrading the syncguard schema from what generated/migrations.ts compiles from
// sql/: the numbered migrations (what happens once) and the current definitions (every function
// and view as it is now). Idempotent, and safe when installers race (parallel Lambda cold starts):
// a transaction-scoped advisory lock serialises them, and the loser finds the work done.
//
// One install, in one transaction: the pending migrations; then, when a migration ran or the
// node's definitions are not these (definitions_id() holds their checksum), every current
// definition again, the EXECUTE grants a re-created function lost, each registration's generated
// trigger functions from the current templates, and the grants. docs/schema.md says how a
// definition whose shape changes is replaced.

import { IncompatibleError } from '../core/errors.js';
import { type ApplyOwner, adoptApplyOwner } from './apply-rights.js';
import type { Client } from './connect.js';
import {
  applyDefinitions,
  type DefinitionsTarget,
  executeGrants,
  readInstalledDefinitions,
  refuseNewerDefinitions,
} from './definitions.js';
import {
  controlDefinitions,
  controlMigrations,
  type Definitions,
  type Migration,
  nodeDefinitions,
  nodeMigrations,
} from './generated/migrations.js';
import { installedVersions, requireDistinct } from './installed.js';

export const MIN_SERVER_VERSION_NUM = 130000;
/** pg_advisory_xact_lock key for schema installs ('SGIN'). */
const INSTALL_LOCK = 0x5347494e;

export interface InstallResult {
  readonly fromVersion: number;
  readonly toVersion: number;
  readonly applied: readonly number[];
  /** Whether the current definitions were applied (a migration ran, or the node held others). */
  readonly definitions: boolean;
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

/** A schema's numbered migrations and current definitions, and how it records what it applied. */
interface MigrationSet extends DefinitionsTarget {
  readonly migrations: readonly Migration[];
  readonly definitions: Definitions;
  readonly lockKey: number;
  readonly applied: (client: Client) => Promise<number[]>;
  readonly record: (client: Client, m: Migration) => Promise<unknown>;
  /** Runs after an install stopped early (`upTo`, tests of upgrades) applied migrations: as the release it stands for did. */
  readonly afterEarlyStop?: (client: Client) => Promise<unknown>;
}

/** What install may be given instead of what it was built with (tests of upgrades and of shape changes). */
export interface InstallSource {
  /** Stops after this migration version and applies no current definitions (an earlier release). */
  readonly upTo?: number;
  readonly migrations?: readonly Migration[];
  readonly definitions?: Definitions;
}

const NODE: MigrationSet = {
  what: 'syncguard schema',
  schema: 'syncguard',
  migrations: nodeMigrations,
  definitions: nodeDefinitions,
  lockKey: INSTALL_LOCK,
  applied: installedVersions,
  record: (c, m) => c.query('INSERT INTO syncguard.migration (version, name) VALUES ($1, $2)', [m.version, m.name]),
  afterDefinitions: async (c) => {
    await c.query('SELECT syncguard._rebuild_trigger_functions()');
    // PostgreSQL grants EXECUTE on every new function to PUBLIC: take it back
    await c.query('SELECT syncguard._grants()');
    await c.query('SELECT syncguard._regrant_roles()');
  },
  afterEarlyStop: async (c) => {
    const { rows } = await c.query<{ ok: boolean }>("SELECT to_regprocedure('syncguard._grants()') IS NOT NULL AS ok");
    if (rows[0]?.ok) await c.query('SELECT syncguard._grants()');
  },
};

const CONTROL: MigrationSet = {
  what: 'syncguard control-plane schema',
  schema: 'syncguard_control',
  migrations: controlMigrations,
  definitions: controlDefinitions,
  afterDefinitions: async (c) => {
    await c.query('SELECT syncguard_control._grants()');
    await c.query('SELECT syncguard_control._regrant_roles()');
  },
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
 * Applies the pending migrations of a set, then its current definitions when anything changed, in
 * one transaction under an advisory lock: racing installers (parallel Lambda cold starts)
 * serialise, and the loser finds the work done.
 */
async function migrate(
  client: Client,
  set: MigrationSet,
  label: string,
  source: InstallSource = {},
  /** Runs last, inside the locked transaction, at every install. */
  inLock?: (client: Client) => Promise<unknown>,
): Promise<{ fromVersion: number; toVersion: number; applied: number[]; definitions: boolean; inLock?: unknown }> {
  await requireSupportedServer(client, label);
  const migrations = source.migrations ?? set.migrations;
  const definitions = source.definitions ?? set.definitions;
  const latest = migrations.at(-1)?.version ?? 0;
  return client.transaction(async () => {
    await client.query('SELECT pg_advisory_xact_lock($1)', [set.lockKey]);
    const done = await set.applied(client);
    const from = done.at(-1) ?? 0;
    if (from > latest) {
      throw new IncompatibleError(
        `the ${set.what} on the ${label} is at version ${from}, newer than this syncguard (${latest}); upgrade syncguard`,
      );
    }
    const upTo = source.upTo;
    const todo = migrations.filter((m) => !done.includes(m.version) && (upTo === undefined || m.version <= upTo));
    const grantsBefore = await executeGrants(client, set.schema);
    for (const m of todo) {
      await client.query(m.sql);
      await set.record(client, m);
    }
    let applyDefs = false;
    if (upTo !== undefined) {
      if (todo.length > 0) await set.afterEarlyStop?.(client);
    } else {
      const installed = await readInstalledDefinitions(client, set.schema);
      applyDefs = todo.length > 0 || installed?.checksum !== definitions.checksum;
      if (applyDefs) {
        refuseNewerDefinitions(installed, definitions, set.what, label);
        await applyDefinitions(client, set, definitions, grantsBefore);
      }
    }
    const applied = todo.map((m) => m.version);
    const extra = await inLock?.(client);
    return { fromVersion: from, toVersion: Math.max(from, ...applied), applied, definitions: applyDefs, inLock: extra };
  });
}

/** Creates or upgrades the node schema; `source` stands for another release (tests of upgrades use it). */
export async function installSchema(client: Client, label = 'database', source: InstallSource = {}): Promise<InstallResult> {
  // syncguard.probe is given to its dedicated owner (node 0026) in the install's locked
  // transaction: racing installs serialise, and a lock wait is bounded (adoptApplyOwner)
  const { inLock, ...r } = await migrate(client, NODE, label, source, async (c) => {
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
  source: InstallSource = {},
): Promise<{ fromVersion: number; toVersion: number; applied: number[]; definitions: boolean }> {
  return migrate(client, CONTROL, 'control-plane database', source);
}

export async function nodeId(client: Client): Promise<string> {
  const { rows } = await client.query<{ id: string }>('SELECT syncguard.node_id()::text AS id');
  return rows[0]?.id ?? '';
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
