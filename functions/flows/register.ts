// Registering a table on a pair: read both descriptions, decide in the core, sample what the
// layout needs on the publisher, then write the identical registration to both nodes in two
// transactions that commit only when both succeeded; and removing it from both. The reads and
// writes of one node are db/register.ts.

import { InputError } from '../core/errors.js';
import { chooseHashVersion } from '../core/hash-version-choice.js';
import { TableRef } from '../core/identifiers.js';
import { buildConfig, DEFAULT_BUCKET_SIZE, layoutFor, planRegistration, type RegistrationConfig } from '../core/registration.js';
import type { Client } from '../db/connect.js';
import {
  applyAsOwnerNotes,
  describeTable,
  heldFingerprint,
  heldRegistration,
  publisherRows,
  type RegisterOptions,
  type RegisterResult,
  registerOn,
  sampleBounds,
  subscribedPublications,
  truncatedColumns,
  unregisterOn,
} from '../db/register.js';
import { CheckedPair } from './pair.js';

export async function registerTable(publisher: Client, subscriber: Client, opts: RegisterOptions): Promise<RegisterResult> {
  const pair = await CheckedPair.open(publisher, subscriber);
  const { config, notes } = await planTable(pair, opts);
  if (
    (await heldFingerprint(publisher, opts.table)) === config.fingerprint &&
    (await heldFingerprint(subscriber, opts.table)) === config.fingerprint
  ) {
    return { config, notes, alreadyRegistered: true };
  }
  await writeRegistration(pair, config, false);
  return { config, notes, alreadyRegistered: false };
}

/**
 * Everything a registration needs, checked and decided, and nothing written: on a checked pair
 * (both nodes installed and distinct), the subscriber subscribed to the publisher, both tables
 * described, the layout sampled. A refresh plans first, so a refusal changes nothing.
 */
export async function planTable(
  pair: CheckedPair,
  opts: RegisterOptions,
  /** A refresh replaces the registration, so the hash version asked for may differ from the one held. */
  refresh = false,
): Promise<{ config: RegistrationConfig; notes: string[] }> {
  const { pub: publisher, sub: subscriber } = pair;
  const publications = await subscribedPublications(publisher, subscriber);
  // A table registered before (on either node: one may have lost its registration) keeps its hash
  // version, bucket scheme and integer bucket width unless others are asked for, so registering it
  // again without repeating its options finds it already registered, or completes the node that
  // lost it, instead of refusing a different fingerprint.
  const heldBy = refresh
    ? undefined
    : ((await heldRegistration(publisher, opts.table)) ?? (await heldRegistration(subscriber, opts.table)));
  const heldVersion = refresh ? (await heldRegistration(publisher, opts.table))?.hashVersion : heldBy?.hashVersion;
  if (!refresh && opts.hashVersion !== undefined && heldVersion !== undefined && heldVersion !== opts.hashVersion) {
    throw new InputError(
      `table ${opts.table.text} is registered with hash version ${heldVersion}; to move it to version ${opts.hashVersion} (both sides re-sweep it), run: syncguard register --table ${opts.table.text} --refresh --hash-version ${opts.hashVersion}`,
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
    opts.table.text,
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
    bounds = await sampleBounds(
      publisher,
      opts.table,
      plan.key.map((k) => k.name),
      size,
    );
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
export async function writeRegistration(pair: CheckedPair, config: RegistrationConfig, replace: boolean): Promise<void> {
  const { pub: publisher, sub: subscriber } = pair;
  const table = TableRef.of(config.schema, config.table);
  // the subscriber's transaction inside the publisher's: it commits first, and a failure on
  // either rolls both back
  await publisher.transaction(() =>
    subscriber.transaction(async () => {
      for (const [client, role] of [
        [subscriber, 'subscriber'],
        [publisher, 'publisher'],
      ] as const) {
        if (replace) await unregisterOn(client, table);
        await registerOn(client, config, role);
      }
    }),
  );
}

/** Removes the registration (triggers, generated objects, state) from both nodes. */
export async function unregisterTable(
  publisher: Client,
  subscriber: Client,
  table: TableRef,
): Promise<{ publisher: boolean; subscriber: boolean }> {
  // the same database twice (however the DSNs spell it) would remove the publisher's registration
  await CheckedPair.open(publisher, subscriber);
  const result = { publisher: false, subscriber: false };
  for (const [client, role] of [
    [subscriber, 'subscriber'],
    [publisher, 'publisher'],
  ] as const) {
    result[role] = await unregisterOn(client, table);
  }
  if (!result.publisher && !result.subscriber) {
    throw new InputError(`table ${table.text} is not registered on either node`);
  }
  return result;
}
