// Which canonical hash version a table is registered with (pure): the one asked for or held,
// unless version 2 would read a hashed column back truncated (docs/hashing.md). Split from
// registration.ts, which decides key, buckets and columns.

import { InputError } from './errors.js';
import { DEFAULT_HASH_VERSION, type HashVersion } from './hashing.js';

/** A hashed column that hash version 2 reads back truncated (a domain over character(n) or bit(n)). */
export interface TruncatedColumn {
  readonly column: string;
  readonly type: string;
  readonly base: string;
}

const truncatedText = (cols: readonly TruncatedColumn[]) =>
  cols.map((c) => `column ${c.column} (${c.type}, a domain over ${c.base})`).join(', ');

/**
 * The hash version to register with, given the one asked for, the one the table holds now and the
 * hashed columns that version 2 would truncate (docs/hashing.md, "Domains over character and bit"):
 * version 2 casts a domain to its base type's bare name, `character` or `bit`, which means
 * char(1) or bit(1), so it would not see a change after the first character or bit. Such a table
 * gets version 1 and a note saying why; --hash-version 2 is refused; a table already registered
 * with version 2 keeps it with a note naming the command that moves it (verify does not compare it).
 */
export function chooseHashVersion(
  table: string,
  requested: HashVersion | undefined,
  held: HashVersion | undefined,
  truncated: readonly TruncatedColumn[],
): { version: HashVersion | undefined; notes: string[] } {
  const version = requested ?? held;
  if (truncated.length === 0 || (version ?? DEFAULT_HASH_VERSION) !== 2) return { version, notes: [] };
  if (requested === 2) {
    throw new InputError(
      `table ${table} cannot use hash version 2: it reads ${truncatedText(truncated)} back truncated to the first character or bit, so a change after it would not be seen; register it with --hash-version 1 (or leave --hash-version out: such a table gets version 1)`,
    );
  }
  if (held === 2) {
    return {
      version: 2,
      notes: [
        `table ${table} is registered with hash version 2, which reads ${truncatedText(truncated)} back truncated, so verify does not compare it; move it to version 1: syncguard register --table ${table} --refresh --hash-version 1`,
      ],
    };
  }
  return {
    version: 1,
    notes: [
      `registered with hash version 1, not the default 2: version 2 reads ${truncatedText(truncated)} back truncated to the first character or bit (a known limit of version 2, docs/hashing.md)`,
    ],
  };
}
