import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { bucketValue, rowHash } from '../../functions/core/hashing.js';
import { checkServerVersion } from '../../functions/db/install.js';

describe('rowHash (golden vectors; the same texts are checked inside PostgreSQL in test/integration/golden.test.ts)', () => {
  it('is the first 8 bytes of sha256 as a signed 64-bit integer', () => {
    expect(rowHash('')).toBe(-2039914840885289964n); // sha256('') = e3b0c442 98fc1c14 ...
    expect(rowHash('(1,abc)')).toBe(rowHash('(1,abc)'));
    expect(rowHash(String.raw`({},"\\x",f,-Infinity,2,{},"a ""quoted"", (text)",0.000,ünï,"1999-12-31 00:00:00+00")`)).toBe(
      -8414586720053408820n,
    );
  });

  it('changes with any single-character change (no collisions in practice)', () => {
    fc.assert(
      fc.property(fc.string({ minLength: 1 }), fc.nat(), fc.string({ minLength: 1, maxLength: 1 }), (s, i, ch) => {
        const pos = i % s.length;
        const t = s.slice(0, pos) + ch + s.slice(pos + 1);
        fc.pre(t !== s);
        expect(rowHash(t)).not.toBe(rowHash(s));
      }),
    );
  });
});

describe('bucketValue', () => {
  it('is order-independent and additive across a split (so ranges of buckets can be compared)', () => {
    fc.assert(
      fc.property(fc.array(fc.string()), fc.nat(), (rows, cut) => {
        const k = rows.length === 0 ? 0 : cut % rows.length;
        const whole = bucketValue(rows);
        const a = bucketValue(rows.slice(0, k));
        const b = bucketValue(rows.slice(k));
        expect(whole).toEqual({ rows: a.rows + b.rows, sum: a.sum + b.sum });
        expect(bucketValue([...rows].reverse())).toEqual(whole);
      }),
    );
  });

  it('tells duplicated rows apart (unlike XOR, where a pair cancels out)', () => {
    expect(bucketValue(['x', 'x'])).not.toEqual(bucketValue([]));
    expect(bucketValue(['x', 'x', 'y'])).not.toEqual(bucketValue(['y']));
  });
});

describe('server version', () => {
  it('refuses PostgreSQL below 13 with the detected version', () => {
    expect(() => checkServerVersion(120015, 'publisher')).toThrow(
      /requires PostgreSQL 13 or later on the publisher \(detected server_version_num = 120015\)/,
    );
    expect(checkServerVersion(130000, 'publisher')).toBe(130000);
  });
});

describe('generated migrations module', () => {
  it('is up to date with sql/', () => {
    expect(() => execFileSync(process.execPath, ['scripts/build-sql.mjs', '--check'], { stdio: 'pipe' })).not.toThrow();
  });
});
