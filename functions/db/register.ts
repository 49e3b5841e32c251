// A registration's reads and writes on one node: describing the table, what the node holds, the
// publisher's row count and sampled bounds, and writing or removing one node's registration. The
// steps over both nodes (plan, write both, refresh, unregister) are flows/register.ts.

import { escapeIdentifier } from 'pg';
import type { BucketScheme } from '../core/buckets.js';
import { IncompatibleError, InputError } from '../core/errors.js';
import type { TruncatedColumn } from '../core/hash-version-choice.js';
import { type HashVersion, parseHashVersion } from '../core/hashing.js';
import { TableRef } from '../core/identifiers.js';
import type { RegistrationConfig } from '../core/registration.js';
import type { TableInfo } from '../core/table-info.js';
import type { Client } from './connect.js';

export interface RegisterOptions {
  readonly table: TableRef;
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

export async function describeTable(client: Client, t: TableRef, publications: readonly string[], label: string): Promise<TableInfo> {
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

export async function publisherRows(publisher: Client, t: TableRef): Promise<number> {
  const { rows } = await publisher.query<{ n: string }>('SELECT syncguard.row_count($1, $2) AS n', [t.schema, t.table]);
  return Number(rows[0]?.n ?? 0);
}

/**
 * PostgreSQL 16+ applies each replicated change as the table's owner when the subscription's owner
 * is another role and run_as_owner is off, and rolls back every setting changed during the change:
 * the subscriber trigger's per-transaction memo is lost after each row, so every applied row pays
 * the trigger's guard and mark (catch-up 2.4x instead of 1.0-1.5x, docs/performance.md).
 */
export async function applyAsOwnerNotes(subscriber: Client, t: TableRef): Promise<string[]> {
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
export async function truncatedColumns(client: Client, t: TableRef, columns: readonly string[]): Promise<TruncatedColumn[]> {
  const { rows } = await client.query<{ c: TruncatedColumn[] }>('SELECT syncguard.v2_truncated_columns($1, $2, $3) AS c', [
    t.schema,
    t.table,
    columns,
  ]);
  return rows[0]?.c ?? [];
}

/** The hash version a node's registration of the table carries, if it is registered there. */
/** A node's registration of the table, if it holds one: its layout, hash version and node role. */
export async function heldRegistration(
  client: Client,
  t: TableRef,
): Promise<{ scheme: BucketScheme; width: number | null; hashVersion: HashVersion; role: string } | undefined> {
  const { rows } = await client.query<{ scheme: BucketScheme; width: string | null; v: number; role: string }>(
    'SELECT scheme, bucket_width::text AS width, hash_version AS v, node_role AS role FROM syncguard.registrations WHERE schema_name = $1 AND table_name = $2',
    [t.schema, t.table],
  );
  const r = rows[0];
  return r === undefined
    ? undefined
    : { scheme: r.scheme, width: r.width === null ? null : Number(r.width), hashVersion: parseHashVersion(r.v), role: r.role };
}

/** The fingerprint of the registration a node holds for a table, if any. */
export async function heldFingerprint(client: Client, t: TableRef): Promise<string | undefined> {
  const { rows } = await client.query<{ fingerprint: string }>(
    'SELECT fingerprint FROM syncguard.registrations WHERE schema_name = $1 AND table_name = $2',
    [t.schema, t.table],
  );
  return rows[0]?.fingerprint;
}

/** Range bucket bounds sampled from the publisher's rows (sample_bounds), lowest first. */
export async function sampleBounds(publisher: Client, t: TableRef, keys: readonly string[], size: number): Promise<string[][]> {
  const { rows } = await publisher.query<{ b: string[][] }>('SELECT syncguard.sample_bounds($1, $2, $3, $4) AS b', [
    t.schema,
    t.table,
    keys,
    size,
  ]);
  return rows[0]?.b ?? [];
}

/** Writes one node's registration (inside the caller's transaction). */
export async function registerOn(client: Client, config: RegistrationConfig, role: 'publisher' | 'subscriber'): Promise<void> {
  await client.query('SELECT syncguard.register_table($1, $2)', [sqlConfig(config), role]);
}

/** Removes one node's registration (triggers, generated objects, state); false when it held none. */
export async function unregisterOn(client: Client, t: TableRef): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT syncguard.unregister_table($1, $2) AS ok', [t.schema, t.table]);
  return rows[0]?.ok ?? false;
}

/** The tables registered on a node, by schema and name. */
export async function registeredTables(client: Client): Promise<TableRef[]> {
  const { rows } = await client.query<{ schema: string; table: string }>(
    'SELECT schema_name AS schema, table_name AS table FROM syncguard.registrations ORDER BY 1, 2',
  );
  return rows.map((r) => TableRef.of(r.schema, r.table));
}

/**
 * The tables publications publish, as register --all registers them: with publish_via_partition_root
 * off a partitioned table is published as its leaves, and when every leaf of a tree is published
 * its root is registered (once); a leaf published alone stays itself.
 */
export async function publishedTables(publisher: Client, publications: readonly string[]): Promise<TableRef[]> {
  const { rows } = await publisher.query<{ schema: string; table: string }>(
    `WITH pub AS (
       SELECT DISTINCT c.oid FROM pg_publication_tables p
         JOIN pg_namespace n ON n.nspname = p.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
        WHERE p.pubname = ANY($1) AND p.schemaname <> 'syncguard'
     ), mapped AS (
       SELECT CASE WHEN pg_partition_root(pub.oid) IS NOT NULL
                    AND NOT EXISTS (SELECT 1 FROM pg_partition_tree(pg_partition_root(pub.oid)) t
                                     WHERE t.isleaf AND t.relid::oid NOT IN (SELECT oid FROM pub))
                   THEN pg_partition_root(pub.oid)::oid ELSE pub.oid END AS relid
         FROM pub
     )
     SELECT DISTINCT n.nspname AS schema, c.relname AS table
       FROM mapped m JOIN pg_class c ON c.oid = m.relid JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY 1, 2`,
    [publications],
  );
  return rows.map((r) => TableRef.of(r.schema, r.table));
}

/** Whether a table of that name exists on a node. */
export async function tableExists(client: Client, t: TableRef): Promise<boolean> {
  const { rows } = await client.query<{ ok: boolean }>('SELECT to_regclass(format($1, $2::text, $3::text)) IS NOT NULL AS ok', [
    '%I.%I',
    t.schema,
    t.table,
  ]);
  return rows[0]?.ok === true;
}
