// Reading catalogues for verification (syncguard.verify_overview / verify_level / verify_buckets), parsed into
// the shapes the pure comparison core takes. Sums are numeric in SQL and bigint here: exact.

import type { BucketValue, DetailCatalogue } from '../core/compare.js';
import type { NodeHealth } from '../core/health.js';
import type { TableRef } from '../core/identifiers.js';
import type { LevelRange, RangeSum } from '../core/verify-levels.js';
import { type Client, one } from './connect.js';

export interface TableSnapshot {
  readonly table: string;
  readonly fingerprint: string;
  readonly swept: boolean;
  readonly dirty: ReadonlySet<string>;
  /** Age of the oldest mark of each dirty bucket, ms. */
  readonly dirtyAgeMs: ReadonlyMap<string, number>;
  readonly uncomputed: ReadonlySet<string>;
  /** Buckets with recorded local (non-replicated) writes. */
  readonly localWrites: ReadonlySet<string>;
  /** The sum of the clean buckets. */
  readonly totals: RangeSum;
  /** The lowest and highest bucket of the catalogue, dirty ones included; null when it has none. */
  readonly extent: { readonly lo: bigint; readonly hi: bigint } | null;
}

interface RawSnapshot {
  table: string;
  fingerprint: string;
  swept: boolean;
  dirty: Record<string, number>;
  uncomputed: string[];
  localWrites: string[];
  totals: [string, string, string];
  lo: string | null;
  hi: string | null;
}

/** Each table's overview (syncguard.verify_overview): totals and extent instead of every range. */
export async function readOverview(client: Client): Promise<TableSnapshot[]> {
  const { rows } = await client.query<{ s: RawSnapshot[] }>('SELECT syncguard.verify_overview() AS s');
  return (rows[0]?.s ?? []).map((t) => ({
    table: t.table,
    fingerprint: t.fingerprint,
    swept: t.swept,
    dirty: new Set(Object.keys(t.dirty)),
    dirtyAgeMs: new Map(Object.entries(t.dirty).map(([b, ms]) => [b, Number(ms)])),
    uncomputed: new Set(t.uncomputed),
    localWrites: new Set(t.localWrites),
    totals: { buckets: Number(t.totals[0]), rows: BigInt(t.totals[1]), sum: BigInt(t.totals[2]) },
    extent: t.lo === null || t.hi === null ? null : { lo: BigInt(t.lo), hi: BigInt(t.hi) },
  }));
}

/** One level of a table's ranges (syncguard.verify_level), within the parent ranges (null: all). */
export async function readLevel(
  client: Client,
  t: TableRef,
  width: bigint,
  parents: { readonly width: bigint; readonly ranges: readonly string[] } | null,
): Promise<Map<string, LevelRange>> {
  const { rows } = await client.query<{ l: Record<string, [number, string]> | null }>(
    'SELECT syncguard.verify_level($1, $2, $3, $4, $5) AS l',
    [t.schema, t.table, width.toString(), parents?.width.toString() ?? null, parents?.ranges ?? null],
  );
  return new Map(Object.entries(one(rows, 'syncguard.verify_level').l ?? {}).map(([r, [n, d]]) => [r, { buckets: n, digest: d }]));
}

interface RawDetail {
  fingerprint: string | null;
  swept: boolean;
  values: Record<string, [string, string, string]>;
  dirty: string[];
  uncomputed: string[];
}

/** The detail of some buckets of a table, as a SideCatalogue. */
export async function readDetail(client: Client, t: TableRef, buckets: readonly string[]): Promise<DetailCatalogue> {
  const { rows } = await client.query<{ d: RawDetail }>('SELECT syncguard.verify_buckets($1, $2, 1, NULL, $3) AS d', [
    t.schema,
    t.table,
    buckets,
  ]);
  const d = one(rows, 'syncguard.verify_buckets').d;
  const values = new Map<string, BucketValue | null>(
    Object.entries(d.values).map(([k, [r, s]]) => [k, { rows: BigInt(r), sum: BigInt(s) }]),
  );
  for (const u of d.uncomputed) values.set(u, null);
  return {
    fingerprint: d.fingerprint ?? '',
    swept: d.swept,
    buckets: values,
    dirty: new Set(d.dirty),
    generations: new Map(Object.entries(d.values).map(([k, v]) => [k, v[2]])),
  };
}

/** Every registration's health on this node (syncguard.health()). */
export async function readHealth(client: Client): Promise<NodeHealth[]> {
  const { rows } = await client.query<{ h: NodeHealth[] }>('SELECT syncguard.health() AS h');
  return one(rows, 'syncguard.health').h;
}
