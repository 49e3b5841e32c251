// Inspection and repair on the nodes (sql/node/0014_repair.sql): one transaction or statement per
// function. The flow is in flows/inspect.ts and flows/repair.ts.

import type { QualifiedName } from '../core/identifiers.js';
import type { PlannedChange, RowList, RowValues } from '../core/repair-plan.js';
import { type Client, one } from './connect.js';

/** A short READ COMMITTED transaction with a lock_timeout around one locked probe function; commit right after. */
async function lockedCall<T>(pub: Client, lockTimeoutMs: number, sql: string, params: unknown[]): Promise<T> {
  await pub.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    await pub.query('SELECT set_config($1, $2, true)', ['lock_timeout', `${Math.max(1, Math.round(lockTimeoutMs))}ms`]);
    const { rows } = await pub.query<{ r: T }>(sql, params);
    const r = one(rows, sql).r;
    await pub.query('COMMIT');
    return r;
  } catch (err) {
    await pub.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** The publisher's (key, hash) list of one bucket under the SHARE lock, sent as an inspection probe. */
export async function sendRowsProbe(
  pub: Client,
  p: { table: QualifiedName; bucket: string; target: string; subscription: string; lockTimeoutMs: number },
): Promise<{ id: string; rows: RowList; lockWaitMs: number; computeMs: number }> {
  const r = await lockedCall<{ id: string; rows: Record<string, string>; lockWaitMs: string; computeMs: string }>(
    pub,
    p.lockTimeoutMs,
    'SELECT syncguard.probe_rows($1, $2, $3, $4, $5) AS r',
    [p.table.schema, p.table.table, p.bucket, p.target, p.subscription],
  );
  return { id: String(r.id), rows: new Map(Object.entries(r.rows)), lockWaitMs: Number(r.lockWaitMs), computeMs: Number(r.computeMs) };
}

/** A side's full rows of some keys of one bucket. */
export async function readRowValues(c: Client, table: QualifiedName, bucket: string, keys: readonly string[]): Promise<RowValues> {
  const { rows } = await c.query<{
    v: {
      columns: string[];
      keyColumns: string[];
      identityAlways: string[];
      generated: string[];
      rows: Record<string, { hash: string; keyValues: (string | null)[]; values: (string | null)[] }>;
    };
  }>('SELECT syncguard.row_values($1, $2, $3, $4) AS v', [table.schema, table.table, bucket, keys]);
  const v = one(rows, 'syncguard.row_values').v;
  return { ...v, rows: new Map(Object.entries(v.rows)) };
}

export interface SentRepair {
  /** Null when no change was sent (every publisher row changed since inspection). */
  readonly id: string | null;
  readonly sent: number;
  readonly skipped: readonly { readonly key: string; readonly outcome: 'publisher_changed' }[];
  readonly lockWaitMs: number;
  readonly holdMs: number;
}

/** The repair request of a plan, under the publisher's SHARE lock. */
export async function sendRepair(
  pub: Client,
  p: {
    table: QualifiedName;
    bucket: string;
    changes: readonly PlannedChange[];
    plan: string;
    target: string;
    subscription: string;
    lockTimeoutMs: number;
  },
): Promise<SentRepair> {
  // what travels: the preconditions and a delete's key values; an upsert's values are the publisher's, read under the lock
  const changes = p.changes.map((c) => ({
    key: c.key,
    op: c.op,
    subHash: c.subHash,
    pubHash: c.pubHash,
    ...(c.op === 'delete' ? { keyValues: c.keyValues } : {}),
  }));
  const r = await lockedCall<{ id: string | null; sent: number; skipped: SentRepair['skipped']; lockWaitMs: string; holdMs: string }>(
    pub,
    p.lockTimeoutMs,
    'SELECT syncguard.repair_request($1, $2, $3, $4, $5, $6, $7) AS r',
    [p.table.schema, p.table.table, p.bucket, JSON.stringify(changes), p.plan, p.target, p.subscription],
  );
  return {
    id: r.id === null ? null : String(r.id),
    sent: Number(r.sent),
    skipped: r.skipped,
    lockWaitMs: Number(r.lockWaitMs),
    holdMs: Number(r.holdMs),
  };
}

/** Privileges the syncguard owner lacks on the table to write repairs there (empty: none lacking). */
export async function missingRepairPrivileges(sub: Client, table: QualifiedName): Promise<string[]> {
  const { rows } = await sub.query<{ p: string[] }>('SELECT syncguard.repair_privileges($1, $2) AS p', [table.schema, table.table]);
  return one(rows, 'syncguard.repair_privileges').p;
}
