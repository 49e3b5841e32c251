// Inspection and repair plans (pure; docs/repair.md).
//   diffKeys:     the keys whose (key, row hash) lists differ, from one probe position;
//   describeDiffs: what a user sees: missing, extra, or changed with the differing columns;
//   planChanges:  the subscriber change per diff, with its precondition (both rows' hashes as
//                 inspected), deletes first;
//   planSql:      the plan as SQL a person can review;
//   planChecksum: the checksum shown with a plan before it is stored (the control plane computes
//                 and checks a stored plan's own, and decides whether it may be approved or applied).

import { createHash } from 'node:crypto';
import { PlanTooLargeError } from './errors.js';
import type { TableRef } from './identifiers.js';
import { escapeIdentifier, escapeLiteral } from './sql-text.js';

export type DiffKind = 'missing_on_subscriber' | 'extra_on_subscriber' | 'changed';

/** key text -> row hash (decimal text), one side's rows of a bucket. */
export type RowList = ReadonlyMap<string, string>;

export interface KeyDiff {
  readonly key: string;
  readonly kind: DiffKind;
  readonly publisherHash: string | null;
  readonly subscriberHash: string | null;
}

/** One side's full rows of some keys (syncguard.row_values). */
export interface RowValues {
  readonly columns: readonly string[];
  readonly keyColumns: readonly string[];
  readonly identityAlways: readonly string[];
  readonly generated: readonly string[];
  /** The registration's canonical row expression over the alias sg_t, as the node computes it. */
  readonly content: string;
  readonly rows: ReadonlyMap<
    string,
    { readonly hash: string; readonly keyValues: readonly (string | null)[]; readonly values: readonly (string | null)[] }
  >;
}

export interface Diff {
  readonly kind: DiffKind;
  readonly key: string;
  /** missing: the publisher's columns; extra: the subscriber's; changed: those that differ. */
  readonly columns: readonly { readonly name: string; readonly publisher: string | null; readonly subscriber: string | null }[];
}

const byKey = (a: { key: string }, b: { key: string }) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0);

const COPY_NAME = /^([0-9a-f]{32})#(\d+)$/;

/**
 * The order a table without a key's copies are changed in: by content, then by copy number, up for
 * inserts and down for deletes. Each change's precondition counts the copies (insert copy n while
 * n - 1 are there; delete copy n while at least n are), so copies 2 and 3 of one row go in as 2
 * then 3, and out as 3 then 2; text order would put copy 10 before copy 2. Keys of keyed tables
 * keep text order.
 */
export function copyOrder(direction: 1 | -1): (a: { key: string }, b: { key: string }) => number {
  return (a, b) => {
    const x = COPY_NAME.exec(a.key);
    const y = COPY_NAME.exec(b.key);
    if (x === null || y === null || x[1] !== y[1]) return byKey(a, b);
    return direction * (Number(x[2]) - Number(y[2]));
  };
}

export function diffKeys(pub: RowList, sub: RowList): KeyDiff[] {
  const out: KeyDiff[] = [];
  for (const [key, h] of pub) {
    const s = sub.get(key);
    if (s === undefined) out.push({ key, kind: 'missing_on_subscriber', publisherHash: h, subscriberHash: null });
    else if (s !== h) out.push({ key, kind: 'changed', publisherHash: h, subscriberHash: s });
  }
  for (const [key, s] of sub) if (!pub.has(key)) out.push({ key, kind: 'extra_on_subscriber', publisherHash: null, subscriberHash: s });
  return out.sort(byKey);
}

export function describeDiffs(diffs: readonly KeyDiff[], pub: RowValues, sub: RowValues): Diff[] {
  return diffs.map((d) => {
    const p = pub.rows.get(d.key)?.values;
    const s = sub.rows.get(d.key)?.values;
    const columns = pub.columns
      .map((name, i) => ({ name, publisher: p === undefined ? null : (p[i] ?? null), subscriber: s === undefined ? null : (s[i] ?? null) }))
      .filter((c) => d.kind !== 'changed' || c.publisher !== c.subscriber);
    return { kind: d.kind, key: d.key, columns };
  });
}

export interface PlannedChange {
  readonly key: string;
  readonly op: 'upsert' | 'delete';
  /** Preconditions: the rows' hashes as inspected; null = the row was absent. */
  readonly subHash: string | null;
  readonly pubHash: string | null;
  /** A delete's key values (from the subscriber's row), to find the row by. */
  readonly keyValues?: readonly (string | null)[];
  /** An upsert's values as inspected (for review only: the repair sends the publisher's values as they are then). */
  readonly values?: readonly (string | null)[];
}

/** The subscriber change per diff: deletes (extra rows) first, then upserts, each in key order. */
export function planChanges(diffs: readonly KeyDiff[], pub: RowValues, sub: RowValues): PlannedChange[] {
  const deletes = diffs
    .filter((d) => d.kind === 'extra_on_subscriber')
    .map((d) => ({
      key: d.key,
      op: 'delete' as const,
      subHash: d.subscriberHash,
      pubHash: null,
      keyValues: sub.rows.get(d.key)?.keyValues ?? [],
    }));
  const upserts = diffs
    .filter((d) => d.kind !== 'extra_on_subscriber')
    .map((d) => ({
      key: d.key,
      op: 'upsert' as const,
      subHash: d.subscriberHash,
      pubHash: d.publisherHash,
      values: pub.rows.get(d.key)?.values ?? [],
    }));
  return [...deletes.sort(copyOrder(-1)), ...upserts.sort(copyOrder(1))];
}

export const DEFAULT_PLAN_CAP = 1000;
export const DEFAULT_PLAN_EXPIRY_MS = 24 * 3600 * 1000;

export function checkCap(table: TableRef, rows: number, cap: number): void {
  if (rows > cap) {
    throw new PlanTooLargeError(
      `the plan for ${table.text} would change ${rows} rows, more than the cap of ${cap}: raise it with --max-rows ${rows} after reviewing, or resynchronise the table instead (copy it again through the subscription)`,
    );
  }
}

/** The plan as SQL a person can review; the repair itself applies it through the subscription. */
export function planSql(table: TableRef, cols: RowValues, changes: readonly PlannedChange[]): string {
  const t = table.sql;
  const lit = (v: string | null | undefined) => (v === null || v === undefined ? 'NULL' : escapeLiteral(v));
  const writable = cols.columns.map((c, i) => ({ c, i })).filter((x) => !cols.generated.includes(x.c));
  const override = cols.columns.some((c) => cols.identityAlways.includes(c)) ? ' OVERRIDING SYSTEM VALUE' : '';
  const keyList = cols.keyColumns.map(escapeIdentifier).join(', ');
  const sets = writable
    .filter((x) => !cols.keyColumns.includes(x.c))
    .map((x) => `${escapeIdentifier(x.c)} = EXCLUDED.${escapeIdentifier(x.c)}`);
  const lines: string[] = [];
  const keyless = cols.keyColumns.length === 0;
  for (const ch of changes) {
    const pre = `-- precondition: subscriber row ${ch.subHash === null ? 'absent' : `hash ${ch.subHash}`}; publisher row ${ch.pubHash === null ? 'absent' : `hash ${ch.pubHash}`}`;
    if (keyless) {
      // no key: one copy more or less of a row, found by the md5 of its canonical form (the node's
      // expression for this registration, which holds under syncguard's pinned settings)
      lines.push(
        pre,
        ch.op === 'delete'
          ? `DELETE FROM ${t} WHERE ctid = (SELECT sg_t.ctid FROM ${t} sg_t WHERE md5(${cols.content}) = ${lit(ch.keyValues?.[0])} LIMIT 1);`
          : `INSERT INTO ${t} (${writable.map((x) => escapeIdentifier(x.c)).join(', ')})${override} VALUES (${writable.map((x) => lit(ch.values?.[x.i])).join(', ')});`,
      );
      continue;
    }
    if (ch.op === 'delete') {
      const where = cols.keyColumns.map((k, i) => `${escapeIdentifier(k)} = ${lit(ch.keyValues?.[i])}`).join(' AND ');
      lines.push(pre, `DELETE FROM ${t} WHERE ${where};`);
    } else {
      lines.push(
        pre,
        `INSERT INTO ${t} (${writable.map((x) => escapeIdentifier(x.c)).join(', ')})${override} VALUES (${writable.map((x) => lit(ch.values?.[x.i])).join(', ')})` +
          ` ON CONFLICT (${keyList}) DO ${sets.length === 0 ? 'NOTHING' : `UPDATE SET ${sets.join(', ')}`};`,
      );
    }
  }
  return lines.join('\n');
}

export interface PlanContent {
  readonly pair: string;
  readonly table: TableRef;
  readonly bucket: string;
  readonly fingerprint: string;
  readonly changes: readonly PlannedChange[];
  readonly expiresAt: string;
  /**
   * The inspection probe's id: the subscriber kept the inspection's snapshot under it, and a row
   * that moved since then is repaired only if no local write that snapshot did not see is recorded
   * in its bucket (docs/repair.md). A plan made before node 0029 has none and is not applied.
   */
  readonly inspection?: string;
}

/** sha256 over everything that would be applied, in a fixed key order. */
export function planChecksum(p: PlanContent): string {
  const canonical = JSON.stringify([
    p.pair,
    p.table.text,
    p.bucket,
    p.fingerprint,
    p.expiresAt,
    p.changes.map((c) => [c.key, c.op, c.subHash, c.pubHash, c.keyValues ?? null, c.values ?? null]),
    ...(p.inspection === undefined ? [] : [{ inspection: p.inspection }]),
  ]);
  return `sha256:${createHash('sha256').update(canonical).digest('hex')}`;
}

export interface StoredPlan extends PlanContent {
  readonly planId: number;
  readonly checksum: string;
  readonly createdBy: string;
  readonly state: 'proposed' | 'approved' | 'rejected' | 'applying' | 'applied';
  readonly approval: { readonly decision: 'approved' | 'rejected'; readonly by: string; readonly checksum: string } | null;
}
