// Installing on a pair and registering a table, as the CLI and tests do them: the schema or the
// registration, then the probe's route for the registered tables (flows/probe-route.ts), so that
// verify can resolve busy buckets exactly. What could not be done is said in the notes.

import { ConnectionError, InputError, SyncGuardError } from '../core/errors.js';
import type { HashVersion } from '../core/hashing.js';
import type { TableRef } from '../core/identifiers.js';
import type { Client } from '../db/connect.js';
import { nodeMigrations } from '../db/generated/migrations.js';
import { installPair } from '../db/install.js';
import { installedVersions } from '../db/installed.js';
import {
  heldRegistration,
  publishedTables,
  type RegisterOptions,
  type RegisterResult,
  registeredTables,
  subscribedPublications,
  tableExists,
} from '../db/register.js';
import { requireApplicable } from './apply-rights.js';
import { CheckedPair } from './pair.js';
import { ensureProbeRoute } from './probe-route.js';
import { planTable, registerTable, writeRegistration } from './register.js';

/** syncguard's logged tables: a FOR ALL TABLES publication replicates them. */
const LOGGED = ['migration', 'registration', 'node_state', 'probe'] as const;
/** Those a registration writes on the publisher. */
const REGISTRATION = ['registration', 'node_state'] as const;

export async function installOnPair(
  publisher: Client,
  subscriber: Client,
): Promise<Awaited<ReturnType<typeof installPair>> & { probeNotes: string[] }> {
  // the publisher's install writes syncguard.migration: refused while a FOR ALL TABLES subscription
  // that carries it could not apply that (only when the publisher has something to install)
  const r = await installPair(publisher, subscriber, async () => {
    const latest = nodeMigrations.at(-1)?.version ?? 0;
    if (((await installedVersions(publisher)).at(-1) ?? 0) < latest) await requireApplicable(subscriber, LOGGED, 'syncguard install');
  });
  return {
    ...r,
    probeNotes: await ensureProbeRoute(publisher, subscriber, await registeredTables(subscriber)),
  };
}

/**
 * Registers a table on both nodes. With `refresh`, a table registered before is registered again
 * with the columns it has now (after DDL applied to both sides): same scheme and, for integer
 * buckets, the same width unless given; new fingerprint; its catalogue starts over, so until both
 * sides are swept again it is not comparable (never diverged).
 */
export async function registerOnPair(
  publisher: Client,
  subscriber: Client,
  opts: RegisterOptions & { refresh?: boolean },
): Promise<RegisterResult> {
  await requireApplicable(subscriber, REGISTRATION, 'syncguard register');
  if (opts.refresh === true) return refreshRegistration(publisher, subscriber, opts);
  const r = await registerTable(publisher, subscriber, opts);
  const notes = await ensureProbeRoute(publisher, subscriber, [opts.table]);
  return { ...r, notes: [...r.notes, ...notes] };
}

async function refreshRegistration(
  publisher: Client,
  subscriber: Client,
  opts: RegisterOptions & { refresh?: boolean },
): Promise<RegisterResult> {
  const prev = await heldRegistration(publisher, opts.table);
  if (prev === undefined)
    throw new InputError(`table ${opts.table.text} is not registered on the publisher; register it without --refresh`);
  if (prev.role !== 'publisher')
    throw new InputError(
      `the database given as the publisher holds ${opts.table.text} registered as the ${prev.role}: are the publisher and subscriber DSNs swapped? Nothing was changed`,
    );
  // a table held at version 2 (the default) is planned as a new one would be: with version 1 when
  // version 2 would read a column truncated (core chooseHashVersion, checked in planTable)
  const held = prev.hashVersion;
  const hashVersion = opts.hashVersion ?? (held === 2 ? undefined : held);
  const { refresh: _refresh, ...again } = opts;
  // every check first (both nodes installed and distinct, the subscription, both tables, the
  // columns asked for): a refusal leaves the registration as it was; then one write per node,
  // each replacing the old registration in the same transaction
  const pair = await CheckedPair.open(publisher, subscriber);
  const { config, notes } = await planTable(
    pair,
    {
      ...again,
      ...(hashVersion !== undefined ? { hashVersion } : {}),
      scheme: opts.scheme ?? prev.scheme,
      ...(opts.bucketSize === undefined && prev.width !== null ? { bucketSize: prev.width } : {}),
    },
    true,
  );
  await writeRegistration(pair, config, true);
  const route = await ensureProbeRoute(publisher, subscriber, [opts.table]);
  return {
    config,
    alreadyRegistered: false,
    notes: [
      `registered again with the columns the table has now${opts.hashVersion !== undefined ? ` and hash version ${opts.hashVersion}` : ''}; both sides re-sweep it (run syncguard drain), and it is not comparable until they have`,
      ...notes,
      ...route,
    ],
  };
}

export interface RegisterAllOptions {
  /** Only this publication's tables (it must be one the subscriber subscribes to). */
  readonly publication?: string;
  /** Leave out tables matching any of these patterns (core/identifiers.ts TableRef.matches). */
  readonly exclude?: readonly string[];
  readonly bucketSize?: number;
  /** For tables registered now; tables registered before keep theirs. */
  readonly hashVersion?: HashVersion;
  readonly onTable?: (r: TableOutcome) => void;
}

export type TableOutcome =
  | { readonly table: string; readonly outcome: 'registered' | 'already registered'; readonly result: RegisterResult }
  | { readonly table: string; readonly outcome: 'refused'; readonly reason: string };

/**
 * Registers every table of the subscriber's publications (or one of them) that exists on both
 * sides, one at a time: a table that cannot be registered is refused with its reason and the
 * others go on. Then lets probes travel with all of them.
 */
export async function registerAll(
  publisher: Client,
  subscriber: Client,
  opts: RegisterAllOptions = {},
): Promise<{ outcomes: TableOutcome[]; probeNotes: string[] }> {
  const subscribed = await subscribedPublications(publisher, subscriber);
  if (opts.publication !== undefined && !subscribed.includes(opts.publication)) {
    throw new InputError(
      `publication ${JSON.stringify(opts.publication)} is not one the subscriber subscribes to; those are ${subscribed.join(', ')}`,
    );
  }
  await requireApplicable(subscriber, REGISTRATION, 'syncguard register');
  const pubs = opts.publication === undefined ? subscribed : [opts.publication];
  const published = await publishedTables(publisher, pubs);
  const tables: TableRef[] = published.filter((t) => !(opts.exclude ?? []).some((p) => t.matches(p)));
  const outcomes: TableOutcome[] = [];
  const registered: TableRef[] = [];
  const note = (o: TableOutcome) => {
    outcomes.push(o);
    opts.onTable?.(o);
  };
  for (const t of tables) {
    const name = t.text;
    if (!(await tableExists(subscriber, t))) {
      note({ table: name, outcome: 'refused', reason: 'it does not exist on the subscriber' });
      continue;
    }
    try {
      const result = await registerTable(publisher, subscriber, {
        table: t,
        ...(opts.bucketSize !== undefined ? { bucketSize: opts.bucketSize } : {}),
        ...(opts.hashVersion !== undefined ? { hashVersion: (await heldRegistration(publisher, t))?.hashVersion ?? opts.hashVersion } : {}),
      });
      registered.push(t);
      note({ table: name, outcome: result.alreadyRegistered ? 'already registered' : 'registered', result });
    } catch (err) {
      if (err instanceof ConnectionError) throw err;
      const pgCode = (err as { code?: unknown }).code;
      if (!(err instanceof SyncGuardError) && typeof pgCode !== 'string') throw err;
      note({ table: name, outcome: 'refused', reason: err instanceof Error ? err.message : String(err) });
    }
  }
  return { outcomes, probeNotes: await ensureProbeRoute(publisher, subscriber, registered) };
}
