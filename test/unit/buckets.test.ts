import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseScheme, hashBucket, intBucket, rangeBucket } from '../../functions/core/buckets.js';
import type { ColumnInfo } from '../../functions/core/table-info.js';

const col = (name: string, baseType: string, collation: string | null = null): ColumnInfo => ({
  name,
  type: baseType,
  baseType,
  collation,
  generated: false,
  notNull: true,
});

const int8 = fc.bigInt({ min: -(2n ** 63n), max: 2n ** 63n - 1n });

describe('intBucket', () => {
  it('puts every key in [bucket * width, (bucket + 1) * width)', () => {
    fc.assert(
      fc.property(int8, fc.bigInt({ min: 1n, max: 10n ** 12n }), (k, w) => {
        const b = intBucket(k, w);
        expect(b * w <= k).toBe(true);
        expect(k < (b + 1n) * w).toBe(true);
      }),
    );
  });

  it('floors negative keys like the SQL int_bucket()', () => {
    expect(intBucket(-1n, 10n)).toBe(-1n);
    expect(intBucket(-10n, 10n)).toBe(-1n);
    expect(intBucket(-11n, 10n)).toBe(-2n);
    expect(intBucket(9n, 10n)).toBe(0n);
  });
});

describe('rangeBucket', () => {
  it('equals the number of sorted bounds <= key (as width_bucket does)', () => {
    fc.assert(
      fc.property(fc.array(fc.integer(), { maxLength: 50 }), fc.integer(), (raw, k) => {
        const bounds = [...new Set(raw)].sort((a, b) => a - b);
        expect(rangeBucket(k, bounds, (a, b) => a - b)).toBe(bounds.filter((b) => b <= k).length);
      }),
    );
  });
});

describe('hashBucket', () => {
  it('is always in [0, n)', () => {
    fc.assert(
      fc.property(int8, fc.integer({ min: 1, max: 1_000_000 }), (h, n) => {
        const b = hashBucket(h, n);
        expect(b >= 0 && b < n).toBe(true);
      }),
    );
  });
});

describe('chooseScheme', () => {
  it('uses int buckets for one integer key, range for ordered types, hash for linguistic text', () => {
    expect(chooseScheme([col('id', 'bigint')])).toBe('int');
    expect(chooseScheme([col('id', 'uuid')])).toBe('range');
    expect(chooseScheme([col('a', 'integer'), col('b', 'timestamp with time zone')])).toBe('range');
    expect(chooseScheme([col('k', 'text', 'C')])).toBe('range');
    expect(chooseScheme([col('k', 'text', 'default')])).toBe('hash');
    expect(chooseScheme([col('k', 'text', 'en-US-x-icu'), col('n', 'integer')])).toBe('hash');
  });

  it('refuses keys it cannot bucket, and overrides that do not fit', () => {
    expect(() => chooseScheme([col('k', 'double precision')])).toThrow(/cannot bucket/);
    expect(() => chooseScheme([col('k', 'jsonb')])).toThrow(/cannot bucket/);
    expect(() => chooseScheme([col('k', 'uuid')], 'int')).toThrow(/single integer key/);
    expect(() => chooseScheme([col('k', 'text', 'default')], 'range')).toThrow(/C collation/);
    expect(chooseScheme([col('id', 'integer')], 'hash')).toBe('hash');
  });
});
