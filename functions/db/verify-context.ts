// What a verification reads besides the catalogues: which tables are registered on either side
// and what keeps each from being compared (health), the parity checks, and the local writes.

import { droppedOnSubscriberOnly, tableProblems } from '../core/health.js';
import { type QualifiedName, tableFromText, tableText } from '../core/identifiers.js';
import { type Finding, type ParityInfo, parityFindings } from '../core/parity.js';
import type { LocalWrite } from '../core/report.js';
import { subscriptionsOf } from './barrier.js';
import { readHealth } from './catalogue.js';
import { type Client, one } from './connect.js';

/** The tables registered on either side (or the one asked for), and what keeps each from being compared. */
export async function registrationProblems(
  pub: Client,
  sub: Client,
  only: QualifiedName | undefined,
): Promise<{ tableNames: string[]; problems: Map<string, string[]>; schemaDrift: Map<string, string[]> }> {
  const wanted = (t: string) => only === undefined || t === tableText(only);
  const pubHealth = new Map((await readHealth(pub)).filter((h) => wanted(h.table)).map((h) => [h.table, h]));
  const subHealth = new Map((await readHealth(sub)).filter((h) => wanted(h.table)).map((h) => [h.table, h]));
  const tableNames = [...new Set([...pubHealth.keys(), ...subHealth.keys()])].sort();
  const { unsubscribed } = await subscriptionsOf(sub, tableNames.map(tableFromText));
  const problems = new Map(
    tableNames.map((t) => [
      t,
      [
        ...tableProblems(t, pubHealth.get(t), subHealth.get(t)),
        ...(unsubscribed.includes(t) && subHealth.has(t) ? ['no subscription of the subscriber database replicates it'] : []),
      ],
    ]),
  );
  const schemaDrift = new Map(
    tableNames.map((t) => [t, droppedOnSubscriberOnly(pubHealth.get(t), subHealth.get(t))] as const).filter(([, cols]) => cols.length > 0),
  );
  return { tableNames, problems, schemaDrift };
}

/** Parity findings; best effort: a failure (a table locked by DDL, say) becomes a finding. */
export async function parityOf(pub: Client, sub: Client): Promise<Finding[]> {
  const read = async (c: Client) => (await c.query<{ p: ParityInfo[] }>('SELECT syncguard.parity_info() AS p')).rows[0]?.p ?? [];
  try {
    return parityFindings(await read(pub), await read(sub));
  } catch (err) {
    return [{ table: '*', level: 'warning', message: `parity checks could not run: ${err instanceof Error ? err.message : String(err)}` }];
  }
}

export async function localWrites(sub: Client, table: QualifiedName | undefined): Promise<{ count: number; groups: LocalWrite[] }> {
  const { rows } = await sub.query<{ w: { count: number; groups: LocalWrite[] } }>('SELECT syncguard.local_writes(100) AS w');
  const w = one(rows, 'syncguard.local_writes').w;
  const groups = w.groups
    .filter((g) => table === undefined || g.table === tableText(table))
    .map((g) => ({ ...g, writes: Number(g.writes), buckets: Number(g.buckets) }));
  return { count: table === undefined ? Number(w.count) : groups.reduce((a, g) => a + g.writes, 0), groups };
}

/**
 * The roles this node's registrations were made for ('publisher', 'subscriber'), distinct; read
 * through status(), which drain and verify roles may call (they may not read the registrations).
 */
export async function registrationRoles(client: Client): Promise<string[]> {
  const { rows } = await client.query<{ r: string }>(
    "SELECT DISTINCT t->>'role' AS r FROM jsonb_array_elements(syncguard.status()->'tables') t ORDER BY 1",
  );
  return rows.map((x) => x.r);
}
