import { describe, expect, it } from 'vitest';
import { inspectHoldHint, singleChangeHoldHint } from '../../functions/core/hold-hints.js';

describe('hold-limit hints by bucket scheme', () => {
  it('a hash bucket: the table is read whole; an int or range bucket: it holds too many rows, split it', () => {
    expect(inspectHoldHint({ scheme: 'hash', table: 'public.t', bucket: '3' })).toMatch(/hash-bucketed table is read whole/);
    for (const scheme of ['int', 'range']) {
      const hint = inspectHoldHint({ scheme, table: 'public.t', bucket: '3', rows: 90000n });
      expect(hint).toBe(
        ' (bucket 3 holds 90000 rows, every one read and hashed under the lock; split it into smaller buckets: syncguard register --table public.t --refresh --bucket-size <fewer rows> (well below 90000); the limit is fixed, no flag raises it)',
      );
      expect(singleChangeHoldHint({ scheme, table: 'public.t', bucket: '3' })).not.toMatch(/read whole|whole table/);
    }
    expect(inspectHoldHint({ scheme: 'range', table: 'public.t', bucket: '3', rows: null })).toMatch(/^ \(bucket 3 holds too many rows,/);
  });
});
