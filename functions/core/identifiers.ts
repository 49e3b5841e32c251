// Parsing of user-given SQL names, in PostgreSQL's own syntax: a plain name (letters, digits, _
// and $, not starting with a digit) as typed (no case folding: names match exactly as stored), or
// a quoted one ("Order Items", "say ""hi""") that may hold any character. Names reach SQL only as
// bind parameters or through quote_ident/%I. An unquoted name that could only be a mistake
// (spaces, quotes, semicolons, a third dot) is refused with what to type instead.
// A table is a TableRef, built once where it enters: from user input (parseTableName), from a
// node's or the control plane's report text (tableFromText), or from a row's schema and name
// (TableRef.of); it is carried as it is and never turned into text to be parsed again.
// Reports name a table as `schema.table` (TableRef.text), and a part that holds a dot or a quote is
// written quoted ("a.b"."t"), so every name reads back (tableFromText) as it was. The node schema
// writes names by the same rule (syncguard._table_text, migration 0017).

import { InputError } from './errors.js';
import { escapeIdentifier } from './sql-text.js';

/** One part of a table's report name: quoted ("" for a quote) when it holds a dot or a quote. */
const namePart = (n: string): string => (n.includes('.') || n.includes('"') ? `"${n.replaceAll('"', '""')}"` : n);

/**
 * A table: its schema and name as stored. One object per table: equal names give the same
 * TableRef (they are interned, for the life of the process: a few per registered table), so a
 * TableRef is its own key in a Map or Set and compares with ===.
 * db/ binds `schema` and `table` as parameters; `text` names it in reports, messages and keys;
 * `sql` is its quoted identifier for SQL that people read (a plan's preview).
 */
export class TableRef {
  static readonly #interned = new Map<string, TableRef>();
  readonly #text: string;

  private constructor(
    readonly schema: string,
    readonly table: string,
    text: string,
  ) {
    this.#text = text;
  }

  /** The table of this schema and name (as a node's row gives them). */
  static of(schema: string, table: string): TableRef {
    const text = `${namePart(schema)}.${namePart(table)}`;
    let t = TableRef.#interned.get(text);
    if (t === undefined) {
      t = new TableRef(schema, table, text);
      TableRef.#interned.set(text, t);
    }
    return t;
  }

  /** `schema.table`, as syncguard's reports and SQL functions name a table (see namePart); unique per table. */
  get text(): string {
    return this.#text;
  }

  /** "schema"."table", quoted for SQL text. */
  get sql(): string {
    return `${escapeIdentifier(this.schema)}.${escapeIdentifier(this.table)}`;
  }

  /**
   * Whether the table matches a pattern: `*` stands for any run of characters, everything else is
   * literal (`public.audit_*`, `*.tmp_*`); a pattern without a dot matches the table name in any schema.
   */
  matches(pattern: string): boolean {
    const glob = (p: string) =>
      new RegExp(
        `^${p
          .split('*')
          .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
          .join('.*')}$`,
      );
    return pattern.includes('.') ? glob(pattern).test(this.#text) : glob(pattern).test(this.table);
  }

  /** Its report name, so a TableRef in a message or a JSON report reads as it always did. */
  toString(): string {
    return this.#text;
  }

  toJSON(): string {
    return this.#text;
  }
}

/** Orders tables by their report names (as a sort of the names did). */
export const byText = (a: TableRef, b: TableRef): number => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0);

/** PostgreSQL truncates identifiers to 63 bytes; a longer name could never match. */
const MAX_IDENTIFIER_BYTES = 63;
const PLAIN = /^[\p{L}_][\p{L}\p{N}_$]*$/u;

/** Checks one identifier (a schema, table or column name) as stored, and returns it unchanged. */
export function checkIdentifier(name: string, what: string): string {
  if (name.length === 0) throw new InputError(`${what} name is empty`);
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new InputError(`${what} name ${JSON.stringify(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes`);
  }
  if (name.includes('\0')) throw new InputError(`${what} name ${JSON.stringify(name)} holds a NUL character`);
  return name;
}

/**
 * Splits `input` into identifiers separated by `sep` ('.' or ','), each plain or double-quoted
 * ("" inside quotes is one quote). Whitespace around an identifier is ignored.
 */
function identifiers(input: string, sep: '.' | ',', what: string): string[] {
  const out: string[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < input.length && /\s/.test(input[i] as string)) i++;
  };
  for (;;) {
    skipSpace();
    let name = '';
    if (input[i] === '"') {
      i++;
      for (;;) {
        if (i >= input.length) throw new InputError(`${what} ${JSON.stringify(input)} has an unterminated quoted name`);
        if (input[i] === '"') {
          if (input[i + 1] === '"') {
            name += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        name += input[i];
        i++;
      }
      if (name === '') throw new InputError(`${what} ${JSON.stringify(input)} has an empty quoted name`);
    } else {
      const start = i;
      while (i < input.length && input[i] !== sep && !/\s/.test(input[i] as string)) i++;
      name = input.slice(start, i);
      if (name !== '' && !PLAIN.test(name)) {
        throw new InputError(
          `${what} ${JSON.stringify(input)}: ${JSON.stringify(name)} is not a plain name (letters, digits, _ and $, starting with a letter or _); quote it as PostgreSQL does: "${name.replaceAll('"', '""')}"`,
        );
      }
    }
    out.push(name);
    skipSpace();
    if (i >= input.length) return out;
    if (input[i] !== sep)
      throw new InputError(
        `${what} ${JSON.stringify(input)}: unexpected ${JSON.stringify(input[i])} after ${JSON.stringify(name)}; a name with spaces or other characters is written quoted, as PostgreSQL does, for example ${quotedForm(input, sep)}`,
      );
    i++;
  }
}

const quote = (n: string): string => `"${n.replaceAll('"', '""')}"`;

/** The quoted form of a name list that did not parse: a table split at its first dot, columns at each comma. */
function quotedForm(input: string, sep: '.' | ','): string {
  if (sep === ',')
    return input
      .split(',')
      .map((c) => quote(c.trim()))
      .join(', ');
  const dot = input.indexOf('.');
  return dot < 0 ? quote(input.trim()) : `${quote(input.slice(0, dot).trim())}.${quote(input.slice(dot + 1).trim())}`;
}

/**
 * How a report names a column (a key column in `key (...)`): as stored when it is a plain
 * lower-case name, else quoted as PostgreSQL does, so `key (Line "No", ключ)` cannot be misread.
 */
export const columnText = (n: string): string => (/^[a-z_][a-z0-9_$]*$/.test(n) ? n : quote(n));

/** Parses `schema.table` (or `table`, meaning `public.table`), each part plain or "quoted". */
export function parseTableName(input: string): TableRef {
  const parts = identifiers(input, '.', 'table');
  if (parts.length > 2) {
    throw new InputError(
      `table ${JSON.stringify(input)} has more than one dot; expected schema.table (a name that holds a dot is quoted: "my.schema"."my.table")`,
    );
  }
  const [schema, table] = parts.length === 2 ? [parts[0] ?? '', parts[1] ?? ''] : ['public', parts[0] ?? ''];
  checkIdentifier(schema, 'schema');
  checkIdentifier(table, 'table');
  return TableRef.of(schema, table);
}

/** A table as syncguard's reports name it (TableRef.text): parts as stored, or quoted as namePart writes them. */
export function tableFromText(text: string): TableRef {
  const parts: string[] = [];
  let i = 0;
  while (i <= text.length) {
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw new InputError(`not a schema.table name: ${JSON.stringify(text)}`);
        if (text[i] === '"' && text[i + 1] === '"') {
          part += '"';
          i += 2;
        } else if (text[i] === '"') {
          i++;
          break;
        } else {
          part += text[i];
          i++;
        }
      }
    } else {
      const end = text.indexOf('.', i);
      part = text.slice(i, end < 0 ? text.length : end);
      i = end < 0 ? text.length : end;
    }
    parts.push(part);
    if (i >= text.length) break;
    if (text[i] !== '.') throw new InputError(`not a schema.table name: ${JSON.stringify(text)}`);
    i++;
  }
  const [schema, table] = parts;
  if (parts.length !== 2 || !schema || !table) throw new InputError(`not a schema.table name: ${JSON.stringify(text)}`);
  return TableRef.of(schema, table);
}

/** Parses a comma-separated column list (each plain or "quoted"); duplicates are refused. */
export function parseColumnList(input: string): string[] {
  const names = identifiers(input, ',', 'column list');
  const seen = new Set<string>();
  for (const n of names) {
    checkIdentifier(n, 'column');
    if (seen.has(n)) throw new InputError(`column ${n} is listed twice in --columns`);
    seen.add(n);
  }
  return names;
}
