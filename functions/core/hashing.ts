// The canonical encoding (docs/hashing.md). The SQL in sql/node/0002_hashing.sql computes it; this
// module holds its version and a reference implementation of the hash step for golden tests.

import { createHash } from 'node:crypto';

/** Bumped whenever the canonical text or the hash changes; part of every fingerprint. */
export const HASH_VERSION = 1;

/** Row hash: the first 8 bytes of sha256 over the UTF-8 canonical text, as a signed 64-bit integer. */
export function rowHash(canonicalText: string): bigint {
  const digest = createHash('sha256').update(canonicalText, 'utf8').digest();
  return digest.readBigInt64BE(0);
}

/** A bucket's value: row count and the exact (unbounded) sum of its row hashes. */
export interface BucketValue {
  readonly rows: bigint;
  readonly sum: bigint;
}

export function bucketValue(canonicalTexts: readonly string[]): BucketValue {
  let sum = 0n;
  for (const t of canonicalTexts) sum += rowHash(t);
  return { rows: BigInt(canonicalTexts.length), sum };
}
