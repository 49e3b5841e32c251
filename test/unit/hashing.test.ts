import { execFileSync } from 'node:child_process';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  bucketValue,
  DEFAULT_HASH_VERSION,
  numericSend,
  parseHashVersion,
  recordBytes,
  rowHash,
  rowHashV2,
  send,
} from '../../functions/core/hashing.js';
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

describe('version 2 reference encoding (the same rows are hashed inside PostgreSQL in test/integration/golden.test.ts)', () => {
  it('lays out a record as record_send() does: count, then OID, length (-1 for NULL) and bytes per column', () => {
    expect(recordBytes([send.int4(1), send.text('a'), send.null(23)]).toString('hex')).toBe(
      '00000003' + '00000017' + '00000004' + '00000001' + '00000019' + '00000001' + '61' + '00000017' + 'ffffffff',
    );
  });

  it('encodes numerics as numeric_send() does, keeping the display scale', () => {
    // 1.50: ndigits 2, weight 0, sign +, dscale 2, digits 1 5000
    expect(numericSend('1.50').toString('hex')).toBe('0002000000000002' + '0001' + '1388');
    expect(numericSend('1.5').toString('hex')).toBe('0002000000000001' + '0001' + '1388');
    expect(numericSend('-0.000').toString('hex')).toBe('0000000000000003');
    expect(numericSend('12345678').toString('hex')).toBe('0002000100000000' + '04d2' + '162e');
    expect(numericSend('0.00012').toString('hex')).toBe('0002ffff00000005' + '0001' + '07d0');
    expect(numericSend('NaN').toString('hex')).toBe('00000000c0000000');
  });

  it('makes every NaN the canonical one, and tells -0 from 0 as the stored value does', () => {
    expect(send.float8(Number.NaN).bytes?.toString('hex')).toBe('7ff8000000000000');
    expect(send.float8(-0).bytes?.toString('hex')).not.toBe(send.float8(0).bytes?.toString('hex'));
  });

  it('changes with any single field, NULL and empty included', () => {
    fc.assert(
      fc.property(
        fc.array(fc.option(fc.string(), { nil: null }), { minLength: 1 }),
        fc.nat(),
        fc.option(fc.string(), { nil: null }),
        (vals, i, v) => {
          const pos = i % vals.length;
          fc.pre(vals[pos] !== v);
          const fields = (xs: readonly (string | null)[]) => xs.map((x) => (x === null ? send.null(25) : send.text(x)));
          const changed = [...vals];
          changed[pos] = v;
          expect(rowHashV2(fields(changed))).not.toBe(rowHashV2(fields(vals)));
        },
      ),
    );
  });

  it('names its versions', () => {
    expect(DEFAULT_HASH_VERSION).toBe(2);
    expect(parseHashVersion('1')).toBe(1);
    expect(() => parseHashVersion('3')).toThrow(/hash version must be one of 1, 2, got 3/);
  });
});

describe('bucketValue', () => {
  it('is order-independent and additive across a split (so ranges of buckets can be compared)', () => {
    fc.assert(
      fc.property(fc.array(fc.string()), fc.nat(), (rows, cut) => {
        const k = rows.length === 0 ? 0 : cut % rows.length;
        const hashes = rows.map(rowHash);
        const whole = bucketValue(hashes);
        const a = bucketValue(hashes.slice(0, k));
        const b = bucketValue(hashes.slice(k));
        expect(whole).toEqual({ rows: a.rows + b.rows, sum: a.sum + b.sum });
        expect(bucketValue([...hashes].reverse())).toEqual(whole);
      }),
    );
  });

  it('tells duplicated rows apart (unlike XOR, where a pair cancels out)', () => {
    const [x, y] = [rowHash('x'), rowHash('y')];
    expect(bucketValue([x, x])).not.toEqual(bucketValue([]));
    expect(bucketValue([x, x, y])).not.toEqual(bucketValue([y]));
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
