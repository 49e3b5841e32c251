// The registration of a table: which key, which bucket scheme and which columns are hashed. It is
// decided once, from both nodes' descriptions, and written identically to both, with a
// fingerprint that verification compares before it compares any bucket.

import { createHash } from 'node:crypto';
import { type BucketScheme, chooseScheme } from './buckets.js';
import { IncompatibleError, InputError } from './errors.js';
import { DEFAULT_HASH_VERSION, type HashVersion } from './hashing.js';
import { TableRef } from './identifiers.js';
import type { ColumnInfo, TableInfo } from './table-info.js';

export const DEFAULT_BUCKET_SIZE = 1000;

export interface RegistrationConfig {
  readonly schema: string;
  readonly table: string;
  readonly keyColumns: readonly string[];
  readonly keyTypes: readonly string[];
  /** Collation of each key column (null for types without one): range buckets depend on it. */
  readonly keyCollations: readonly (string | null)[];
  readonly scheme: BucketScheme;
  /** int: keys per bucket. */
  readonly bucketWidth: number | null;
  /** range: bounds + 1; hash: the modulus. */
  readonly bucketCount: number | null;
  /** range: the lower bound of buckets 1..n, each as the key columns' texts. */
  readonly bounds: readonly (readonly string[])[] | null;
  /** Hashed columns, sorted by code point. */
  readonly columns: readonly string[];
  readonly columnTypes: readonly string[];
  readonly publications: readonly string[];
  readonly hashVersion: number;
  readonly fingerprint: string;
}

export interface ColumnChoice {
  readonly columns: readonly ColumnInfo[];
  /** Things the user should know that are not errors (e.g. subscriber-only columns). */
  readonly notes: readonly string[];
}

const byCodePoint = (a: string, b: string): number => {
  const x = [...a].map((c) => c.codePointAt(0) ?? 0);
  const y = [...b].map((c) => c.codePointAt(0) ?? 0);
  for (let i = 0; i < Math.min(x.length, y.length); i++) {
    if (x[i] !== y[i]) return (x[i] ?? 0) - (y[i] ?? 0);
  }
  return x.length - y.length;
};

const where = (t: TableInfo, side: string) => `${side} table ${t.schema}.${t.table}`;

/**
 * The hashed columns: the publisher's published, non-generated columns that the subscriber has too
 * (or exactly `requested`, plus the key), sorted by name. A type difference is schema drift and
 * refused: hashing across it would report every row.
 */
export function chooseColumns(pub: TableInfo, sub: TableInfo, requested?: readonly string[]): ColumnChoice {
  const key = pub.key?.columns ?? [];
  const published = pub.publication?.columns ?? null;
  const subByName = new Map(sub.columns.map((c) => [c.name, c]));
  const pubByName = new Map(pub.columns.map((c) => [c.name, c]));
  const notes: string[] = [];
  let names: string[];
  if (requested !== undefined) {
    names = [...new Set([...key, ...requested])];
    for (const n of names) {
      const p = pubByName.get(n);
      if (p === undefined) throw new InputError(`column ${n} does not exist in the ${where(pub, 'publisher')}`);
      if (p.generated) throw new InputError(`column ${n} is a generated column; generated columns are not replicated and cannot be hashed`);
      if (published !== null && !published.includes(n)) {
        throw new InputError(`column ${n} is not in the publication's column list for ${pub.schema}.${pub.table}`);
      }
      if (!subByName.has(n)) throw new InputError(`column ${n} does not exist in the ${where(sub, 'subscriber')}`);
    }
  } else {
    names = pub.columns
      .filter((c) => !c.generated && (published === null || published.includes(c.name)) && subByName.has(c.name))
      .map((c) => c.name);
    const missing = pub.columns.filter((c) => !c.generated && (published === null || published.includes(c.name)) && !subByName.has(c.name));
    if (missing.length > 0) notes.push(`published columns missing on the subscriber, not hashed: ${missing.map((c) => c.name).join(', ')}`);
  }
  const extra = sub.columns.filter((c) => !pubByName.has(c.name)).map((c) => c.name);
  if (extra.length > 0) notes.push(`subscriber-only columns, not hashed: ${extra.join(', ')}`);

  const columns: ColumnInfo[] = [];
  for (const n of names.sort(byCodePoint)) {
    const p = pubByName.get(n) as ColumnInfo;
    const s = subByName.get(n) as ColumnInfo;
    if (s.generated) throw new IncompatibleError(`column ${n} is generated on the subscriber but not on the publisher`);
    if (p.type !== s.type) {
      throw new IncompatibleError(
        `schema drift in ${pub.schema}.${pub.table}: column ${n} is ${p.type} on the publisher and ${s.type} on the subscriber`,
      );
    }
    columns.push(p);
  }
  if (columns.length === 0) throw new InputError(`no column of ${pub.schema}.${pub.table} is published and present on both sides`);
  return { columns, notes };
}

/**
 * The key both sides agree on, or a clear refusal. A table without a key on either side has none
 * ([]): its rows are bucketed by their content (buckets.ts chooseScheme).
 */
function chooseKey(pub: TableInfo, sub: TableInfo): ColumnInfo[] {
  const name = TableRef.of(pub.schema, pub.table).text;
  if (pub.key === null && sub.key === null) return [];
  if (pub.key === null || sub.key === null) {
    throw new IncompatibleError(
      `table ${name} has ${pub.key === null ? 'no key on the publisher but one on the subscriber' : 'a key on the publisher but none on the subscriber'}; give both the same primary key, or neither`,
    );
  }
  if (pub.key.columns.join(',') !== sub.key.columns.join(',')) {
    throw new IncompatibleError(
      `table ${name} has key (${pub.key.columns.join(', ')}) on the publisher but (${sub.key.columns.join(', ')}) on the subscriber`,
    );
  }
  return pub.key.columns.map((n) => {
    const p = pub.columns.find((c) => c.name === n) as ColumnInfo;
    const s = sub.columns.find((c) => c.name === n) as ColumnInfo;
    if (p.type !== s.type)
      throw new IncompatibleError(`key column ${n} of ${name} is ${p.type} on the publisher and ${s.type} on the subscriber`);
    if (p.collation !== s.collation) {
      throw new IncompatibleError(
        `key column ${n} of ${name} has collation ${JSON.stringify(p.collation)} on the publisher and ${JSON.stringify(s.collation)} on the subscriber; the nodes would sort and bucket its keys differently`,
      );
    }
    return p;
  });
}

export interface BucketLayout {
  readonly scheme: BucketScheme;
  readonly bucketWidth: number | null;
  readonly bucketCount: number | null;
  readonly bounds: readonly (readonly string[])[] | null;
}

/** The fingerprint of everything that defines what a bucket holds and how it is hashed. */
export function fingerprint(c: Omit<RegistrationConfig, 'fingerprint' | 'schema' | 'table' | 'publications'>): string {
  const canonical = JSON.stringify([
    c.hashVersion,
    c.keyColumns,
    c.keyTypes,
    c.keyCollations,
    c.scheme,
    c.bucketWidth,
    c.bucketCount,
    c.bounds === null ? null : createHash('sha256').update(JSON.stringify(c.bounds)).digest('hex'),
    c.columns,
    c.columnTypes,
  ]);
  return `sg${c.hashVersion}-${createHash('sha256').update(canonical).digest('hex').slice(0, 16)}`;
}

export interface PlanInput {
  readonly publisher: TableInfo;
  readonly subscriber: TableInfo;
  readonly publications: readonly string[];
  readonly requestedColumns?: readonly string[];
  readonly requestedScheme?: BucketScheme;
  /** The canonical encoding (docs/hashing.md); DEFAULT_HASH_VERSION when not given. */
  readonly hashVersion?: HashVersion;
}

/** Everything but the bucket layout, which may need the publisher's data (bounds, row count). */
export function planRegistration(input: PlanInput): { key: ColumnInfo[]; scheme: BucketScheme; choice: ColumnChoice } {
  const { publisher: pub, subscriber: sub } = input;
  if (pub.publication !== null && !pub.publication.published) {
    throw new IncompatibleError(
      `table ${pub.schema}.${pub.table} is not in the subscription's publication(s) ${input.publications.join(', ')}`,
    );
  }
  for (const [t, side] of [
    [pub, 'publisher'],
    [sub, 'subscriber'],
  ] as const) {
    const tree = t.inheritance ?? 'none';
    if (!(t.relkind === 'r' || (t.relkind === 'p' && tree === 'partitioned')) || tree === 'child' || tree === 'parent') {
      throw new IncompatibleError(
        `${TableRef.of(t.schema, t.table).text} is ${tree === 'child' || tree === 'parent' ? `in an inheritance tree (${tree})` : `not a plain or partitioned table (relkind ${t.relkind})`} on the ${side}; inheritance parents and children, views and foreign tables are not supported (partitioned tables and partitions are)`,
      );
    }
  }
  const key = chooseKey(pub, sub);
  const scheme = chooseScheme(key, input.requestedScheme);
  const choice = chooseColumns(pub, sub, input.requestedColumns);
  const notes = [...choice.notes, ...partitionNotes(pub, sub)];
  if (key.length === 0) {
    notes.push(
      'no key: rows are bucketed by their content, and a bucket compares its rows as a multiset (duplicates count); an UPDATE or DELETE of such a table needs REPLICA IDENTITY FULL on the publisher, or replication refuses it',
    );
  }
  return { key, scheme, choice: { ...choice, notes } };
}

/** What registering a partitioned table or a partition means, per side. */
function partitionNotes(pub: TableInfo, sub: TableInfo): string[] {
  const notes: string[] = [];
  for (const [t, side] of [
    [pub, 'publisher'],
    [sub, 'subscriber'],
  ] as const) {
    if (t.inheritance === 'partitioned') {
      notes.push(
        `partitioned on the ${side}: the rows of all its partitions are verified together, and partitions attached, created, detached or dropped later are picked up by the next drain there (which rebuilds the table's catalogue)`,
      );
    } else if (t.inheritance === 'partition') {
      notes.push(`a partition on the ${side}, registered on its own: only its rows are verified`);
    }
  }
  if (pub.inheritance !== sub.inheritance && (pub.inheritance === 'partitioned' || sub.inheritance === 'partitioned')) {
    notes.push(
      'partitioned differently on the two sides: replication needs publish_via_partition_root = true on the publication for that (PostgreSQL applies changes to the subscriber table by name)',
    );
  }
  return notes;
}

export function buildConfig(input: PlanInput, plan: ReturnType<typeof planRegistration>, layout: BucketLayout): RegistrationConfig {
  const base = {
    keyColumns: plan.key.map((c) => c.name),
    keyTypes: plan.key.map((c) => c.type),
    keyCollations: plan.key.map((c) => c.collation),
    scheme: layout.scheme,
    bucketWidth: layout.bucketWidth,
    bucketCount: layout.bucketCount,
    bounds: layout.bounds,
    columns: plan.choice.columns.map((c) => c.name),
    columnTypes: plan.choice.columns.map((c) => c.type),
    hashVersion: input.hashVersion ?? DEFAULT_HASH_VERSION,
  };
  return {
    schema: input.publisher.schema,
    table: input.publisher.table,
    publications: input.publications,
    ...base,
    fingerprint: fingerprint(base),
  };
}

/** Bucket layout from the bucket size and, where the scheme needs them, the publisher's rows. */
export function layoutFor(
  scheme: BucketScheme,
  bucketSize: number,
  rowCount: number,
  bounds: readonly (readonly string[])[],
): BucketLayout {
  if (!Number.isSafeInteger(bucketSize) || bucketSize < 1)
    throw new InputError(`bucket size must be a positive integer, got ${bucketSize}`);
  switch (scheme) {
    case 'int':
      return { scheme, bucketWidth: bucketSize, bucketCount: null, bounds: null };
    case 'range':
      return { scheme, bucketWidth: null, bucketCount: bounds.length + 1, bounds };
    case 'hash':
      return { scheme, bucketWidth: null, bucketCount: Math.max(1, Math.ceil(rowCount / bucketSize)), bounds: null };
  }
}
