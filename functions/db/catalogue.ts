// Reading catalogues for verification (syncguard.verify_ranges / verify_buckets), parsed into
// the shapes the pure comparison core takes. Sums are numeric in SQL and bigint here: exact.

import type { BucketValue, DetailCatalogue } from '../core/compare.js';
import type { NodeHealth } from '../core/health.js';
import type { QualifiedName } from '../core/identifiers.js';
import { type Client, one } from './connect.js';

export interface RangeSum extends BucketValue {
  readonly buckets: number;
}

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
  readonly ranges: ReadonlyMap<string, RangeSum>;
}

interface RawSnapshot {
  table: string;
  fingerprint: string;
  swept: boolean;
  dirty: Record<string, number>;
  uncomputed: string[];
  localWrites: string[];
  ranges: Record<string, [string, string, string]>;
}

export async function readRanges(client: Client, width: bigint): Promise<TableSnapshot[]> {
  const { rows } = await client.query<{ s: RawSnapshot[] }>('SELECT syncguard.verify_ranges($1) AS s', [width.toString()]);
  return (rows[0]?.s ?? []).map((t) => ({
    table: t.table,
    fingerprint: t.fingerprint,
    swept: t.swept,
    dirty: new Set(Object.keys(t.dirty)),
    dirtyAgeMs: new Map(Object.entries(t.dirty).map(([b, ms]) => [b, Number(ms)])),
    uncomputed: new Set(t.uncomputed),
    localWrites: new Set(t.localWrites),
    ranges: new Map(Object.entries(t.ranges).map(([k, [n, r, s]]) => [k, { buckets: Number(n), rows: BigInt(r), sum: BigInt(s) }])),
  }));
}

interface RawDetail {
  fingerprint: string | null;
  swept: boolean;
  values: Record<string, [string, string, string]>;
  dirty: string[];
  uncomputed: string[];
}

/** Bucket detail as a SideCatalogue restricted to the given ranges (or buckets). */
export async function readDetail(
  client: Client,
  t: QualifiedName,
  width: bigint,
  where: { ranges: readonly string[] } | { buckets: readonly string[] },
): Promise<DetailCatalogue> {
  const ranges = 'ranges' in where ? where.ranges : null;
  const buckets = 'buckets' in where ? where.buckets : null;
  const { rows } = await client.query<{ d: RawDetail }>('SELECT syncguard.verify_buckets($1, $2, $3, $4, $5) AS d', [
    t.schema,
    t.table,
    width.toString(),
    ranges,
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
