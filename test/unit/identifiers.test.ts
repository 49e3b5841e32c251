import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { InputError } from '../../functions/core/errors.js';
import { byText, checkIdentifier, parseColumnList, parseTableName, TableRef, tableFromText } from '../../functions/core/identifiers.js';

const tableText = (t: { schema: string; table: string }) => TableRef.of(t.schema, t.table).text;

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

describe('quoted names, as PostgreSQL writes them', () => {
  it('accepts any character inside quotes, with "" for a quote', () => {
    expect(parseTableName('"Sales"."Order Items"')).toEqual({ schema: 'Sales', table: 'Order Items' });
    expect(parseTableName('"say ""hi"""')).toEqual({ schema: 'public', table: 'say "hi"' });
    expect(parseTableName('ventes."été 2026"')).toEqual({ schema: 'ventes', table: 'été 2026' });
    expect(parseTableName('MixedCase.Orders')).toEqual({ schema: 'MixedCase', table: 'Orders' }); // as stored, no folding
    expect(parseColumnList('id, "Unit Price", "a,b"')).toEqual(['id', 'Unit Price', 'a,b']);
  });

  it('round-trips any name through its quoted form', () => {
    fc.assert(
      fc.property(
        fc.string({ minLength: 1, maxLength: 20 }).filter((x) => !x.includes('\0')),
        (name) => {
          const q = `"${name.replaceAll('"', '""')}"`;
          expect(parseTableName(`${q}.${q}`)).toEqual({ schema: name, table: name });
        },
      ),
    );
  });

  it('says how to quote an unquoted awkward name, and refuses ambiguity', () => {
    expect(() => parseTableName('sales.order-items')).toThrow(
      /"order-items" is not a plain name .* quote it as PostgreSQL does: "order-items"/,
    );
    expect(() => parseTableName('public.Order Items')).toThrow(InputError);
    expect(() => parseTableName('a.b.c')).toThrow(/more than one dot; expected schema\.table \(a name that holds a dot is quoted/);
    expect(() => parseTableName('"unterminated')).toThrow(/unterminated quoted name/);
  });

  it('accepts a name that holds a dot when it is quoted', () => {
    expect(parseTableName('"a.b"."c.d"')).toEqual({ schema: 'a.b', table: 'c.d' });
    expect(parseTableName('"v1.2"')).toEqual({ schema: 'public', table: 'v1.2' });
  });
});

describe('report names (TableRef.text / tableFromText)', () => {
  it('writes plain and mixed names as before, and quotes a part with a dot or a quote', () => {
    expect(tableText({ schema: 'public', table: 'orders' })).toBe('public.orders');
    expect(tableText({ schema: 'Sales', table: 'Order Items' })).toBe('Sales.Order Items');
    expect(tableText({ schema: 'a.b', table: 'say "hi"' })).toBe('"a.b"."say ""hi"""');
  });

  it('reads back every name it writes', () => {
    const part = fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom('a', 'B', '.', '"', ' ', 'é', '_') });
    fc.assert(
      fc.property(part, part, (schema, table) => {
        expect(tableFromText(tableText({ schema, table }))).toEqual({ schema, table });
      }),
    );
  });

  it('refuses text that is not a report name', () => {
    for (const bad of ['t', 'a.', '.t', '"a', '"a"b.c', 'a.b.c']) expect(() => tableFromText(bad)).toThrow(InputError);
  });
});

describe('TableRef: one object per table', () => {
  const part = fc.string({ minLength: 1, maxLength: 12, unit: fc.constantFrom('a', 'B', '.', '"', ' ', 'é', '_', ',', '*') });

  it('is the same object however it was built: from parts, user input or report text', () => {
    fc.assert(
      fc.property(part, part, (schema, table) => {
        const t = TableRef.of(schema, table);
        expect(TableRef.of(schema, table)).toBe(t);
        expect(tableFromText(t.text)).toBe(t);
        expect(parseTableName(t.sql)).toBe(t); // the quoted identifier reads back as user input
        expect(new Set([t, TableRef.of(schema, table)]).size).toBe(1);
      }),
    );
    expect(parseTableName('orders')).toBe(TableRef.of('public', 'orders'));
    expect(parseTableName('"Sales"."Order Items"')).toBe(tableFromText('Sales.Order Items'));
  });

  it('tells different tables apart, whatever their names hold', () => {
    fc.assert(
      fc.property(part, part, part, part, (s1, t1, s2, t2) => {
        fc.pre(s1 !== s2 || t1 !== t2);
        expect(TableRef.of(s1, t1)).not.toBe(TableRef.of(s2, t2));
        expect(TableRef.of(s1, t1).text).not.toBe(TableRef.of(s2, t2).text);
      }),
    );
    expect(TableRef.of('a.b', 'c')).not.toBe(TableRef.of('a', 'b.c'));
  });

  it('renders as its report name in messages and JSON, and as a quoted identifier for SQL text', () => {
    const t = TableRef.of('Sales', 'say "hi"');
    expect(t.text).toBe('Sales."say ""hi"""');
    expect(`${t}`).toBe(t.text);
    expect(JSON.stringify({ table: t })).toBe(JSON.stringify({ table: t.text }));
    expect(t.sql).toBe('"Sales"."say ""hi"""');
    expect(TableRef.of('public', 'orders').sql).toBe('"public"."orders"');
    expect(t).toEqual({ schema: 'Sales', table: 'say "hi"' });
  });

  it('matches patterns on its report name, or on the table name without a dot', () => {
    const t = TableRef.of('public', 'audit_log');
    expect(t.matches('public.audit_*')).toBe(true);
    expect(t.matches('*.audit_log')).toBe(true);
    expect(t.matches('audit_*')).toBe(true);
    expect(t.matches('other.*')).toBe(false);
    expect(t.matches('public.audit.log')).toBe(false); // the dot is literal
    expect(TableRef.of('a.b', 't').matches('"a.b".t')).toBe(true);
  });

  it('sorts by report name', () => {
    const names = ['public.b', 'public.a', 'Sales.x', '"a.b".c'].map(tableFromText);
    expect(names.sort(byText).map((t) => t.text)).toEqual(['"a.b".c', 'Sales.x', 'public.a', 'public.b']);
  });
});
