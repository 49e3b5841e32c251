// Reading a node's drain state (syncguard.status()).

import { tableText } from '../core/identifiers.js';
import type { Client } from './connect.js';
import { requireInstalled } from './install.js';

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
}

export interface NodeStatus {
  readonly nodeId: string;
  readonly stateIntact: boolean;
  readonly stateLostAt: string | null;
  readonly stateLostCount: number;
  readonly lastFullSweepAt: string | null;
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
export async function unmonitoredTables(client: Client, registered: ReadonlySet<string>): Promise<string[]> {
  const { rows } = await client
    .query<{ schema: string; table: string }>(
      `SELECT n.nspname AS schema, c.relname AS table
       FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
       JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND n.nspname <> 'syncguard'
     UNION
     SELECT p.schemaname, p.tablename FROM pg_publication_tables p
      WHERE p.schemaname <> 'syncguard'
        AND p.pubname IN (SELECT unnest(g.publications) FROM syncguard.registrations g)
     ORDER BY 1, 2`,
    )
    .catch(async () =>
      // a role without access to the registrations: the subscription's tables only
      client.query<{ schema: string; table: string }>(
        `SELECT n.nspname AS schema, c.relname AS table
         FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
         JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE s.subdbid = (SELECT oid FROM pg_database WHERE datname = current_database()) AND n.nspname <> 'syncguard' ORDER BY 1, 2`,
      ),
    );
  return rows.map(tableText).filter((t) => !registered.has(t));
}
