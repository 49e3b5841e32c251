// What to do when a locked inspection or repair call was cancelled at the hold limit (pure). The
// reason depends on how the table's buckets find their rows: a hash bucket's rows are found by
// reading the whole table (no index gives a row's bucket), an int or range bucket's through the
// key index; there the bucket itself holds more rows than can be read and hashed in time, and
// smaller buckets are the fix. The limit is issue 9's promise to writers, so no flag raises it.

export interface HoldContext {
  /** The registration's bucket scheme (hash, int, range). */
  readonly scheme: string;
  readonly table: string;
  readonly bucket: string;
  /** The bucket's rows in the publisher's catalogue, when known. */
  readonly rows?: bigint | number | null;
}

const split = (c: HoldContext) =>
  `split it into smaller buckets: syncguard register --table ${c.table} --refresh --bucket-size <fewer rows>${c.rows == null ? '' : ` (well below ${c.rows})`}; the limit is fixed, no flag raises it`;

/** The hint after an inspection probe of one bucket was cancelled (text starting with " (" , or ""). */
export function inspectHoldHint(c: HoldContext): string {
  if (c.scheme === 'hash') return ' (a hash-bucketed table is read whole; register it with a range scheme or smaller buckets)';
  const held = c.rows == null ? `bucket ${c.bucket} holds too many rows` : `bucket ${c.bucket} holds ${c.rows} rows`;
  return ` (${held}, every one read and hashed under the lock; ${split(c)})`;
}

/** The hint after a repair request of one change was cancelled. */
export function singleChangeHoldHint(c: HoldContext): string {
  if (c.scheme === 'hash')
    return ' (even one change at a time: its row is found by reading the whole table under the lock, as for any hash-bucketed table; register it with a range scheme)';
  return ` (even one change at a time: its row is found among bucket ${c.bucket}'s rows, all read and hashed under the lock; ${split(c)})`;
}
