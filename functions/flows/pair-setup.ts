// Installing on a pair and registering a table, as the CLI and tests do them: the schema or the
// registration, then the probe's route for the registered tables (flows/probe-route.ts), so that
// verify can resolve busy buckets exactly. What could not be done is said in the notes.

import { tableText } from '../core/identifiers.js';
import type { Client } from '../db/connect.js';
import { installPair } from '../db/install.js';
import { type RegisterOptions, type RegisterResult, registerTable } from '../db/register.js';
import { ensureProbeRoute } from './probe-route.js';

export async function installOnPair(
  publisher: Client,
  subscriber: Client,
): Promise<Awaited<ReturnType<typeof installPair>> & { probeNotes: string[] }> {
  const r = await installPair(publisher, subscriber);
  const { rows } = await subscriber.query<{ t: string }>(
    "SELECT format('%s.%s', schema_name, table_name) AS t FROM syncguard.registrations ORDER BY 1",
  );
  return {
    ...r,
    probeNotes: await ensureProbeRoute(
      publisher,
      subscriber,
      rows.map((x) => x.t),
    ),
  };
}

export async function registerOnPair(publisher: Client, subscriber: Client, opts: RegisterOptions): Promise<RegisterResult> {
  const r = await registerTable(publisher, subscriber, opts);
  const notes = await ensureProbeRoute(publisher, subscriber, [tableText(opts.table)]);
  return { ...r, notes: [...r.notes, ...notes] };
}
