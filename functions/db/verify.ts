// A verification of a pair (DESIGN.md "A verdict that does not cry wolf"):
//   round 1: drain the publisher; read its catalogue sums (REPEATABLE READ), then L; wait until
//            the subscriber confirmed L; drain the subscriber and read its sums; compare ranges,
//            and bucket detail only where ranges differ or hold dirty buckets;
//   round 2: for the candidates only, the same again; confirm those that persist with the
//            publisher bucket unchanged.
// The comparison and the verdict are pure (core/compare.ts, core/verdict.ts); this module reads.

import { compareTable, EMPTY, rangeOf, sameValue, type TableComparison } from '../core/compare.js';
import { InputError } from '../core/errors.js';
import { parseTableName, type QualifiedName } from '../core/identifiers.js';
import { type Finding, type ParityInfo, parityFindings } from '../core/parity.js';
import {
  type LocalWrite,
  mismatchReport,
  overallCoverage,
  type TableReport,
  tableReport,
  uncomparable,
  type VerifyReport,
} from '../core/report.js';
import { confirm, decide, type TableRounds } from '../core/verdict.js';
import { waitForBarrier } from './barrier.js';
import { readDetail, readRanges, type TableSnapshot } from './catalogue.js';
import type { Client } from './connect.js';
import { drain } from './drain.js';
import { requireInstalled } from './install.js';
import { compareLive, liveValues, longDirty } from './live.js';

export interface VerifyOptions {
  readonly table?: QualifiedName;
  readonly minCoveragePct?: number;
  readonly barrierTimeoutMs?: number;
  /** Time box of the drain each side gets before it is read. */
  readonly drainMs?: number;
  /** Buckets per range in the first, coarse comparison. */
  readonly rangeWidth?: bigint;
  /** Buckets dirty for at least this long are hashed live from both sides (default 60 s). */
  readonly liveAfterMs?: number;
}

const name = (t: QualifiedName) => `${t.schema}.${t.table}`;

async function drainBriefly(c: Client, ms: number): Promise<void> {
  const s = await drain(c, { deadlineMs: Date.now() + ms, resweepIntervalMs: null });
  if (s.stoppedBecause === 'error') throw new Error(`drain failed: ${s.error}`);
}

/** In a REPEATABLE READ, read-only transaction, so later reads see the same snapshot. */
async function snapshot<T>(c: Client, fn: () => Promise<T>): Promise<{ value: T; end: () => Promise<void> }> {
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    return { value: await fn(), end: async () => void (await c.query('COMMIT')) };
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

/** Ranges that need bucket detail: different sums, or dirty or never-computed buckets on a side. */
function rangesToInspect(p: TableSnapshot, s: TableSnapshot, width: bigint): { inspect: string[]; equalBuckets: number } {
  const flagged = new Set<string>();
  for (const b of [...p.dirty, ...p.uncomputed, ...s.dirty, ...s.uncomputed]) flagged.add(rangeOf(BigInt(b), width).toString());
  const inspect: string[] = [];
  let equalBuckets = 0;
  for (const r of new Set([...p.ranges.keys(), ...s.ranges.keys(), ...flagged])) {
    const a = p.ranges.get(r) ?? { ...EMPTY, buckets: 0 };
    const b = s.ranges.get(r) ?? { ...EMPTY, buckets: 0 };
    if (flagged.has(r) || !sameValue(a, b)) inspect.push(r);
    else equalBuckets += Math.max(a.buckets, b.buckets);
  }
  return { inspect, equalBuckets };
}

export async function verifyPair(pub: Client, sub: Client, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = Date.now();
  const width = opts.rangeWidth ?? 64n;
  const drainMs = opts.drainMs ?? 10_000;
  const timeoutMs = opts.barrierTimeoutMs ?? 30_000;
  await requireInstalled(pub, 'publisher');
  await requireInstalled(sub, 'subscriber');

  const local = await localWrites(sub, opts.table);
  const parity = (await parityOf(pub, sub)).filter((f) => opts.table === undefined || f.table === name(opts.table));
  const warnings = [
    ...(local.count > 0
      ? [`${local.count} local (non-replicated) write(s) to monitored tables on the subscriber: the usual cause of drift`]
      : []),
    ...parity.filter((f) => f.level === 'warning').map((f) => `${f.table}: ${f.message}`),
  ];
  const incomplete = (failure: string, tables: readonly TableReport[] = []): VerifyReport => ({
    ...decideReport(tables, [], warnings, opts, failure),
    parity,
    localWrites: local.recent,
    verifiedLsn: null,
    durationMs: Date.now() - started,
    barrierMs: 0,
  });

  // Round 1
  await drainBriefly(pub, drainMs);
  const p = await snapshot(pub, async () => {
    const all = await readRanges(pub, width);
    const lsn = (await pub.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]?.l as string;
    return { all, lsn };
  });
  // open REPEATABLE READ transactions are ended on every way out
  let pubOpen = true;
  let subOpen = false;
  try {
    const pubTables = p.value.all.filter((t) => opts.table === undefined || t.table === name(opts.table));
    if (opts.table !== undefined && pubTables.length === 0) {
      throw new InputError(`table ${name(opts.table)} is not registered on the publisher`);
    }
    const barrier = await waitForBarrier(pub, sub, timeoutMs, p.value.lsn);
    if (!barrier.ok) return incomplete(barrier.failure);
    await drainBriefly(sub, drainMs);
    const s = await snapshot(sub, () => readRanges(sub, width));
    subOpen = true;
    const subByTable = new Map(s.value.map((t) => [t.table, t]));

    const reports: TableReport[] = [];
    const rounds: TableRounds[] = [];
    const liveBuckets = new Map<string, Set<string>>();
    for (const pt of pubTables) {
      const st = subByTable.get(pt.table);
      const fps = { publisher: pt.fingerprint, subscriber: st?.fingerprint ?? null };
      const known = [...pt.ranges.values()].reduce((a, r) => a + r.buckets, 0) + pt.dirty.size;
      if (st === undefined) {
        reports.push(uncomparable(pt.table, 'not registered on the subscriber', fps, known));
        continue;
      }
      if (st.fingerprint !== pt.fingerprint) {
        reports.push(
          uncomparable(pt.table, `registration fingerprints differ: publisher ${pt.fingerprint}, subscriber ${st.fingerprint}`, fps, known),
        );
        continue;
      }
      if (!pt.swept || !st.swept) {
        reports.push(
          uncomparable(
            pt.table,
            `the first sweep has not finished on the ${pt.swept ? 'subscriber' : 'publisher'}; run syncguard drain`,
            fps,
            known,
          ),
        );
        continue;
      }
      const { inspect, equalBuckets } = rangesToInspect(pt, st, width);
      const parts: TableComparison[] = [];
      if (inspect.length > 0) {
        const t = parseTableName(pt.table);
        const pd = await readDetail(pub, t, width, { ranges: inspect }, pt.fingerprint);
        const sd = await readDetail(sub, t, width, { ranges: inspect }, st.fingerprint);
        parts.push(compareTable(pd, sd));
      }
      const hot = longDirty(pt, st, opts.liveAfterMs ?? 60_000);
      if (hot.length > 0) {
        parts.push(await compareLive(pub, sub, pt.table, hot));
        liveBuckets.set(pt.table, new Set(hot));
      }
      reports.push(tableReport(pt.table, fps, parts, equalBuckets));
      const first = parts.flatMap((x) => x.mismatches);
      if (first.length > 0) rounds.push({ table: pt.table, first, second: new Map() });
    }
    await p.end();
    pubOpen = false;
    await s.end();
    subOpen = false;

    // Round 2, for candidates only
    let lsn = p.value.lsn;
    let barrierMs = barrier.waitedMs;
    const second: TableRounds[] = [];
    if (rounds.length > 0) {
      await drainBriefly(pub, drainMs);
      const pubValues = new Map<string, Awaited<ReturnType<typeof readDetail>>>();
      const pubLive = new Map<string, Map<string, typeof EMPTY>>();
      const liveOf = (table: string) => liveList(liveBuckets, table);
      for (const r of rounds) {
        pubValues.set(r.table, await readDetail(pub, parseTableName(r.table), width, { buckets: r.first.map((m) => m.bucket) }, ''));
        pubLive.set(r.table, await liveValues(pub, r.table, liveOf(r.table)));
      }
      const b2 = await waitForBarrier(pub, sub, timeoutMs);
      if (!b2.ok) return incomplete(b2.failure, reports);
      lsn = b2.lsn;
      barrierMs += b2.waitedMs;
      await drainBriefly(sub, drainMs);
      for (const r of rounds) {
        const pv = pubValues.get(r.table);
        const buckets = { buckets: r.first.map((m) => m.bucket) };
        const sv = await readDetail(sub, parseTableName(r.table), width, buckets, '');
        // The publisher once more: a write committed there after its read, and applied on the
        // subscriber before the subscriber's read, would otherwise pass for divergence (a row
        // toggled back and forth). Such a write leaves a dirty mark or a new value here.
        const pAfter = await readDetail(pub, parseTableName(r.table), width, buckets, '');
        const again = new Map<string, { publisher: typeof EMPTY; subscriber: typeof EMPTY; clean: boolean }>();
        const hot = liveOf(r.table);
        if (hot.length > 0) {
          const pl = pubLive.get(r.table) ?? new Map();
          const sl = await liveValues(sub, r.table, hot);
          const pl2 = await liveValues(pub, r.table, hot);
          for (const b of hot) {
            const a = pl.get(b) ?? EMPTY;
            again.set(b, { publisher: a, subscriber: sl.get(b) ?? EMPTY, clean: sameValue(a, pl2.get(b) ?? EMPTY) });
          }
        }
        for (const m of r.first) {
          if (again.has(m.bucket)) continue; // compared live
          const a = pv?.buckets.get(m.bucket);
          const b = sv.buckets.get(m.bucket);
          const a2 = pAfter.buckets.get(m.bucket);
          const stable = !pAfter.dirty.has(m.bucket) && a2 !== null && sameValue(a2 ?? EMPTY, a ?? EMPTY);
          const clean = !(pv?.dirty.has(m.bucket) ?? true) && !sv.dirty.has(m.bucket) && a !== null && b !== null && stable;
          again.set(m.bucket, { publisher: a ?? EMPTY, subscriber: b ?? EMPTY, clean });
        }
        second.push({ ...r, second: again });
      }
    }
    const report = decideReport(reports, second, warnings, opts);
    return { ...report, parity, localWrites: local.recent, verifiedLsn: lsn, durationMs: Date.now() - started, barrierMs };
  } finally {
    if (pubOpen) await pub.query('ROLLBACK').catch(() => {});
    if (subOpen) await sub.query('ROLLBACK').catch(() => {});
  }
}

/** The live-compared buckets of a table. */
function liveList(live: ReadonlyMap<string, ReadonlySet<string>>, table: string): string[] {
  return [...(live.get(table) ?? [])];
}

/** Parity findings; best effort: a failure (a table locked by DDL, say) becomes a finding. */
async function parityOf(pub: Client, sub: Client): Promise<Finding[]> {
  const read = async (c: Client) => (await c.query<{ p: ParityInfo[] }>('SELECT syncguard.parity_info() AS p')).rows[0]?.p ?? [];
  try {
    return parityFindings(await read(pub), await read(sub));
  } catch (err) {
    return [{ table: '*', level: 'warning', message: `parity checks could not run: ${err instanceof Error ? err.message : String(err)}` }];
  }
}

async function localWrites(sub: Client, table: QualifiedName | undefined): Promise<{ count: number; recent: LocalWrite[] }> {
  const { rows } = await sub.query<{ w: { count: number; recent: LocalWrite[] } }>('SELECT syncguard.local_writes(100) AS w');
  const w = rows[0]?.w ?? { count: 0, recent: [] };
  if (table === undefined) return { count: Number(w.count), recent: w.recent };
  const recent = w.recent.filter((x) => x.table === name(table));
  return { count: recent.length, recent };
}

function decideReport(
  tables: readonly TableReport[],
  rounds: readonly TableRounds[],
  warnings: readonly string[],
  opts: VerifyOptions,
  barrierFailure?: string,
): Omit<VerifyReport, 'verifiedLsn' | 'durationMs' | 'barrierMs' | 'localWrites' | 'parity'> {
  const confirmation = confirm(rounds);
  const coveragePct = overallCoverage(tables);
  const verdict = decide({
    ...(barrierFailure !== undefined ? { barrierFailure } : {}),
    coveragePct,
    minCoveragePct: opts.minCoveragePct ?? 95,
    confirmation,
    uncomparableTables: tables.filter((t) => t.state === 'uncomparable').map((t) => `${t.table} (${t.reason})`),
  });
  return {
    status: verdict.status,
    reasons: verdict.reasons,
    coveragePct,
    tables,
    mismatches: confirmation.confirmed.map((m) => mismatchReport(m.table, m)),
    candidates: confirmation.candidates.map((m) => ({ ...mismatchReport(m.table, m), why: m.why })),
    warnings,
  };
}
