// Bucket schemes and the pure bucket assignment rules. The SQL in sql/node/0002_hashing.sql is
// what runs; these mirrors define the rules in one readable place and are property-tested.
//   int:   a single integer key; bucket = floor(key / width)
//   range: sampled lower bounds, copied verbatim to the subscriber; bucket = number of bounds <= key
//   hash:  row_hash(key text) mod bucket count; for text keys under a non-C collation, whose order
//          differs between collation versions (docs/hashing.md)

import { IncompatibleError, InputError } from './errors.js';
import type { ColumnInfo } from './table-info.js';

export type BucketScheme = 'int' | 'range' | 'hash';
export const BUCKET_SCHEMES: readonly BucketScheme[] = ['int', 'range', 'hash'];

const INTEGER_TYPES = new Set(['smallint', 'integer', 'bigint']);
/** Types whose order is the same on every server and version. */
const ORDERED_TYPES = new Set([
  ...INTEGER_TYPES,
  'numeric',
  'uuid',
  'date',
  'timestamp without time zone',
  'timestamp with time zone',
  'bytea',
  'boolean',
]);
const TEXT_TYPES = new Set(['text', 'character varying', 'character', 'name']);
const BYTE_ORDER_COLLATIONS = new Set(['C', 'POSIX']);
/** Types whose output text is exact and settings-independent enough to hash (floats are not: 0 = -0). */
const HASHABLE_TYPES = new Set([...ORDERED_TYPES, ...TEXT_TYPES, 'inet', 'cidr', 'macaddr', 'macaddr8', 'time without time zone']);

const SUPPORTED = `${[...ORDERED_TYPES, ...TEXT_TYPES, 'inet', 'cidr', 'macaddr', 'macaddr8', 'time without time zone'].join(', ')}`;

const rangeSafe = (c: ColumnInfo): boolean =>
  ORDERED_TYPES.has(c.baseType) || (TEXT_TYPES.has(c.baseType) && c.collation !== null && BYTE_ORDER_COLLATIONS.has(c.collation));

/** The scheme for a key: int for one integer column, range where order is stable, else hash. */
export function chooseScheme(key: readonly ColumnInfo[], requested?: BucketScheme): BucketScheme {
  if (key.length === 0) {
    // no key: buckets by a hash of the whole row
    if (requested !== undefined && requested !== 'hash')
      throw new InputError(`a table without a key is bucketed by row content (hash); ${requested} needs a key`);
    return 'hash';
  }
  for (const c of key) {
    if (!HASHABLE_TYPES.has(c.baseType)) {
      throw new IncompatibleError(
        `key column ${c.name} has type ${c.type}, which syncguard cannot bucket; supported key types: ${SUPPORTED}`,
      );
    }
  }
  const single = key.length === 1 ? key[0] : undefined;
  const canInt = single !== undefined && INTEGER_TYPES.has(single.baseType);
  const canRange = key.every(rangeSafe);
  if (requested === undefined) return canInt ? 'int' : canRange ? 'range' : 'hash';
  if (requested === 'int' && !canInt) {
    throw new InputError(`bucket scheme int needs a single integer key; this key is (${key.map((c) => `${c.name} ${c.type}`).join(', ')})`);
  }
  if (requested === 'range' && !canRange) {
    throw new InputError(
      'bucket scheme range needs key columns whose order is the same everywhere; text keys qualify only under the C collation. Use --bucket-scheme hash',
    );
  }
  return requested;
}

/** floor(key / width) for integer keys (BigInt keeps the full int8 range exact). */
export function intBucket(key: bigint, width: bigint): bigint {
  if (width < 1n) throw new InputError(`bucket width must be at least 1, got ${width}`);
  const q = key / width;
  return key < 0n && q * width !== key ? q - 1n : q;
}

/** The range bucket of a key: how many sorted lower bounds are <= key (as width_bucket does). */
export function rangeBucket<T>(key: T, bounds: readonly T[], compare: (a: T, b: T) => number): number {
  let lo = 0;
  let hi = bounds.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (compare(bounds[mid] as T, key) <= 0) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** The hash bucket for a key's row hash (a signed 64-bit value). */
export function hashBucket(rowHash: bigint, bucketCount: number): number {
  const n = BigInt(bucketCount);
  return Number(((rowHash % n) + n) % n);
}
