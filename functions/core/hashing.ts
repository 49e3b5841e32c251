// The canonical encodings (docs/hashing.md). The SQL in sql/node/0002_hashing.sql (version 1) and
// 0020_hash_v2.sql (version 2) computes them; this module holds the versions and a reference
// implementation of each for the golden tests: version 1's hash step over the row text, and
// version 2's record bytes for the types a test needs, built from the specification alone.

import { createHash } from 'node:crypto';
import { InputError } from './errors.js';

/** Every version a registration may carry; part of every fingerprint. */
export const HASH_VERSIONS = [1, 2] as const;
export type HashVersion = (typeof HASH_VERSIONS)[number];
/** What new registrations use. */
export const DEFAULT_HASH_VERSION: HashVersion = 2;

export function parseHashVersion(v: string | number): HashVersion {
  const n = Number(v);
  const found = HASH_VERSIONS.find((x) => x === n);
  if (found === undefined) throw new InputError(`hash version must be one of ${HASH_VERSIONS.join(', ')}, got ${v}`);
  return found;
}

const first8 = (digest: Buffer): bigint => digest.readBigInt64BE(0);

/** Version 1 row hash: the first 8 bytes of sha256 over the UTF-8 canonical text, as a signed 64-bit integer. */
export function rowHash(canonicalText: string): bigint {
  return first8(createHash('sha256').update(canonicalText, 'utf8').digest());
}

/** One column of a version 2 record: its built-in type OID and its send() bytes, or null for NULL. */
export interface Field {
  readonly oid: number;
  readonly bytes: Buffer | null;
}

/** record_send(): int32 column count, then per column int32 type OID, int32 length (-1: NULL), bytes. */
export function recordBytes(fields: readonly Field[]): Buffer {
  const parts: Buffer[] = [int32(fields.length)];
  for (const f of fields) {
    parts.push(int32(f.oid), int32(f.bytes === null ? -1 : f.bytes.length));
    if (f.bytes !== null) parts.push(f.bytes);
  }
  return Buffer.concat(parts);
}

/** Version 2 row hash: the first 8 bytes of sha256 over the record bytes. */
export function rowHashV2(fields: readonly Field[]): bigint {
  return first8(createHash('sha256').update(recordBytes(fields)).digest());
}

function int32(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32BE(n);
  return b;
}

const MICROS_2000 = Date.UTC(2000, 0, 1) * 1000;

/** The send() output of the types the golden vectors use, from PostgreSQL's documented formats. */
export const send = {
  bool: (v: boolean): Field => ({ oid: 16, bytes: Buffer.from([v ? 1 : 0]) }),
  bytea: (hex: string): Field => ({ oid: 17, bytes: Buffer.from(hex, 'hex') }),
  int4: (v: number): Field => ({ oid: 23, bytes: int32(v) }),
  int8: (v: bigint): Field => {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(v);
    return { oid: 20, bytes: b };
  },
  /** text, and the output-function text of every type that is not binary-safe. */
  text: (v: string): Field => ({ oid: 25, bytes: Buffer.from(v, 'utf8') }),
  /** NaN is the canonical quiet NaN (0x7ff8000000000000), whatever bits the row held. */
  float8: (v: number): Field => {
    const b = Buffer.alloc(8);
    if (Number.isNaN(v)) b.writeBigUInt64BE(0x7ff8000000000000n);
    else b.writeDoubleBE(v);
    return { oid: 701, bytes: b };
  },
  /** Microseconds since 2000-01-01 00:00 UTC, int64; `iso` must be exact to the millisecond. */
  timestamptz: (iso: string, extraMicros = 0): Field => {
    const b = Buffer.alloc(8);
    b.writeBigInt64BE(BigInt(Date.parse(iso)) * 1000n - BigInt(MICROS_2000) + BigInt(extraMicros));
    return { oid: 1184, bytes: b };
  },
  uuid: (v: string): Field => ({ oid: 2950, bytes: Buffer.from(v.replaceAll('-', ''), 'hex') }),
  /** Version byte 1, then the text jsonb's output function gives. */
  jsonb: (text: string): Field => ({ oid: 3802, bytes: Buffer.concat([Buffer.from([1]), Buffer.from(text, 'utf8')]) }),
  numeric: (decimal: string): Field => ({ oid: 1700, bytes: numericSend(decimal) }),
  null: (oid: number): Field => ({ oid, bytes: null }),
};

/**
 * numeric_send() of a finite decimal or NaN: int16 ndigits, int16 weight, int16 sign (0x0000
 * positive, 0x4000 negative, 0xC000 NaN), int16 display scale, then the base-10000 digits with
 * leading and trailing zero digits stripped (zero has none and a positive sign).
 */
export function numericSend(decimal: string): Buffer {
  const head = (ndigits: number, weight: number, sign: number, dscale: number) => {
    const b = Buffer.alloc(8);
    b.writeInt16BE(ndigits, 0);
    b.writeInt16BE(weight, 2);
    b.writeUInt16BE(sign, 4);
    b.writeInt16BE(dscale, 6);
    return b;
  };
  if (decimal === 'NaN') return head(0, 0, 0xc000, 0);
  const m = /^(-?)(\d+)(?:\.(\d*))?$/.exec(decimal);
  if (m === null) throw new InputError(`not a plain decimal: ${decimal}`);
  const [, minus, whole = '', frac = ''] = m;
  const dscale = frac.length;
  // group digits by 4 around the decimal point
  const intPart = whole.replace(/^0+/, '');
  const intGroups: number[] = [];
  for (let end = intPart.length; end > 0; end -= 4) intGroups.unshift(Number(intPart.slice(Math.max(0, end - 4), end)));
  const fracGroups: number[] = [];
  for (let i = 0; i < frac.length; i += 4) fracGroups.push(Number(frac.slice(i, i + 4).padEnd(4, '0')));
  let digits = [...intGroups, ...fracGroups];
  let weight = intGroups.length - 1;
  while (digits.length > 0 && digits[0] === 0) {
    digits = digits.slice(1);
    weight--;
  }
  while (digits.length > 0 && digits[digits.length - 1] === 0) digits = digits.slice(0, -1);
  if (digits.length === 0) return head(0, 0, 0, dscale);
  const body = Buffer.alloc(digits.length * 2);
  for (const [i, d] of digits.entries()) body.writeInt16BE(d, i * 2);
  return Buffer.concat([head(digits.length, weight, minus === '-' ? 0x4000 : 0, dscale), body]);
}

/** A bucket's value: row count and the exact (unbounded) sum of its row hashes. */
export interface BucketValue {
  readonly rows: bigint;
  readonly sum: bigint;
}

export function bucketValue(rowHashes: readonly bigint[]): BucketValue {
  let sum = 0n;
  for (const h of rowHashes) sum += h;
  return { rows: BigInt(rowHashes.length), sum };
}
