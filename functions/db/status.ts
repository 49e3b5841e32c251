// Reading a node's drain state (syncguard.status()).

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
