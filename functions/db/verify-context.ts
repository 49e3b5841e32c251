// What a verification reads besides the catalogues: which tables are registered on either side
// and what keeps each from being compared (health), the parity checks, and the local writes.

import { droppedOnSubscriberOnly, tableProblems } from '../core/health.js';
import { byText, type TableRef, tableFromText } from '../core/identifiers.js';
import { type Finding, type ParityInfo, parityFindings } from '../core/parity.js';
import type { LocalWrite } from '../core/report.js';
import { subscriptionsOf } from './barrier.js';
import { readHealth } from './catalogue.js';
import { type Client, one } from './connect.js';

/**
 * The tables registered on either side (or the one asked for), sorted by name, and what keeps each
 * from being compared. The nodes report each table by its name (TableRef.text), read here once.
 */
export async function registrationProblems(
  pub: Client,
  sub: Client,
  only: TableRef | undefined,
): Promise<{ tables: TableRef[]; problems: Map<TableRef, string[]>; schemaDrift: Map<TableRef, string[]> }> {
  const health = async (c: Client) =>
    new Map((await readHealth(c)).map((h) => [tableFromText(h.table), h] as const).filter(([t]) => only === undefined || t === only));
  const pubHealth = await health(pub);
  const subHealth = await health(sub);
  const tables = [...new Set([...pubHealth.keys(), ...subHealth.keys()])].sort(byText);
  const { unsubscribed } = await subscriptionsOf(sub, tables);
  const problems = new Map(
    tables.map((t) => [
      t,
      [
        ...tableProblems(t.text, pubHealth.get(t), subHealth.get(t)),
        ...(unsubscribed.includes(t) && subHealth.has(t) ? ['no subscription of the subscriber database replicates it'] : []),
      ],
    ]),
  );
  const schemaDrift = new Map(
    tables.map((t) => [t, droppedOnSubscriberOnly(pubHealth.get(t), subHealth.get(t))] as const).filter(([, cols]) => cols.length > 0),
  );
  return { tables, problems, schemaDrift };
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

export async function localWrites(sub: Client, table: TableRef | undefined): Promise<{ count: number; groups: LocalWrite[] }> {
  const { rows } = await sub.query<{ w: { count: number; groups: LocalWrite[] } }>('SELECT syncguard.local_writes(100) AS w');
  const w = one(rows, 'syncguard.local_writes').w;
  const groups = w.groups
    .filter((g) => table === undefined || g.table === table.text)
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
