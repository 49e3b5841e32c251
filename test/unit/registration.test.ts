import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { chooseColumns, fingerprint } from '../../functions/core/registration.js';
import type { ColumnInfo, TableInfo } from '../../functions/core/table-info.js';

const col = (name: string, type = 'text', generated = false): ColumnInfo => ({
  name,
  type,
  baseType: type,
  collation: null,
  generated,
  notNull: false,
});

const table = (columns: ColumnInfo[], published: string[] | null = null): TableInfo => ({
  schema: 'public',
  table: 't',
  relkind: 'r',
  key: { kind: 'primary', columns: ['id'] },
  columns,
  publication: { published: true, columns: published, rowFilter: null },
});

const base = {
  hashVersion: 1,
  keyColumns: ['id'],
  keyTypes: ['integer'],
  keyCollations: [null],
  scheme: 'int' as const,
  bucketWidth: 1000,
  bucketCount: null,
  bounds: null,
  columns: ['a', 'id'],
  columnTypes: ['text', 'integer'],
};

describe('fingerprint', () => {
  it('is deterministic', () => {
    expect(fingerprint(base)).toBe(fingerprint({ ...base }));
    expect(fingerprint(base)).toMatch(/^sg1-[0-9a-f]{16}$/);
  });

  it('changes when any defining field changes', () => {
    const variants = fc.constantFrom(
      { bucketWidth: 999 },
      { columns: ['b', 'id'] },
      { columnTypes: ['varchar', 'integer'] },
      { keyColumns: ['a'] },
      { keyTypes: ['bigint'] },
      { keyCollations: ['C'] },
      { hashVersion: 2 },
      { scheme: 'hash' as const, bucketWidth: null, bucketCount: 4 },
      { scheme: 'range' as const, bucketWidth: null, bucketCount: 2, bounds: [['5']] },
    );
    fc.assert(
      fc.property(variants, (v) => {
        expect(fingerprint({ ...base, ...v })).not.toBe(fingerprint(base));
      }),
    );
    const range = { ...base, scheme: 'range' as const, bucketWidth: null, bucketCount: 2, bounds: [['5']] };
    expect(fingerprint({ ...range, bounds: [['6']] })).not.toBe(fingerprint(range));
  });
});

describe('chooseColumns', () => {
  const id = col('id', 'integer');

  it('hashes published columns present on both sides, sorted by name, without generated ones', () => {
    const pub = table([col('z'), id, col('a'), col('g', 'text', true), col('only_pub')]);
    const sub = table([col('a'), col('extra'), col('z'), id, col('g', 'text', true)]);
    const r = chooseColumns(pub, sub);
    expect(r.columns.map((c) => c.name)).toEqual(['a', 'id', 'z']);
    expect(r.notes.join('\n')).toMatch(/missing on the subscriber, not hashed: only_pub/);
    expect(r.notes.join('\n')).toMatch(/subscriber-only columns, not hashed: extra/);
  });

  it('honours a publication column list', () => {
    const r = chooseColumns(table([id, col('a'), col('secret')], ['id', 'a']), table([id, col('a'), col('secret')]));
    expect(r.columns.map((c) => c.name)).toEqual(['a', 'id']);
  });

  it('always includes the key in a requested list, and checks every requested column', () => {
    const pub = table([id, col('a'), col('b')], ['id', 'a']);
    const sub = table([id, col('a')]);
    expect(chooseColumns(pub, sub, ['a']).columns.map((c) => c.name)).toEqual(['a', 'id']);
    expect(() => chooseColumns(pub, sub, ['nope'])).toThrow(/column nope does not exist in the publisher table/);
    expect(() => chooseColumns(pub, sub, ['b'])).toThrow(/not in the publication's column list/);
    expect(() => chooseColumns(table([id, col('a'), col('b')]), sub, ['b'])).toThrow(/does not exist in the subscriber table/);
  });

  it('refuses schema drift instead of hashing across it', () => {
    expect(() => chooseColumns(table([id, col('a', 'integer')]), table([id, col('a', 'bigint')]))).toThrow(
      /column a is integer on the publisher and bigint on the subscriber/,
    );
  });
});
