// Registering a table on a pair: read both descriptions, decide in the core, sample what the
// layout needs on the publisher, then write the identical registration to both nodes in two
// transactions that commit only when both succeeded.

import { escapeIdentifier } from 'pg';
import type { BucketScheme } from '../core/buckets.js';
import { IncompatibleError, InputError } from '../core/errors.js';
import { chooseHashVersion, type TruncatedColumn } from '../core/hash-version-choice.js';
import { type HashVersion, parseHashVersion } from '../core/hashing.js';
import { type QualifiedName, tableText } from '../core/identifiers.js';
import { buildConfig, DEFAULT_BUCKET_SIZE, layoutFor, planRegistration, type RegistrationConfig } from '../core/registration.js';
import type { TableInfo } from '../core/table-info.js';
import type { Client } from './connect.js';
import { requireDistinct, requireInstalled } from './install.js';

export interface RegisterOptions {
  readonly table: QualifiedName;
  readonly bucketSize?: number;
  readonly columns?: readonly string[];
  readonly scheme?: BucketScheme;
  /** The canonical encoding; the default for new registrations is DEFAULT_HASH_VERSION. */
  readonly hashVersion?: HashVersion;
}

export interface RegisterResult {
  readonly config: RegistrationConfig;
  readonly notes: readonly string[];
  /** Both nodes already held exactly this registration: nothing was changed. */
  readonly alreadyRegistered: boolean;
}

/**
 * The configuration as register_table() reads it. A table without a key is sent without the key
 * fields: the node's description of it has no key either, and an absent key is what matches.
 */
function sqlConfig(config: RegistrationConfig): string {
  if (config.keyColumns.length > 0) return JSON.stringify(config);
  const { keyColumns: _c, keyTypes: _t, keyCollations: _k, ...rest } = config;
  return JSON.stringify(rest);
}

export async function describeTable(client: Client, t: QualifiedName, publications: readonly string[], label: string): Promise<TableInfo> {
  const { rows } = await client.query<{ d: TableInfo | null }>('SELECT syncguard.describe_table($1, $2, $3) AS d', [
    t.schema,
    t.table,
    publications,
  ]);
  const d = rows[0]?.d ?? null;
  if (d === null) throw new InputError(`table ${t.schema}.${t.table} does not exist on the ${label}`);
  return d;
}

/**
 * The publications this subscriber receives from this publisher: those named by the subscriber
 * database's subscriptions that exist on the publisher.
 */
export async function subscribedPublications(publisher: Client, subscriber: Client): Promise<string[]> {
  const { rows: subs } = await subscriber.query<{ subname: string; pubs: string[] }>(
    'SELECT subname, subpublications AS pubs FROM pg_subscription WHERE subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())',
  );
  if (subs.length === 0) {
    throw new IncompatibleError('the subscriber database has no subscription; create the subscription to the publisher first');
  }
  const named = [...new Set(subs.flatMap((s) => s.pubs))];
  const { rows } = await publisher.query<{ pubname: string }>('SELECT pubname FROM pg_publication WHERE pubname = ANY($1) ORDER BY 1', [
    named,
  ]);
  if (rows.length === 0) {
    throw new IncompatibleError(
      `the subscriber's subscriptions (${subs.map((s) => s.subname).join(', ')}) name publications ${named.join(', ')}, none of which exists on the publisher; is this the right publisher?`,
    );
  }
  return rows.map((r) => r.pubname);
}

async function publisherRows(publisher: Client, t: QualifiedName): Promise<number> {
  const { rows } = await publisher.query<{ n: string }>('SELECT syncguard.row_count($1, $2) AS n', [t.schema, t.table]);
  return Number(rows[0]?.n ?? 0);
}

/**
 * PostgreSQL 16+ applies each replicated change as the table's owner when the subscription's owner
 * is another role and run_as_owner is off, and rolls back every setting changed during the change:
 * the subscriber trigger's per-transaction memo is lost after each row, so every applied row pays
 * the trigger's guard and mark (catch-up 2.4x instead of 1.0-1.5x, docs/performance.md).
 */
async function applyAsOwnerNotes(subscriber: Client, t: QualifiedName): Promise<string[]> {
  const { rows: v } = await subscriber.query<{ v: number }>("SELECT current_setting('server_version_num')::int AS v");
  if ((v[0]?.v ?? 0) < 160000) return []; // before 16 the apply runs every change as the subscription's owner
  const { rows } = await subscriber.query<{ sub: string; owner: string; table_owner: string }>(
    `SELECT s.subname AS sub, s.subowner::regrole::text AS owner, c.relowner::regrole::text AS table_owner
       FROM pg_subscription s JOIN pg_subscription_rel r ON r.srsubid = s.oid
       JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND c.relname = $2 AND s.subowner <> c.relowner AND NOT s.subrunasowner
      ORDER BY 1`,
    [t.schema, t.table],
  );
  return rows.map(
    (r) =>
      `subscription ${r.sub} (owned by ${r.owner}) applies each change as the table's owner ${r.table_owner}, and PostgreSQL then resets the trigger's per-transaction memo after every row: bulk changes take about 2.4x as long to apply instead of 1.0-1.5x (docs/performance.md, "The apply path"). If ${r.table_owner} is trusted to run code as ${r.owner}: ALTER SUBSCRIPTION ${escapeIdentifier(r.sub)} SET (run_as_owner = true)`,
  );
}

/** The columns among `columns` that hash version 2 would read back truncated on this node. */
async function truncatedColumns(client: Client, t: QualifiedName, columns: readonly string[]): Promise<TruncatedColumn[]> {
  const { rows } = await client.query<{ c: TruncatedColumn[] }>('SELECT syncguard.v2_truncated_columns($1, $2, $3) AS c', [
    t.schema,
    t.table,
    columns,
  ]);
  return rows[0]?.c ?? [];
}

/** The hash version a node's registration of the table carries, if it is registered there. */
export async function heldHashVersion(client: Client, t: QualifiedName): Promise<HashVersion | undefined> {
  const { rows } = await client.query<{ v: number }>(
    'SELECT hash_version AS v FROM syncguard.registrations WHERE schema_name = $1 AND table_name = $2',
    [t.schema, t.table],
  );
  return rows[0] === undefined ? undefined : parseHashVersion(rows[0].v);
}

/** The layout a node's registration of the table has, if it is registered there. */
async function heldLayout(
  client: Client,
  t: QualifiedName,
): Promise<{ scheme: BucketScheme; width: number | null; hashVersion: HashVersion } | undefined> {
  const { rows } = await client.query<{ scheme: BucketScheme; width: string | null; v: number }>(
    'SELECT scheme, bucket_width::text AS width, hash_version AS v FROM syncguard.registrations WHERE schema_name = $1 AND table_name = $2',
    [t.schema, t.table],
  );
  const r = rows[0];
  return r === undefined
    ? undefined
    : { scheme: r.scheme, width: r.width === null ? null : Number(r.width), hashVersion: parseHashVersion(r.v) };
}

export async function registerTable(publisher: Client, subscriber: Client, opts: RegisterOptions): Promise<RegisterResult> {
  const { config, notes } = await planTable(publisher, subscriber, opts);
  const held = async (c: Client) =>
    (
      await c.query<{ fingerprint: string }>('SELECT fingerprint FROM syncguard.registrations WHERE schema_name = $1 AND table_name = $2', [
        opts.table.schema,
        opts.table.table,
      ])
    ).rows[0]?.fingerprint;
  if ((await held(publisher)) === config.fingerprint && (await held(subscriber)) === config.fingerprint) {
    return { config, notes, alreadyRegistered: true };
  }
  await writeRegistration(publisher, subscriber, config, false);
  return { config, notes, alreadyRegistered: false };
}

/**
 * Everything a registration needs, checked and decided, and nothing written: both nodes
 * installed and distinct, the subscriber subscribed to the publisher, both tables described, the
 * layout sampled. A refresh plans first, so a refusal changes nothing.
 */
export async function planTable(
  publisher: Client,
  subscriber: Client,
  opts: RegisterOptions,
  /** A refresh replaces the registration, so the hash version asked for may differ from the one held. */
  refresh = false,
): Promise<{ config: RegistrationConfig; notes: string[] }> {
  await requireInstalled(publisher, 'publisher');
  await requireInstalled(subscriber, 'subscriber');
  await requireDistinct(publisher, subscriber);
  const publications = await subscribedPublications(publisher, subscriber);
  // A table registered before (on either node: one may have lost its registration) keeps its hash
  // version, bucket scheme and integer bucket width unless others are asked for, so registering it
  // again without repeating its options finds it already registered, or completes the node that
  // lost it, instead of refusing a different fingerprint.
  const heldBy = refresh ? undefined : ((await heldLayout(publisher, opts.table)) ?? (await heldLayout(subscriber, opts.table)));
  const heldVersion = refresh ? await heldHashVersion(publisher, opts.table) : heldBy?.hashVersion;
  if (!refresh && opts.hashVersion !== undefined && heldVersion !== undefined && heldVersion !== opts.hashVersion) {
    throw new InputError(
      `table ${tableText(opts.table)} is registered with hash version ${heldVersion}; to move it to version ${opts.hashVersion} (both sides re-sweep it), run: syncguard register --table ${tableText(opts.table)} --refresh --hash-version ${opts.hashVersion}`,
    );
  }
  const described = {
    publisher: await describeTable(publisher, opts.table, publications, 'publisher'),
    subscriber: await describeTable(subscriber, opts.table, [], 'subscriber'),
    publications,
    ...(opts.columns !== undefined ? { requestedColumns: opts.columns } : {}),
    ...(opts.scheme !== undefined ? { requestedScheme: opts.scheme } : heldBy !== undefined ? { requestedScheme: heldBy.scheme } : {}),
  };
  const plan = planRegistration(described);
  // hash version 2 cannot register a table whose hashed columns it would read back truncated
  const hashed = plan.choice.columns.map((c) => c.name);
  const truncated = [
    ...(await truncatedColumns(publisher, opts.table, hashed)),
    ...(await truncatedColumns(subscriber, opts.table, hashed)),
  ];
  const chosen = chooseHashVersion(
    tableText(opts.table),
    opts.hashVersion,
    refresh ? undefined : heldVersion,
    truncated.filter((c, i) => truncated.findIndex((d) => d.column === c.column) === i),
  );
  const input = { ...described, ...(chosen.version !== undefined ? { hashVersion: chosen.version } : {}) };
  const size = opts.bucketSize ?? (plan.scheme === 'int' ? heldBy?.width : undefined) ?? DEFAULT_BUCKET_SIZE;
  let rowCount = 0;
  let bounds: string[][] = [];
  if (plan.scheme === 'hash') {
    rowCount = await publisherRows(publisher, opts.table);
  } else if (plan.scheme === 'range') {
    const { rows } = await publisher.query<{ b: string[][] }>('SELECT syncguard.sample_bounds($1, $2, $3, $4) AS b', [
      opts.table.schema,
      opts.table.table,
      plan.key.map((k) => k.name),
      size,
    ]);
    bounds = rows[0]?.b ?? [];
  }
  const config = buildConfig(input, plan, layoutFor(plan.scheme, size, rowCount, bounds));
  const notes = [...plan.choice.notes, ...chosen.notes];
  if (plan.scheme === 'range' && bounds.length === 0) {
    notes.push(
      (await publisherRows(publisher, opts.table)) === 0
        ? 'the publisher table is empty, so it has a single range bucket; re-register once it holds data'
        : `the publisher table has at most ${size} rows (the bucket size), so it has a single range bucket; re-register once it has grown`,
    );
  }

  notes.push(...(await applyAsOwnerNotes(subscriber, opts.table)));
  return { config, notes };
}

/**
 * Writes a planned registration to both nodes: one transaction on each, the subscriber's first,
 * committed only when both succeeded. With `replace` (a refresh), each node's transaction first
 * removes the registration it holds, so a node either has the new registration or keeps its old
 * one whole, never none.
 */
export async function writeRegistration(
  publisher: Client,
  subscriber: Client,
  config: RegistrationConfig,
  replace: boolean,
): Promise<void> {
  await publisher.query('BEGIN');
  await subscriber.query('BEGIN');
  try {
    for (const [client, role] of [
      [subscriber, 'subscriber'],
      [publisher, 'publisher'],
    ] as const) {
      if (replace) await client.query('SELECT syncguard.unregister_table($1, $2)', [config.schema, config.table]);
      await client.query('SELECT syncguard.register_table($1, $2)', [sqlConfig(config), role]);
    }
    await subscriber.query('COMMIT');
    await publisher.query('COMMIT');
  } catch (err) {
    await subscriber.query('ROLLBACK').catch(() => {});
    await publisher.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Removes the registration (triggers, generated objects, state) from both nodes. */
export async function unregisterTable(
  publisher: Client,
  subscriber: Client,
  table: QualifiedName,
): Promise<{ publisher: boolean; subscriber: boolean }> {
  await requireInstalled(publisher, 'publisher');
  await requireInstalled(subscriber, 'subscriber');
  // the same database twice (however the DSNs spell it) would remove the publisher's registration
  await requireDistinct(publisher, subscriber);
  const result = { publisher: false, subscriber: false };
  for (const [client, role] of [
    [subscriber, 'subscriber'],
    [publisher, 'publisher'],
  ] as const) {
    const { rows } = await client.query<{ ok: boolean }>('SELECT syncguard.unregister_table($1, $2) AS ok', [table.schema, table.table]);
    result[role] = rows[0]?.ok ?? false;
  }
  if (!result.publisher && !result.subscriber) {
    throw new InputError(`table ${tableText(table)} is not registered on either node`);
  }
  return result;
}
