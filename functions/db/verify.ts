// A verification of a pair (DESIGN.md "A verdict that does not cry wolf"):
//   round 1: drain the publisher; read its catalogue sums (REPEATABLE READ), then L; wait until
//            the subscriber confirmed L; drain the subscriber and read its sums; compare ranges,
//            and bucket detail only where ranges differ or hold dirty buckets;
//   round 2: for the candidates only, the same again; confirm those that persist with the
//            publisher bucket unchanged (same generation: no recompute in between).
// Every table registered on either side is reported; one whose registration no longer holds
// (core/health.ts, read again after the drains) is not comparable, never "in sync". The minimum
// coverage applies per table, and a skipped bucket with local writes keeps the verdict open.
// The comparison and the verdict are pure (core/compare.ts, core/verdict.ts); this module reads.

import { type BucketValue, compareTable, type DetailCatalogue, EMPTY, rangeOf, sameValue, type TableComparison } from '../core/compare.js';
import { InputError, SyncGuardError } from '../core/errors.js';
import { parseTableName, type QualifiedName, tableText } from '../core/identifiers.js';
import { mismatchReport, overallCoverage, type TableReport, tableReport, uncomparable, type VerifyReport } from '../core/report.js';
import { confirm, decide, secondLook, type TableRounds } from '../core/verdict.js';
import { waitForBarrier } from './barrier.js';
import { readDetail, readRanges, type TableSnapshot } from './catalogue.js';
import { type Client, setQueryTimeout } from './connect.js';
import { drain } from './drain.js';
import { requireDistinct, requireInstalled } from './install.js';
import { compareLive, liveValues, longDirty, skippedLocalWrites } from './live.js';
import { localWrites, parityOf, registrationProblems } from './verify-context.js';

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
  /** Client-side deadline of each query (default: the larger of barrier timeout and drain box, plus 5 s). */
  readonly queryTimeoutMs?: number;
}

const byTable = (a: TableReport, b: TableReport) => (a.table < b.table ? -1 : a.table > b.table ? 1 : 0);

async function drainBriefly(c: Client, ms: number, label: string): Promise<void> {
  const s = await drain(c, { deadlineMs: Date.now() + ms, resweepIntervalMs: null });
  if (s.stoppedBecause === 'error') throw new SyncGuardError(`the drain before reading the ${label} failed: ${s.error}`);
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
  // a client-side deadline on every query: a frozen node or a partition ends the run, naming the node
  const perQueryMs = opts.queryTimeoutMs ?? Math.max(timeoutMs, drainMs) + 5000;
  for (const c of [pub, sub]) setQueryTimeout(c, perQueryMs);
  await requireInstalled(pub, 'publisher');
  await requireInstalled(sub, 'subscriber');
  await requireDistinct(pub, sub);

  // Every table registered on either side is reported; one that cannot be compared says why.
  // Read again after both drains: a drain records a fault of a table it could not recompute.
  const { tableNames, problems } = await registrationProblems(pub, sub, opts.table);
  if (opts.table !== undefined && tableNames.length === 0) {
    throw new InputError(`table ${tableText(opts.table)} is not registered on the publisher or the subscriber`);
  }
  const comparable = tableNames.filter((t) => problems.get(t)?.length === 0);

  const local = await localWrites(sub, opts.table);
  const parity = (await parityOf(pub, sub)).filter((f) => opts.table === undefined || f.table === tableText(opts.table));
  const warnings = [
    ...(local.count > 0
      ? [`${local.count} local (non-replicated) write(s) to monitored tables on the subscriber: the usual cause of drift`]
      : []),
    ...parity.filter((f) => f.level === 'warning').map((f) => `${f.table}: ${f.message}`),
  ];
  const finish = (
    tables: readonly TableReport[],
    second: readonly TableRounds[],
    blocked: readonly string[],
    end: { lsn: string | null; barrierMs: number; barrierFailure?: string },
  ): VerifyReport => ({
    ...decideReport(tables, second, blocked, warnings, opts, end.barrierFailure),
    parity,
    localWrites: local.groups,
    verifiedLsn: end.lsn,
    durationMs: Date.now() - started,
    barrierMs: end.barrierMs,
  });
  if (tableNames.length === 0) {
    // nothing checked is not "in sync"
    return finish([], [], ['no table is registered on either node; register tables with syncguard register'], { lsn: null, barrierMs: 0 });
  }
  const notCompared = tableNames
    .filter((t) => !comparable.includes(t))
    .map((t) => uncomparable(t, (problems.get(t) ?? []).join('; '), { publisher: null, subscriber: null }, 0));

  // Round 1
  await drainBriefly(pub, drainMs, 'publisher');
  const p = await snapshot(pub, async () => {
    const all = await readRanges(pub, width);
    const lsn = (await pub.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]?.l as string;
    return { all, lsn };
  });
  // open REPEATABLE READ transactions are ended on every way out
  let pubOpen = true;
  let subOpen = false;
  try {
    const barrierTables = comparable.map(parseTableName);
    const barrier =
      comparable.length === 0
        ? { ok: true as const, lsn: p.value.lsn, waitedMs: 0, excluded: new Map<string, string>() }
        : await waitForBarrier(pub, sub, barrierTables, timeoutMs, p.value.lsn, true);
    if (!barrier.ok) {
      const waiting = comparable.map((t) =>
        uncomparable(t, `no replication barrier: ${barrier.failure}`, { publisher: null, subscriber: null }, 0),
      );
      return finish([...notCompared, ...waiting].sort(byTable), [], [], { lsn: null, barrierMs: 0, barrierFailure: barrier.failure });
    }
    await drainBriefly(sub, drainMs, 'subscriber');
    const late = (await registrationProblems(pub, sub, opts.table)).problems;
    const s = await snapshot(sub, () => readRanges(sub, width));
    subOpen = true;
    const pubByTable = new Map(p.value.all.map((t) => [t.table, t]));
    const subByTable = new Map(s.value.map((t) => [t.table, t]));

    const reports: TableReport[] = [...notCompared];
    const rounds: TableRounds[] = [];
    const blocked: string[] = [];
    const firstGen = new Map<string, ReadonlyMap<string, string>>();
    const liveBuckets = new Map<string, Set<string>>();
    for (const table of comparable) {
      const pt = pubByTable.get(table);
      const st = subByTable.get(table);
      if (pt === undefined || st === undefined) {
        reports.push(
          uncomparable(table, 'the registration changed during verification; run verify again', { publisher: null, subscriber: null }, 0),
        );
        continue;
      }
      const fps = { publisher: pt.fingerprint, subscriber: st.fingerprint };
      const known = [...pt.ranges.values()].reduce((a, r) => a + r.buckets, 0) + pt.dirty.size;
      const noBarrier = barrier.excluded.get(table);
      const found = [...(late.get(table) ?? []), ...(noBarrier !== undefined ? [noBarrier] : [])];
      if (found.length > 0) {
        reports.push(uncomparable(table, found.join('; '), fps, known));
        continue;
      }
      if (st.fingerprint !== pt.fingerprint) {
        reports.push(
          uncomparable(table, `registration fingerprints differ: publisher ${pt.fingerprint}, subscriber ${st.fingerprint}`, fps, known),
        );
        continue;
      }
      if (!pt.swept || !st.swept) {
        reports.push(
          uncomparable(
            table,
            `the first sweep has not finished on the ${pt.swept ? 'subscriber' : 'publisher'}; run syncguard drain`,
            fps,
            known,
          ),
        );
        continue;
      }
      const { inspect, equalBuckets } = rangesToInspect(pt, st, width);
      const parts: TableComparison[] = [];
      const t = parseTableName(table);
      if (inspect.length > 0) {
        const pd = await readDetail(pub, t, width, { ranges: inspect });
        const sd = await readDetail(sub, t, width, { ranges: inspect });
        parts.push(compareTable(pd, sd));
        firstGen.set(table, pd.generations);
      }
      const hot = longDirty(pt, st, opts.liveAfterMs ?? 60_000);
      if (hot.length > 0) {
        parts.push(await compareLive(pub, sub, table, hot));
        liveBuckets.set(table, new Set(hot));
      }
      reports.push(tableReport(table, fps, parts, equalBuckets));
      const hidden = skippedLocalWrites(pt, st, liveBuckets.get(table) ?? new Set());
      if (hidden.length > 0) {
        blocked.push(
          `${table}: bucket${hidden.length === 1 ? '' : 's'} ${hidden.slice(0, 10).join(', ')} hold${hidden.length === 1 ? 's' : ''} local writes on the subscriber and could not be compared (still dirty)`,
        );
      }
      const first = parts.flatMap((x) => x.mismatches);
      if (first.length > 0) rounds.push({ table, first, second: new Map() });
    }
    await p.end();
    pubOpen = false;
    await s.end();
    subOpen = false;

    // Round 2, for candidates only
    if (rounds.length === 0) return finish(reports, [], blocked, { lsn: p.value.lsn, barrierMs: barrier.waitedMs });
    await drainBriefly(pub, drainMs, 'publisher');
    const candidateTables = rounds.map((r) => parseTableName(r.table));
    const pubValues = new Map<string, DetailCatalogue>();
    const pubLive = new Map<string, Map<string, BucketValue>>();
    for (const r of rounds) {
      pubValues.set(r.table, await readDetail(pub, parseTableName(r.table), width, { buckets: r.first.map((m) => m.bucket) }));
      pubLive.set(r.table, await liveValues(pub, r.table, liveList(liveBuckets, r.table)));
    }
    const b2 = await waitForBarrier(pub, sub, candidateTables, timeoutMs);
    if (!b2.ok) return finish(reports, [], blocked, { lsn: null, barrierMs: barrier.waitedMs, barrierFailure: b2.failure });
    await drainBriefly(sub, drainMs, 'subscriber');
    const second: TableRounds[] = [];
    for (const r of rounds) {
      const t = parseTableName(r.table);
      const buckets = { buckets: r.first.map((m) => m.bucket) };
      const pv = pubValues.get(r.table) as DetailCatalogue;
      const sv = await readDetail(sub, t, width, buckets);
      // The publisher once more: a write committed there after its read, and applied on the
      // subscriber before the subscriber's read, would otherwise pass for divergence (a row
      // toggled back and forth). Such a write leaves a dirty mark or a new generation here.
      const pAfter = await readDetail(pub, t, width, buckets);
      const fingerprint = pubByTable.get(r.table)?.fingerprint ?? '';
      const again = new Map<string, { publisher: BucketValue; subscriber: BucketValue; clean: boolean }>();
      const hot = liveList(liveBuckets, r.table);
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
        again.set(m.bucket, secondLook(m.bucket, fingerprint, firstGen.get(r.table), pv, sv, pAfter));
      }
      second.push({ ...r, second: again });
    }
    return finish(reports, second, blocked, { lsn: b2.lsn, barrierMs: barrier.waitedMs + b2.waitedMs });
  } finally {
    if (pubOpen) await pub.query('ROLLBACK').catch(() => {});
    if (subOpen) await sub.query('ROLLBACK').catch(() => {});
  }
}

/** The live-compared buckets of a table. */
function liveList(live: ReadonlyMap<string, ReadonlySet<string>>, table: string): string[] {
  return [...(live.get(table) ?? [])];
}

function decideReport(
  tables: readonly TableReport[],
  rounds: readonly TableRounds[],
  blocked: readonly string[],
  warnings: readonly string[],
  opts: VerifyOptions,
  barrierFailure?: string,
): Omit<VerifyReport, 'verifiedLsn' | 'durationMs' | 'barrierMs' | 'localWrites' | 'parity'> {
  const confirmation = confirm(rounds);
  const verdict = decide({
    ...(barrierFailure !== undefined ? { barrierFailure } : {}),
    tableCoverage: tables.filter((t) => t.state === 'compared').map((t) => ({ table: t.table, coveragePct: t.coveragePct })),
    minCoveragePct: opts.minCoveragePct ?? 95,
    blocked,
    confirmation,
    uncomparableTables: tables.filter((t) => t.state === 'uncomparable').map((t) => `${t.table} (${t.reason})`),
  });
  return {
    status: verdict.status,
    reasons: verdict.reasons,
    coveragePct: overallCoverage(tables),
    tables,
    mismatches: confirmation.confirmed.map((m) => mismatchReport(m.table, m)),
    candidates: confirmation.candidates.map((m) => ({ ...mismatchReport(m.table, m), why: m.why })),
    warnings,
  };
}
