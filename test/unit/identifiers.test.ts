import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../functions/core/errors.js';
import { checkIdentifier, parseColumnList, parseTableName } from '../../functions/core/identifiers.js';

const ident = fc.stringMatching(/^[a-zA-Z_][a-zA-Z0-9_$]{0,40}$/);

describe('parseTableName', () => {
  it('round-trips schema.table for plain identifiers', () => {
    fc.assert(
      fc.property(ident, ident, (s, t) => {
        expect(parseTableName(`${s}.${t}`)).toEqual({ schema: s, table: t });
      }),
    );
  });

  it('defaults the schema to public', () => {
    expect(parseTableName('orders')).toEqual({ schema: 'public', table: 'orders' });
  });

  it('refuses any name containing a quote, semicolon, space, backslash or NUL', () => {
    fc.assert(
      fc.property(ident, fc.constantFrom('"', ';', ' ', '\\', '\0', "'", '-', '('), ident, (a, bad, b) => {
        expect(() => parseTableName(`public.${a}${bad}${b}`)).toThrow(InputError);
      }),
    );
  });

  it('refuses more than one dot, and empty parts', () => {
    expect(() => parseTableName('a.b.c')).toThrow(/more than one dot/);
    expect(() => parseTableName('.t')).toThrow(/schema name is empty/);
    expect(() => parseTableName('s.')).toThrow(/table name is empty/);
  });

  it('refuses names longer than PostgreSQL keeps (63 bytes)', () => {
    expect(() => checkIdentifier('a'.repeat(64), 'table')).toThrow(/longer than 63 bytes/);
    expect(() => checkIdentifier('é'.repeat(32), 'table')).toThrow(/longer than 63 bytes/);
    expect(checkIdentifier('a'.repeat(63), 'table')).toBe('a'.repeat(63));
  });
});

describe('parseColumnList', () => {
  it('splits, trims, and refuses duplicates', () => {
    expect(parseColumnList('a, b,c')).toEqual(['a', 'b', 'c']);
    expect(() => parseColumnList('a,a')).toThrow(/listed twice/);
    expect(() => parseColumnList('a,,b')).toThrow(/empty/);
  });
});
