// Inspection and repair on the nodes (sql/node/0014_repair.sql): one transaction or statement per
// function. The flow is in flows/inspect.ts and flows/repair.ts.

import { SyncGuardError } from '../core/errors.js';
import { inspectHoldHint, singleChangeHoldHint } from '../core/hold-hints.js';
import type { TableRef } from '../core/identifiers.js';
import type { PlannedChange, RowList, RowValues } from '../core/repair-plan.js';
import { type Client, one } from './connect.js';
import { SQLSTATE, sqlstateOf } from './sqlstate.js';

/** The longest a writer may wait because of an inspection or a repair (issue 9: 50 ms): the wait for the lock and the time under it together. */
export const MAX_HOLD_MS = 50;

/**
 * A short READ COMMITTED transaction around one locked probe function, committed right after.
 * lock_timeout bounds the wait for the lock (55P03, retried by the caller); statement_timeout
 * bounds the wait and the time under the lock together, which is the longest a writer queued
 * behind it can wait: a call that would take longer is cancelled and changes nothing.
 */
/** A locked call cancelled at the hold limit (its name stays SyncGuardError: callers may split the work and try again). */
export class HoldLimitError extends SyncGuardError {}

async function lockedCall<T>(pub: Client, lockTimeoutMs: number, sql: string, params: unknown[], what: string, hint: string): Promise<T> {
  await pub.query('BEGIN ISOLATION LEVEL READ COMMITTED');
  try {
    await pub.query('SELECT set_config($1, $2, true), set_config($3, $4, true)', [
      'lock_timeout',
      `${Math.max(1, Math.round(lockTimeoutMs))}ms`,
      'statement_timeout',
      `${Math.max(lockTimeoutMs + 1, MAX_HOLD_MS)}ms`,
    ]);
    const { rows } = await pub.query<{ r: T }>(sql, params);
    const r = one(rows, sql).r;
    await pub.query('COMMIT');
    return r;
  } catch (err) {
    await pub.query('ROLLBACK').catch(() => {});
    if (sqlstateOf(err) === SQLSTATE.queryCanceled) {
      throw new HoldLimitError(
        `${what} would hold writers to the table back for more than ${MAX_HOLD_MS} ms, so it was cancelled and changed nothing${hint}`,
      );
    }
    throw err;
  }
}

/** The publisher's (key, hash) list of one bucket under the SHARE lock, sent as an inspection probe. */
export async function sendRowsProbe(
  pub: Client,
  p: {
    table: TableRef;
    bucket: string;
    target: string;
    subscription: string;
    lockTimeoutMs: number;
    /** The bucket scheme and the bucket's catalogue row count, for the hint when the hold limit is hit. */
    scheme: string;
    rows?: bigint | null;
  },
): Promise<{ id: string; rows: RowList; lockWaitMs: number; computeMs: number }> {
  const r = await lockedCall<{ id: string; rows: Record<string, string>; lockWaitMs: string; computeMs: string }>(
    pub,
    p.lockTimeoutMs,
    'SELECT syncguard.probe_rows($1, $2, $3, $4, $5) AS r',
    [p.table.schema, p.table.table, p.bucket, p.target, p.subscription],
    `inspecting bucket ${p.bucket}`,
    inspectHoldHint({ scheme: p.scheme, table: p.table.text, bucket: p.bucket, rows: p.rows ?? null }),
  );
  return { id: String(r.id), rows: new Map(Object.entries(r.rows)), lockWaitMs: Number(r.lockWaitMs), computeMs: Number(r.computeMs) };
}

/** A side's full rows of some keys of one bucket. */
export async function readRowValues(c: Client, table: TableRef, bucket: string, keys: readonly string[]): Promise<RowValues> {
  const { rows } = await c.query<{
    v: {
      columns: string[];
      keyColumns: string[];
      identityAlways: string[];
      generated: string[];
      content: string;
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
  readonly skipped: readonly { readonly key: string; readonly outcome: 'publisher_changed' | 'refused'; readonly error?: string }[];
  readonly lockWaitMs: number;
  readonly holdMs: number;
}

/** The repair request of a plan, under the publisher's SHARE lock. */
export async function sendRepair(
  pub: Client,
  p: {
    table: TableRef;
    bucket: string;
    changes: readonly PlannedChange[];
    plan: string;
    target: string;
    subscription: string;
    lockTimeoutMs: number;
    /** How long the subscriber's apply worker waits for a row another session holds (node default 100 ms, at most 5 s). */
    applyLockTimeoutMs?: number;
    /**
     * The inspection probe's id the plan was made from: the subscriber judges local writes by the
     * snapshot it kept under it (node 0029), and refuses a request without one.
     */
    inspection?: string;
    /** The bucket scheme, for the hint when the hold limit is hit. */
    scheme: string;
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
    [
      p.table.schema,
      p.table.table,
      p.bucket,
      JSON.stringify({
        changes,
        ...(p.applyLockTimeoutMs === undefined ? {} : { lockTimeoutMs: p.applyLockTimeoutMs }),
        ...(p.inspection === undefined ? {} : { inspection: p.inspection }),
      }),
      p.plan,
      p.target,
      p.subscription,
    ],
    `the repair of bucket ${p.bucket} (${p.changes.length} ${p.changes.length === 1 ? 'change' : 'changes'} in one request)`,
    p.changes.length === 1 ? singleChangeHoldHint({ scheme: p.scheme, table: p.table.text, bucket: p.bucket }) : '',
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
export async function missingRepairPrivileges(sub: Client, table: TableRef): Promise<string[]> {
  const { rows } = await sub.query<{ p: string[] }>('SELECT syncguard.repair_privileges($1, $2) AS p', [table.schema, table.table]);
  return one(rows, 'syncguard.repair_privileges').p;
}

/** What the subscriber's repair would run of the table owner's code with syncguard's rights (empty: nothing). */
export async function repairUserCode(sub: Client, table: TableRef): Promise<string[]> {
  const { rows } = await sub.query<{ c: string[] }>('SELECT syncguard.repair_user_code($1, $2) AS c', [table.schema, table.table]);
  return one(rows, 'syncguard.repair_user_code').c;
}

/** The ids of the publisher's repair requests of a plan on a table (node 0024), oldest first. */
export async function repairRequestsOf(pub: Client, table: TableRef, plan: string): Promise<string[]> {
  const { rows } = await pub.query<{ ids: string[] }>('SELECT syncguard.repair_requests($1, $2, $3)::text[] AS ids', [
    table.schema,
    table.table,
    plan,
  ]);
  return one(rows, 'syncguard.repair_requests').ids;
}
