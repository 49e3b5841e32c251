// Test helpers that drive syncguard on a pair the way the CLI does, plus catalogue readers.

import type { Pair } from '../../dev/pair.js';
import { parseTableName, TableRef } from '../../functions/core/identifiers.js';
import { type Client, connect } from '../../functions/db/connect.js';
import type { RegisterOptions, RegisterResult } from '../../functions/db/register.js';
import { installOnPair, registerOnPair } from '../../functions/flows/pair-setup.js';
import { ensureProbeRoute } from '../../functions/flows/probe-route.js';

export interface BucketRow {
  bucket: string;
  row_count: string;
  hash_sum: string;
}

/** Owner connections to both sides with the schema installed. */
export async function installed(pair: Pair): Promise<{ pub: Client; sub: Client }> {
  const pub = await connect(pair.publisherDsn, 'publisher');
  const sub = await connect(pair.subscriberDsn, 'subscriber');
  await installOnPair(pub, sub);
  await enableProbes(pair);
  return { pub, sub };
}

/**
 * The pair's publication and subscription belong to the superuser, so the owner role's install
 * only prints what to run for probes (flows/probe-route.ts); this runs it, as the superuser would.
 */
export async function enableProbes(pair: Pair): Promise<string[]> {
  const { rows } = await pair.sub.query<{ schema: string; table: string }>(
    `SELECT n.nspname AS schema, c.relname AS table FROM pg_subscription_rel r JOIN pg_subscription s ON s.oid = r.srsubid
       JOIN pg_class c ON c.oid = r.srrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE s.subname = $1 AND n.nspname <> 'syncguard'`,
    [pair.name],
  );
  const notes = await ensureProbeRoute(
    pair.pub,
    pair.sub,
    rows.map((r) => TableRef.of(r.schema, r.table)),
  );
  await pair.waitForSync();
  return notes;
}

export async function register(
  pub: Client,
  sub: Client,
  table: string,
  opts: Omit<RegisterOptions, 'table'> = {},
): Promise<RegisterResult> {
  return registerOnPair(pub, sub, { table: parseTableName(table), ...opts });
}

/**
 * Registers public.<table> (id int PRIMARY KEY, v text) on one node only, as a publisher table
 * (integer buckets of 100): a node that publishes a table onward, outside any pair's registration.
 */
export async function registerPublisherOnly(c: Client, table: string): Promise<void> {
  const config = {
    schema: 'public',
    table,
    keyColumns: ['id'],
    keyTypes: ['integer'],
    scheme: 'int',
    bucketWidth: 100,
    columns: ['id', 'v'],
    columnTypes: ['integer', 'text'],
    hashVersion: 1,
    fingerprint: `sg1-${table}`,
  };
  await c.query("SELECT syncguard.register_table($1, 'publisher')", [JSON.stringify(config)]);
}

export async function regId(c: Client, table: string): Promise<number> {
  const t = parseTableName(table);
  const { rows } = await c.query<{ reg_id: number }>(
    'SELECT reg_id FROM syncguard.registrations WHERE schema_name = $1 AND table_name = $2',
    [t.schema, t.table],
  );
  if (rows[0] === undefined) throw new Error(`${table} is not registered`);
  return rows[0].reg_id;
}

/**
 * Finishes the current sweep of every registration and drains every dirty mark (registrations with
 * a recorded fault are left alone, as the drain leaves them).
 */
export async function settle(c: Client): Promise<void> {
  for (;;) {
    const r = await c.query<{ s: unknown }>('SELECT syncguard.sweep_batch(500) AS s');
    if (r.rows[0]?.s === null) break;
  }
  for (;;) {
    const r = await c.query<{ b: { buckets: number } }>('SELECT syncguard.drain_batch(1000) AS b');
    if (r.rows[0]?.b.buckets === 0) {
      // marks of registrations with a recorded fault stay until the table is registered again
      const left = await c.query<{ n: string }>(
        'SELECT count(*) AS n FROM syncguard.dirty WHERE reg_id IN (SELECT syncguard._healthy_regs())',
      );
      if (Number(left.rows[0]?.n) === 0) return;
    }
  }
}

/** The stored catalogue of a table, non-empty buckets only, by bucket. */
export async function catalogue(c: Client, table: string): Promise<Map<string, string>> {
  const id = await regId(c, table);
  const { rows } = await c.query<BucketRow>(
    'SELECT bucket::text, row_count::text, hash_sum::text FROM syncguard.bucket b WHERE reg_id = $1 AND row_count > 0 ORDER BY b.bucket',
    [id],
  );
  return new Map(rows.map((r) => [r.bucket, `${r.row_count}:${r.hash_sum}`]));
}

/** A from-scratch recompute of a table's buckets, by bucket. */
export async function fromScratch(c: Client, table: string): Promise<Map<string, string>> {
  const id = await regId(c, table);
  const { rows } = await c.query<BucketRow>(
    'SELECT bucket::text, row_count::text, hash_sum::text FROM syncguard.compute_all($1) ORDER BY bucket',
    [id],
  );
  return new Map(rows.map((r) => [r.bucket, `${r.row_count}:${r.hash_sum}`]));
}

/** Buckets whose values differ between two catalogues (absent = empty). */
export function differingBuckets(a: Map<string, string>, b: Map<string, string>): string[] {
  const keys = new Set([...a.keys(), ...b.keys()]);
  return [...keys].filter((k) => (a.get(k) ?? '0:0') !== (b.get(k) ?? '0:0')).sort((x, y) => Number(x) - Number(y));
}

export async function dirtyBuckets(c: Client, table: string): Promise<string[]> {
  const id = await regId(c, table);
  const { rows } = await c.query<{ bucket: string }>('SELECT DISTINCT bucket::text FROM syncguard.dirty WHERE reg_id = $1 ORDER BY 1', [
    id,
  ]);
  return rows.map((r) => r.bucket).sort((x, y) => Number(x) - Number(y));
}
