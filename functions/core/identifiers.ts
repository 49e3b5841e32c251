// Parsing of user-given SQL names. Names reach SQL only as bind parameters or through
// escapeIdentifier, but a name that could only be a mistake (quotes, semicolons, whitespace,
// a third dot) is refused here with a clear message rather than looked up.

import { InputError } from './errors.js';

export interface QualifiedName {
  readonly schema: string;
  readonly table: string;
}

/** `schema.table`, as syncguard's reports and SQL functions name a table. */
export const tableText = (t: QualifiedName): string => `${t.schema}.${t.table}`;

/** PostgreSQL truncates identifiers to 63 bytes; a longer name could never match. */
const MAX_IDENTIFIER_BYTES = 63;
const PLAIN = /^[\p{L}_][\p{L}\p{N}_$]*$/u;

/** Checks one identifier (a schema, table or column name) and returns it unchanged. */
export function checkIdentifier(name: string, what: string): string {
  if (name.length === 0) throw new InputError(`${what} name is empty`);
  if (Buffer.byteLength(name, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new InputError(`${what} name ${JSON.stringify(name)} is longer than ${MAX_IDENTIFIER_BYTES} bytes`);
  }
  if (!PLAIN.test(name)) {
    throw new InputError(
      `${what} name ${JSON.stringify(name)} is not allowed: use letters, digits, _ and $, starting with a letter or _ (no quotes, dots, semicolons or spaces)`,
    );
  }
  return name;
}

/** Parses `schema.table` (or `table`, meaning `public.table`). */
export function parseTableName(input: string): QualifiedName {
  const parts = input.split('.');
  if (parts.length > 2) {
    throw new InputError(`table ${JSON.stringify(input)} has more than one dot; expected schema.table`);
  }
  const [schema, table] = parts.length === 2 ? [parts[0] ?? '', parts[1] ?? ''] : ['public', parts[0] ?? ''];
  return { schema: checkIdentifier(schema, 'schema'), table: checkIdentifier(table, 'table') };
}

/** Parses a comma-separated column list; duplicates are refused. */
export function parseColumnList(input: string): string[] {
  const names = input.split(',').map((s) => s.trim());
  const seen = new Set<string>();
  for (const n of names) {
    checkIdentifier(n, 'column');
    if (seen.has(n)) throw new InputError(`column ${n} is listed twice in --columns`);
    seen.add(n);
  }
  return names;
}

/**
 * Whether `schema.table` matches a pattern: `*` stands for any run of characters, everything
 * else is literal (`public.audit_*`, `*.tmp_*`); a pattern without a dot matches the table name
 * in any schema.
 */
export function matchesPattern(t: QualifiedName, pattern: string): boolean {
  const glob = (p: string) =>
    new RegExp(
      `^${p
        .split('*')
        .map((s) => s.replace(/[.+?^${}()|[\]\\]/g, '\\$&'))
        .join('.*')}$`,
    );
  return pattern.includes('.') ? glob(pattern).test(tableText(t)) : glob(pattern).test(t.table);
}
