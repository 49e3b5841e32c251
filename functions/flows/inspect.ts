// Inspecting one bucket (docs/repair.md "Inspect"): the (key, row hash) lists of both sides at one
// replication position, from an inspection probe; then the full rows of the differing keys only.
// Values go to the caller (the user asked for the diff), never to a log.

import { setTimeout as sleep } from 'node:timers/promises';
import type { DetailCatalogue } from '../core/compare.js';
import { IncompatibleError, InputError, SyncGuardError } from '../core/errors.js';
import type { TableRef } from '../core/identifiers.js';
import { type Diff, describeDiffs, diffKeys, type KeyDiff, type RowValues } from '../core/repair-plan.js';
import { TIME } from '../core/time-limits.js';
import { insertLsn } from '../db/barrier.js';
import { readDetail } from '../db/catalogue.js';
import type { Client } from '../db/connect.js';
import { Deadline } from '../db/deadline.js';
import { readRowValues, sendRowsProbe } from '../db/repair.js';
import { nodeStatus } from '../db/status.js';
import { registrationProblems } from '../db/verify-context.js';
import { CheckedPair } from './pair.js';
import { probeReach } from './probe-route.js';
import { awaitAnswers } from './probes.js';
import { withHoldRetries, withLockRetries } from './retries.js';

export interface Inspection {
  readonly table: TableRef;
  readonly bucket: string;
  readonly fingerprint: string;
  /** The publisher's WAL position right after the inspection probe committed. */
  readonly lsn: string;
  readonly rowsChecked: { readonly publisher: number; readonly subscriber: number };
  readonly keys: readonly KeyDiff[];
  readonly diffs: readonly Diff[];
  readonly publisherRows: RowValues;
  readonly subscriberRows: RowValues;
  /**
   * Keys whose rows kept changing between the probe and the reading of their values through every
   * attempt: their values are a preview read after the inspection, not the inspected rows.
   */
  readonly moving?: readonly string[];
  /**
   * The inspection probe's id: the subscriber keeps the inspection's snapshot and local_write epoch
   * under it (node 0029), and a repair names it instead of carrying a snapshot.
   */
  readonly inspection: string;
  readonly durationMs: number;
}

/** What probing needs to know about a pair and one of its tables, checked. */
export interface ProbeTarget {
  readonly origin: string;
  readonly target: string;
  readonly subscription: string;
  readonly fingerprint: string;
  /** The publisher registration's bucket scheme (hash, int, range). */
  readonly scheme: string;
}

/** Checks that the table is registered alike on both nodes of a checked pair and that probes reach it. */
export async function probeTargetOf({ pub, sub }: CheckedPair, table: TableRef): Promise<ProbeTarget> {
  const name = table.text;
  const { tables, problems } = await registrationProblems(pub, sub, table);
  if (tables.length === 0) throw new InputError(`table ${name} is not registered on the publisher or the subscriber`);
  const found = problems.get(table) ?? [];
  if (found.length > 0) throw new IncompatibleError(`table ${name} cannot be inspected or repaired: ${found.join('; ')}`);
  const [p, s] = [await nodeStatus(pub), await nodeStatus(sub)];
  const pt = p.tables.find((t) => t.table === name);
  const pf = pt?.fingerprint;
  const sf = s.tables.find((t) => t.table === name)?.fingerprint;
  if (pf === undefined || pf !== sf)
    throw new IncompatibleError(`registration fingerprints of ${name} differ: publisher ${pf}, subscriber ${sf}`);
  const reach = (await probeReach(sub, [table])).reach.get(table);
  if (reach?.ok !== true) {
    throw new IncompatibleError(
      `${name} cannot be inspected or repaired without probes: ${reach?.ok === false ? reach.reason : 'no subscription replicates it'}`,
    );
  }
  return { origin: p.nodeId, target: s.nodeId, subscription: reach.subscription, fingerprint: pf, scheme: pt?.scheme ?? 'hash' };
}

/** How often an inspection is taken again when the rows read after it no longer hash as it listed them. */
const INSPECT_ATTEMPTS = 5;

/** Keys whose full row (read after the probe) does not hash as the probe listed it, on either side. */
function movedKeys(ins: Inspection): string[] {
  const hashOf = (v: RowValues, key: string) => v.rows.get(key)?.hash ?? null;
  return ins.keys
    .filter(
      (k) =>
        (k.kind !== 'extra_on_subscriber' && hashOf(ins.publisherRows, k.key) !== k.publisherHash) ||
        (k.kind !== 'missing_on_subscriber' && hashOf(ins.subscriberRows, k.key) !== k.subscriberHash),
    )
    .map((k) => k.key);
}

/**
 * Inspects one bucket. The full rows are read after the probe, so a row may have changed in
 * between; then the values shown would not be the inspected rows (item 13), and the inspection is
 * taken again, a few times; rows that change through every attempt are listed as `moving`.
 */
export async function inspectBucket(
  pub: Client,
  sub: Client,
  table: TableRef,
  bucketText: string,
  opts: { deadline?: Deadline; lockTimeoutMs?: number } = {},
): Promise<Inspection> {
  const started = Date.now();
  const deadline = opts.deadline ?? Deadline.after(TIME.defaultLimitMs, started);
  for (let attempt = 1; ; attempt++) {
    const ins = await inspectOnce(pub, sub, table, bucketText, { ...opts, deadline: deadline.orAtLeast(TIME.minLimitMs) });
    const moved = movedKeys(ins);
    if (moved.length === 0) return { ...ins, durationMs: Date.now() - started };
    if (attempt >= INSPECT_ATTEMPTS || deadline.expired()) {
      // rows that keep changing (a busy row, the one a repair is most needed for): the plan's
      // preconditions are the probe's hashes and the repair writes the publisher's row at its own
      // position (item 15), so their values are shown as a preview, marked as read after they moved
      return { ...ins, moving: moved, durationMs: Date.now() - started };
    }
    await sleep(50 * 2 ** (attempt - 1));
  }
}

async function inspectOnce(
  pub: Client,
  sub: Client,
  table: TableRef,
  bucketText: string,
  opts: { deadline: Deadline; lockTimeoutMs?: number },
): Promise<Inspection> {
  const started = Date.now();
  const deadline = opts.deadline;
  if (!/^-?\d{1,19}$/.test(bucketText)) throw new InputError(`bucket must be an integer, got ${JSON.stringify(bucketText)}`);
  const bucket = BigInt(bucketText).toString();
  const t = await probeTargetOf(await CheckedPair.open(pub, sub), table);
  const name = table.text;
  const pubDetail = await readDetail(pub, table, [bucket]);
  const known = (d: DetailCatalogue) => d.buckets.has(bucket) || d.dirty.has(bucket);
  if (!known(pubDetail) && !known(await readDetail(sub, table, [bucket]))) {
    throw new InputError(
      `bucket ${bucket} of ${name} is in neither catalogue (no row there on either side); the buckets to inspect are those verify reports`,
    );
  }
  const lockTimeoutMs = opts.lockTimeoutMs ?? 20;
  const probe = await withHoldRetries(() =>
    withLockRetries(`inspecting ${name} bucket ${bucket}`, lockTimeoutMs, () =>
      sendRowsProbe(pub, {
        table,
        bucket,
        target: t.target,
        subscription: t.subscription,
        lockTimeoutMs,
        scheme: t.scheme,
        rows: pubDetail.buckets.get(bucket)?.rows ?? null,
      }),
    ),
  );
  const lsn = await insertLsn(pub);
  const waited = await awaitAnswers(sub, t.origin, [probe.id], deadline, [t.subscription]);
  const answer = waited.answers.get(probe.id);
  if (answer === undefined)
    throw new SyncGuardError(`the subscriber did not answer the inspection probe: ${waited.failure ?? 'no answer'}`);
  if (!answer.ok)
    throw new IncompatibleError(`the subscriber could not inspect ${name} bucket ${bucket}: ${answer.error ?? 'unknown error'}`);
  // {rows, snapshot} since node 0024; a bare list before. The snapshot stays on the subscriber, kept
  // under the probe's id (node 0029): a repair names the inspection, the subscriber trusts only its own
  const a = answer.answer as { rows?: Record<string, string>; snapshot?: string } & Record<string, unknown>;
  const listed = typeof a.snapshot === 'string' && typeof a.rows === 'object' && a.rows !== null;
  const subRows = new Map(Object.entries((listed ? a.rows : a) as Record<string, string>));
  const keys = diffKeys(probe.rows, subRows);
  const publisherRows = await readRowValues(
    pub,
    table,
    bucket,
    keys.filter((k) => k.kind !== 'extra_on_subscriber').map((k) => k.key),
  );
  const subscriberRows = await readRowValues(
    sub,
    table,
    bucket,
    keys.filter((k) => k.kind !== 'missing_on_subscriber').map((k) => k.key),
  );
  return {
    table,
    bucket,
    fingerprint: t.fingerprint,
    lsn,
    rowsChecked: { publisher: probe.rows.size, subscriber: subRows.size },
    keys,
    diffs: describeDiffs(keys, publisherRows, subscriberRows),
    publisherRows,
    subscriberRows,
    inspection: probe.id,
    durationMs: Date.now() - started,
  };
}
