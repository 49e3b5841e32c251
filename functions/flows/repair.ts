// Planning and applying a repair of one bucket (docs/repair.md). The plan comes from an
// inspection; the repair travels through the subscription as a probe does, so it lands at one
// replication position: the publisher holds the table still while it checks its rows against the
// plan, the subscriber's trigger writes each change only where its row is still as inspected.
// After the repair the bucket is probed again.

import { IncompatibleError, PlanStaleError } from '../core/errors.js';
import type { TableRef } from '../core/identifiers.js';
import {
  checkCap,
  DEFAULT_PLAN_CAP,
  DEFAULT_PLAN_EXPIRY_MS,
  type PlanContent,
  type PlannedChange,
  planChanges,
  planChecksum,
  planSql,
} from '../core/repair-plan.js';
import { TIME } from '../core/time-limits.js';
import type { Client } from '../db/connect.js';
import { Deadline } from '../db/deadline.js';
import { HoldLimitError, missingRepairPrivileges, repairRequestsOf, repairUserCode, type SentRepair, sendRepair } from '../db/repair.js';
import { nodeStatus } from '../db/status.js';
import { type Inspection, inspectBucket, probeTargetOf } from './inspect.js';
import { CheckedPair } from './pair.js';
import { awaitAnswers, emptyStats, resolveByProbes } from './probes.js';
import { beforeHoldRetry, withLockRetries } from './retries.js';

export interface Plan extends PlanContent {
  /** A new plan always names its inspection (a stored one made before node 0029 may not). */
  readonly inspection: string;
  readonly checksum: string;
  readonly sql: string;
  readonly rowCount: number;
}

export type ChangeOutcome =
  | 'applied'
  | 'already_equal'
  | 'changed_since_inspection'
  | 'publisher_changed'
  | 'refused'
  | 'failed'
  | 'applied_but_differs'
  | 'not_answered';

export interface ChangeResult {
  readonly key: string;
  readonly outcome: ChangeOutcome;
  readonly op?: 'upsert' | 'delete';
  readonly hash?: string | null;
  readonly error?: string;
}

export interface RepairOutcome {
  readonly table: string;
  readonly bucket: string;
  /** Per change: what happened; op and hash: what was written (the publisher row's hash, null for a delete). */
  readonly changes: readonly ChangeResult[];
  readonly counts: Readonly<Partial<Record<ChangeOutcome, number>>>;
  /** The bucket probed again after the repair. */
  readonly bucketAfter: 'equal' | 'differs' | 'unknown';
  readonly lockWaitMs: number;
  readonly holdMs: number;
  /** The subscriber's time applying the request (the replication delay the repair causes). */
  readonly applyMs: number | null;
  readonly durationMs: number;
}

/** The most changes one repair request carries; fewer when a request would hold writers back longer than the promise. */
const MAX_REQUEST_CHANGES = 250;

export interface PlanOptions {
  readonly pair: string;
  readonly maxRows?: number;
  readonly expiresInMs?: number;
  readonly now?: number;
}

/** A plan from an inspection: the changes, their SQL for review, the checksum an approval signs. */
export function planFromInspection(ins: Inspection, opts: PlanOptions): Plan {
  const changes = planChanges(ins.keys, ins.publisherRows, ins.subscriberRows);
  checkCap(ins.table, changes.length, opts.maxRows ?? DEFAULT_PLAN_CAP);
  const content: PlanContent & { inspection: string } = {
    pair: opts.pair,
    table: ins.table,
    bucket: ins.bucket,
    fingerprint: ins.fingerprint,
    changes,
    expiresAt: new Date((opts.now ?? Date.now()) + (opts.expiresInMs ?? DEFAULT_PLAN_EXPIRY_MS)).toISOString(),
    inspection: ins.inspection,
  };
  const columns = ins.publisherRows.columns.length > 0 ? ins.publisherRows : ins.subscriberRows;
  return {
    ...content,
    checksum: planChecksum(content),
    sql: planSql(ins.table, columns, changes),
    rowCount: changes.length,
  };
}

async function requireRepairable(sub: Client, table: TableRef): Promise<void> {
  const name = table.text;
  const missing = await missingRepairPrivileges(sub, table);
  if (missing.length > 0) {
    throw new IncompatibleError(
      `the syncguard owner on the subscriber lacks ${missing.join(', ')} on ${name}, so it cannot write repairs there; grant them to the role that installed syncguard`,
    );
  }
  const code = await repairUserCode(sub, table);
  if (code.length > 0) {
    throw new IncompatibleError(
      `${name} is not repaired by syncguard: its repair on the subscriber would run code that the table's owner controls with syncguard's rights (${code.join('; ')}); repair these rows by hand as the table's owner, or install syncguard as the table's owner`,
    );
  }
}

/** Inspects a bucket and plans its repair; refuses when the subscriber could not write it. */
export async function planBucket(
  pub: Client,
  sub: Client,
  table: TableRef,
  bucket: string,
  opts: PlanOptions & { deadline?: Deadline },
): Promise<{ inspection: Inspection; plan: Plan }> {
  await requireRepairable(sub, table);
  const inspection = await inspectBucket(pub, sub, table, bucket, opts.deadline === undefined ? {} : { deadline: opts.deadline });
  return { inspection, plan: planFromInspection(inspection, opts) };
}

/** Applies a plan's changes through the subscription, then probes the bucket again. */
export async function applyPlan(
  pub: Client,
  sub: Client,
  plan: {
    readonly id: string;
    readonly table: TableRef;
    readonly bucket: string;
    readonly fingerprint: string;
    readonly changes: readonly PlannedChange[];
    readonly inspection?: string;
  },
  opts: {
    /** The end of the repair (default 60 s from its start). */
    deadline?: Deadline;
    lockTimeoutMs?: number;
    applyLockTimeoutMs?: number;
    /** Called before each request is sent (flows/plans.ts renews the run's claim there); a throw sends nothing more. */
    beforeSend?: () => Promise<void>;
  } = {},
): Promise<RepairOutcome> {
  const started = Date.now();
  const deadline = opts.deadline ?? Deadline.after(TIME.defaultLimitMs, started);
  const table = plan.table;
  const t = await probeTargetOf(await CheckedPair.open(pub, sub), table);
  if (t.fingerprint !== plan.fingerprint) {
    throw new PlanStaleError(
      `${table.text} was registered again since the plan was made (fingerprint ${plan.fingerprint}, now ${t.fingerprint}); inspect again and make a new plan`,
    );
  }
  if (plan.inspection === undefined) {
    throw new PlanStaleError(
      `plan ${plan.id} names no inspection the subscriber kept (it was made before node migration 0029, whose subscriber no longer trusts a snapshot the plan carries); inspect again and make a new plan`,
    );
  }
  const inspection = plan.inspection;
  await requireRepairable(sub, table);
  const lockTimeoutMs = opts.lockTimeoutMs ?? 20;
  // in parts that each fit the hold promise: a request that would hold writers longer is cancelled
  // unsent, and its part is halved (item 23: a bucket emptied on the subscriber has every row to send)
  const sent: SentRepair[] = [];
  let size = Math.max(1, Math.min(plan.changes.length, MAX_REQUEST_CHANGES));
  let singleRetries = 0;
  for (let i = 0; i < plan.changes.length; ) {
    const part = plan.changes.slice(i, i + size);
    await opts.beforeSend?.();
    try {
      sent.push(
        await withLockRetries(`repairing ${table.text} bucket ${plan.bucket}`, lockTimeoutMs, () =>
          sendRepair(pub, {
            table,
            bucket: plan.bucket,
            changes: part,
            plan: plan.id,
            target: t.target,
            subscription: t.subscription,
            lockTimeoutMs,
            inspection,
            scheme: t.scheme,
            ...(opts.applyLockTimeoutMs === undefined ? {} : { applyLockTimeoutMs: opts.applyLockTimeoutMs }),
          }),
        ),
      );
      i += part.length;
    } catch (err) {
      if (!(err instanceof HoldLimitError) || deadline.expired()) throw err;
      if (size > 1) size = Math.ceil(size / 2);
      // one change cancelled at the hold limit: tried again a few times (retries.ts)
      else await beforeHoldRetry(err, ++singleRetries);
    }
  }
  return collectOutcome(pub, sub, plan, t, sent, started, deadline);
}

/** The outcome of sent requests: each change's answer from the subscriber, then the bucket probed again. */
async function collectOutcome(
  pub: Client,
  sub: Client,
  plan: { readonly table: TableRef; readonly bucket: string; readonly changes: readonly PlannedChange[] },
  t: { origin: string; target: string; subscription: string },
  sent: readonly SentRepair[],
  started: number,
  deadline: Deadline,
): Promise<RepairOutcome> {
  const changes: ChangeResult[] = sent.flatMap((x) =>
    x.skipped.map((s) => ({ key: s.key, outcome: s.outcome, ...(s.error === undefined ? {} : { error: s.error }) })),
  );
  const ids = sent.flatMap((x) => (x.id === null ? [] : [x.id]));
  let applyMs: number | null = null;
  if (ids.length > 0) {
    const waited = await awaitAnswers(sub, t.origin, ids, deadline, [t.subscription]);
    const reached = new Set<string>(changes.map((c) => c.key));
    let why = waited.failure ?? 'no answer';
    for (const id of ids) {
      const a = waited.answers.get(id);
      const outcomes = (a?.answer as { changes?: ChangeResult[]; error?: string } | null) ?? null;
      if (a?.computeMs !== undefined && a.computeMs !== null) applyMs = (applyMs ?? 0) + a.computeMs;
      for (const c of outcomes?.changes ?? []) {
        if (reached.has(c.key)) continue;
        reached.add(c.key);
        changes.push(c);
      }
      if (a !== undefined) why = a.error ?? outcomes?.error ?? 'no outcome';
    }
    for (const c of plan.changes) if (!reached.has(c.key)) changes.push({ key: c.key, outcome: 'not_answered', error: why });
  }
  const counts: Partial<Record<ChangeOutcome, number>> = {};
  for (const c of changes) counts[c.outcome] = (counts[c.outcome] ?? 0) + 1;
  return {
    table: plan.table.text,
    bucket: plan.bucket,
    changes,
    counts,
    bucketAfter: await probeBucket(pub, sub, plan.table, plan.bucket, t, deadline),
    lockWaitMs: sent.reduce((n, x) => n + x.lockWaitMs, 0),
    holdMs: Math.max(0, ...sent.map((x) => x.holdMs)),
    applyMs,
    durationMs: Date.now() - started,
  };
}

/**
 * The outcome of a plan whose run died after it sent its request (item 22): the publisher still
 * holds the request (an hour), the subscriber its answer. Null when no request of the plan is there.
 */
export async function recoverPlan(
  pub: Client,
  sub: Client,
  plan: { readonly id: string; readonly table: TableRef; readonly bucket: string; readonly changes: readonly PlannedChange[] },
  opts: { deadline?: Deadline } = {},
): Promise<RepairOutcome | null> {
  const started = Date.now();
  const table = plan.table;
  const t = await probeTargetOf(await CheckedPair.open(pub, sub), table);
  const ids = await repairRequestsOf(pub, table, plan.id);
  if (ids.length === 0) return null;
  const sent: SentRepair[] = ids.map((id) => ({ id, sent: 0, skipped: [], lockWaitMs: 0, holdMs: 0 }));
  return collectOutcome(pub, sub, plan, t, sent, started, opts.deadline ?? Deadline.after(TIME.defaultLimitMs, started));
}

/** One bucket compared at a probe's position: equal, differs, or unknown (not probed or not answered). */
async function probeBucket(
  pub: Client,
  sub: Client,
  table: TableRef,
  bucket: string,
  t: { origin: string; target: string; subscription: string },
  deadline: Deadline,
): Promise<'equal' | 'differs' | 'unknown'> {
  const status = (await nodeStatus(pub)).tables.find((x) => x.table === table.text);
  const request = {
    table,
    scheme: (status?.scheme ?? 'int') as 'int' | 'range' | 'hash',
    subscription: t.subscription,
    targets: [{ bucket, rows: 1 }],
    tableRows: status?.rows ?? 0,
  };
  const out = (await resolveByProbes(pub, sub, [request], { origin: t.origin, target: t.target, deadline }, emptyStats())).get(table)?.[0];
  return out === undefined || out.state === 'left_out' ? 'unknown' : out.state === 'equal' ? 'equal' : 'differs';
}
