// Reading a node's drain state (syncguard.status()).

import { byText, TableRef } from '../core/identifiers.js';
import type { Client } from './connect.js';
import { requireInstalled } from './installed.js';

export interface TableStatus {
  readonly table: string;
  readonly role: 'publisher' | 'subscriber';
  readonly scheme: string;
  readonly fingerprint: string;
  readonly buckets: number;
  readonly rows: number;
  readonly dirtyBuckets: number;
  readonly oldestDirtyAgeMs: number | null;
  readonly sweepProgress: number;
  readonly sweepPass: number | null;
  readonly firstSweepFinishedAt: string | null;
  readonly lastSweepFinishedAt: string | null;
  /** A recorded fault ("kind: message"): the drain skips the table until it is registered again. */
  readonly fault: string | null;
  /** Hash version 2 over a column it reads truncated (domain over character(n)/bit(n)): not compared; the fix. */
  readonly hashProblem?: string | null;
  /** A partitioned table: its leaves and last partition change; a partition registered alone: its parent. */
  readonly partitions?: PartitionStatus | null;
}

export interface PartitionStatus {
  readonly leaves?: number;
  readonly lastChange?: { readonly at: string; readonly added: readonly string[]; readonly removed: readonly string[] } | null;
  readonly partitionOf?: string | null;
}

export interface NodeStatus {
  readonly nodeId: string;
  readonly stateIntact: boolean;
  readonly stateLostAt: string | null;
  readonly stateLostCount: number;
  readonly lastFullSweepAt: string | null;
  /**
   * FOR ALL TABLES publications of this database (node 0030; absent before). Their subscriptions
   * carry syncguard's logged tables, which drains never write: their state is unlogged.
   */
  readonly allTablesPublications?: readonly string[];
  readonly remainingDirty: number;
  readonly oldestDirtyAgeMs: number | null;
  readonly tables: readonly TableStatus[];
}

export async function nodeStatus(client: Client): Promise<NodeStatus> {
  const { rows } = await client.query<{ s: NodeStatus }>('SELECT syncguard.status() AS s');
  const s = rows[0]?.s as NodeStatus;
  return {
    ...s,
    remainingDirty: Number(s.remainingDirty),
    tables: s.tables.map((t) => ({ ...t, buckets: Number(t.buckets), rows: Number(t.rows), sweepProgress: Number(t.sweepProgress) })),
  };
}

/** Status, after checking the schema is installed (for the CLI and the Lambda). */
export async function requireStatus(client: Client, label: string): Promise<NodeStatus> {
  await requireInstalled(client, label);
  return nodeStatus(client);
}

/**
 * Tables this node replicates (a subscription's tables) or publishes in a publication a
 * registration names, that are not registered: "published but not monitored".
 */
export async function unmonitoredTables(client: Client, registered: ReadonlySet<TableRef>): Promise<TableRef[]> {
  const subscribed = `SELECT r.srrelid AS relid FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
      WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database())`;
  const published = `SELECT c.oid FROM pg_publication_tables p
       JOIN pg_namespace n ON n.nspname = p.schemaname JOIN pg_class c ON c.relnamespace = n.oid AND c.relname = p.tablename
      WHERE p.pubname IN (SELECT unnest(g.publications) FROM syncguard.registrations g)`;
  // each table with its partition ancestors (itself first, its root last): a partition counts as
  // monitored when it or an ancestor is registered, and an unmonitored one is named by its root
  const withAncestors = (source: string) =>
    `SELECT (SELECT json_agg(json_build_array(an.nspname, ac.relname) ORDER BY x.o)
               FROM (SELECT t.relid AS r, 0 AS o UNION ALL
                     SELECT a.relid, row_number() OVER () FROM pg_partition_ancestors(t.relid) a WHERE a.relid <> t.relid) x
               JOIN pg_class ac ON ac.oid = x.r JOIN pg_namespace an ON an.oid = ac.relnamespace) AS chain
       FROM (${source}) t(relid) JOIN pg_class c ON c.oid = t.relid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname <> 'syncguard'`;
  const { rows } = await client
    .query<{ chain: [string, string][] }>(withAncestors(`${subscribed} UNION ${published}`))
    // a role without access to the registrations: the subscription's tables only
    .catch(async () => client.query<{ chain: [string, string][] }>(withAncestors(subscribed)));
  const out = new Set<TableRef>();
  for (const { chain } of rows) {
    const tables = chain.map(([schema, table]) => TableRef.of(schema, table));
    if (!tables.some((t) => registered.has(t))) out.add(tables[tables.length - 1] as TableRef);
  }
  return [...out].sort(byText);
}
