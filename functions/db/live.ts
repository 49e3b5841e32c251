// The live fallback: a bucket that stays dirty (a hot key range, or a drain that cannot keep up)
// would never be compared from the catalogue. Once its oldest mark is older than a threshold it
// is hashed live from the table on both sides, in the same snapshots and behind the same barrier
// as the catalogue reads, so the comparison is as sound as the catalogue's.

import { type BucketValue, EMPTY, type Mismatch, sameValue, type TableComparison } from '../core/compare.js';
import { parseTableName } from '../core/identifiers.js';
import { readLive, type TableSnapshot } from './catalogue.js';
import type { Client } from './connect.js';

/** Buckets dirty on either side whose oldest mark is at least `afterMs` old. */
export function longDirty(p: TableSnapshot, s: TableSnapshot, afterMs: number): string[] {
  const age = (b: string) => Math.max(p.dirtyAgeMs.get(b) ?? 0, s.dirtyAgeMs.get(b) ?? 0);
  return [...new Set([...p.dirty, ...s.dirty])].filter((b) => age(b) >= afterMs);
}

/**
 * Compares `buckets` live (publisher first, inside the caller's snapshots). The result corrects
 * a catalogue comparison in which these buckets were skipped as dirty.
 */
export async function compareLive(pub: Client, sub: Client, table: string, buckets: readonly string[]): Promise<TableComparison> {
  const t = parseTableName(table);
  const pv = await readLive(pub, t, buckets);
  const sv = await readLive(sub, t, buckets);
  const mismatches: Mismatch[] = [];
  for (const b of buckets) {
    const a = pv.get(b) ?? EMPTY;
    const c = sv.get(b) ?? EMPTY;
    if (!sameValue(a, c)) mismatches.push({ bucket: b, publisher: a, subscriber: c });
  }
  return {
    bucketsCompared: buckets.length,
    bucketsSkipped: { dirty: -buckets.length, not_swept: 0, never_computed: 0 },
    mismatches,
    coveragePct: 100,
  };
}

/** Live values of some buckets (absent = empty). */
export async function liveValues(c: Client, table: string, buckets: readonly string[]): Promise<Map<string, BucketValue>> {
  const v = await readLive(c, parseTableName(table), buckets);
  return new Map(buckets.map((b) => [b, v.get(b) ?? EMPTY]));
}

/** Buckets with local writes that were not compared: dirty or uncomputed on a side, not hashed live. */
export function skippedLocalWrites(p: TableSnapshot, s: TableSnapshot, live: ReadonlySet<string>): string[] {
  return [...s.localWrites].filter((b) => !live.has(b) && (p.dirty.has(b) || s.dirty.has(b) || p.uncomputed.has(b) || s.uncomputed.has(b)));
}
