// A verification of a pair (docs/verification.md):
//   1. drain both sides' dirty buckets of the tables verified (nothing else), briefly;
//   2. barrier: a marker probe through each subscription (its answer means the subscriber applied
//      everything committed before it), the slot barrier for tables probes cannot reach;
//   3. compare the catalogues: range sums, then bucket detail where ranges differ or hold dirty
//      buckets; clean equal buckets are compared;
//   4. every candidate mismatch and every dirty or never-computed bucket is resolved by a probe:
//      equal at the probe's replication position, or diverged, confirmed in one step;
//   5. tables probes cannot reach fall back to a second catalogue round (flows/verify-rounds.ts).
// One time limit covers it all; core/verify-plan.ts splits it and makes every decision.

import { compareTable, type TableComparison } from '../core/compare.js';
import { InputError, SyncGuardError, TimeLimitError } from '../core/errors.js';
import { parseTableName, type QualifiedName, tableText } from '../core/identifiers.js';
import { DEFAULT_PROBE_BUDGET } from '../core/probe-plan.js';
import {
  leftOutText,
  mismatchReport,
  overallCoverage,
  type TableReport,
  tableReport,
  uncomparable,
  type VerifyReport,
} from '../core/report.js';
import { type Confirmed, confirm, decide, type TableRounds } from '../core/verdict.js';
import { laterLsn, meanRowsPerBucket, probedTable, probeTargets, rangesToInspect, splitTimeLimit } from '../core/verify-plan.js';
import { waitForBarrier } from '../db/barrier.js';
import { readDetail, readRanges, type TableSnapshot } from '../db/catalogue.js';
import { type Client, setQueryTimeout } from '../db/connect.js';
import { drain } from '../db/drain.js';
import { requireDistinct, requireInstalled } from '../db/install.js';
import { cleanupProbes, sendMarker } from '../db/probe.js';
import { nodeStatus } from '../db/status.js';
import { localWrites, parityOf, registrationProblems } from '../db/verify-context.js';
import { probeReach } from './probe-route.js';
import { awaitAnswers, emptyStats, type ProbeRequest, resolveByProbes } from './probes.js';
import { secondRound } from './verify-rounds.js';

export interface VerifyOptions {
  readonly table?: QualifiedName;
  /** Below this coverage in any table the verdict is incomplete (default 100). */
  readonly minCoveragePct?: number;
  /** The whole verification's time limit (default 60 s); it is split inside. */
  readonly timeLimitMs?: number;
  /** Buckets per range in the first, coarse comparison. */
  readonly rangeWidth?: bigint;
  /** The longest a probe may hold writers to its table back (default 25 ms). */
  readonly probeHoldMs?: number;
  /** Never probe: every table takes the two-round fallback (for comparison and tests). */
  readonly noProbes?: boolean;
}

const byTable = (a: TableReport, b: TableReport) => (a.table < b.table ? -1 : a.table > b.table ? 1 : 0);
const max = (xs: readonly number[]) => xs.reduce((a, b) => Math.max(a, b), 0);

/** In a REPEATABLE READ, read-only transaction, so later reads see the same snapshot. */
async function snapshot<T>(c: Client, fn: () => Promise<T>): Promise<T> {
  await c.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
  try {
    return await fn();
  } catch (err) {
    await c.query('ROLLBACK').catch(() => {});
    throw err;
  }
}

export async function verifyPair(pub: Client, sub: Client, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = Date.now();
  const limitMs = opts.timeLimitMs ?? 60_000;
  if (!(limitMs >= 1000)) throw new TimeLimitError(`verify needs a time limit of at least 1 s, got ${limitMs} ms`);
  const plan = splitTimeLimit(limitMs);
  const deadline = started + limitMs - plan.marginMs;
  const width = opts.rangeWidth ?? 64n;
  // every query ends by the time limit: a frozen node or a partition ends the run, naming the node
  for (const c of [pub, sub]) setQueryTimeout(c, limitMs + 5000);
  await requireInstalled(pub, 'publisher');
  await requireInstalled(sub, 'subscriber');
  await requireDistinct(pub, sub);

  const { tableNames, problems } = await registrationProblems(pub, sub, opts.table);
  if (opts.table !== undefined && tableNames.length === 0) {
    throw new InputError(`table ${tableText(opts.table)} is not registered on the publisher or the subscriber`);
  }
  const comparable = tableNames.filter((t) => problems.get(t)?.length === 0);
  const local = await localWrites(sub, opts.table);
  const parity = (await parityOf(pub, sub)).filter((f) => opts.table === undefined || f.table === tableText(opts.table));
  const routes = await probeReach(sub, comparable);
  const probeable = new Map<string, string>();
  const fallback: string[] = [];
  for (const t of comparable) {
    const r = routes.reach.get(t);
    if (r?.ok === true && opts.noProbes !== true) probeable.set(t, r.subscription);
    else fallback.push(t);
  }
  const warnings = [
    ...(local.count > 0
      ? [`${local.count} local (non-replicated) write(s) to monitored tables on the subscriber: the usual cause of drift`]
      : []),
    ...parity.filter((f) => f.level === 'warning').map((f) => `${f.table}: ${f.message}`),
    ...routes.warnings,
    ...fallback.flatMap((t) => {
      const r = routes.reach.get(t);
      return r?.ok === false
        ? [`${t}: probes cannot reach it (${r.reason}); verified in two rounds instead, which cannot settle buckets written continuously`]
        : [];
    }),
  ];
  const stats = emptyStats();
  const notCompared = tableNames
    .filter((t) => !comparable.includes(t))
    .map((t) => uncomparable(t, (problems.get(t) ?? []).join('; '), { publisher: null, subscriber: null }, 0));
  const finish = (parts: {
    tables: readonly TableReport[];
    rounds?: readonly TableRounds[];
    probed?: readonly Confirmed[];
    blocked?: readonly string[];
    lsn: string | null;
    barrierMs: number;
    barrierFailure?: string;
  }): VerifyReport => {
    const tables = [...parts.tables].sort(byTable);
    const confirmation = confirm(parts.rounds ?? [], parts.probed ?? []);
    const verdict = decide({
      ...(parts.barrierFailure !== undefined ? { barrierFailure: parts.barrierFailure } : {}),
      tableCoverage: tables.filter((t) => t.state === 'compared').map((t) => ({ table: t.table, coveragePct: t.coveragePct })),
      minCoveragePct: opts.minCoveragePct ?? 100,
      blocked: parts.blocked ?? [],
      leftOut: tables.flatMap((t) => leftOutText(t)),
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
      parity,
      localWrites: local.groups,
      verifiedLsn: parts.lsn,
      durationMs: Date.now() - started,
      barrierMs: parts.barrierMs,
      probes: {
        probes: stats.probes,
        answered: stats.answered,
        lockRetries: stats.lockRetries,
        maxLockWaitMs: max(stats.lockWaitMs),
        maxHoldMs: max(stats.holdMs),
        maxApplyMs: max(stats.applyMs),
      },
    };
  };
  if (tableNames.length === 0) {
    return finish({
      tables: [],
      blocked: ['no table is registered on either node; register tables with syncguard register'],
      lsn: null,
      barrierMs: 0,
    });
  }
  if (comparable.length === 0) return finish({ tables: notCompared, lsn: null, barrierMs: 0 });

  const only = comparable.map(parseTableName);
  const drainSide = async (c: Client, label: string) => {
    const s = await drain(c, { deadlineMs: Math.min(deadline, Date.now() + plan.drainMs), resweepIntervalMs: null, only });
    if (s.stoppedBecause === 'error') throw new SyncGuardError(`the drain before reading the ${label} failed: ${s.error}`);
  };
  const pubStatus = await nodeStatus(pub);
  if (probeable.size > 0) await cleanupProbes(pub);

  // 1-2: drain; a marker through each probe subscription, committed before the publisher's
  // snapshot opens, so its answer on the subscriber is a barrier for everything the snapshot saw
  await drainSide(pub, 'publisher');
  const probeSubs = [...new Set(probeable.values())];
  const barrierEnd = () => Math.min(deadline, Date.now() + plan.barrierMs);
  const markerIds: string[] = [];
  for (const s of probeSubs) markerIds.push(await sendMarker(pub, routes.target, s));
  let pubOpen = false;
  let subOpen = false;
  try {
    pubOpen = true;
    const pubRanges = await snapshot(pub, () => readRanges(pub, width));
    const lsn = (await pub.query<{ l: string }>('SELECT pg_current_wal_insert_lsn()::text AS l')).rows[0]?.l as string;
    const marker = markerIds.length === 0 ? null : await awaitAnswers(pub, sub, pubStatus.nodeId, markerIds, barrierEnd(), probeSubs);
    const excluded = new Map<string, string>();
    let barrierMs = marker?.waitedMs ?? 0;
    if (marker?.failure !== undefined) for (const t of probeable.keys()) excluded.set(t, `no replication barrier: ${marker.failure}`);
    if (fallback.length > 0) {
      const b = await waitForBarrier(pub, sub, fallback.map(parseTableName), barrierEnd() - Date.now(), lsn, true);
      if (!b.ok) for (const t of fallback) excluded.set(t, `no replication barrier: ${b.failure}`);
      else {
        barrierMs += b.waitedMs;
        for (const [t, why] of b.excluded) excluded.set(t, why);
      }
    }
    if (excluded.size === comparable.length) {
      const failure = [...new Set(excluded.values())].join('; ').replace(/^no replication barrier: /, '');
      return finish({
        tables: [
          ...notCompared,
          ...comparable.map((t) => uncomparable(t, excluded.get(t) ?? '', { publisher: null, subscriber: null }, 0)),
        ],
        lsn: null,
        barrierMs,
        barrierFailure: failure,
      });
    }

    // 3: the subscriber's catalogue, and the comparison
    await drainSide(sub, 'subscriber');
    const late = (await registrationProblems(pub, sub, opts.table)).problems;
    subOpen = true;
    const subRanges = await snapshot(sub, () => readRanges(sub, width));
    const pubByTable = new Map(pubRanges.map((t) => [t.table, t]));
    const subByTable = new Map(subRanges.map((t) => [t.table, t]));
    const reports: TableReport[] = [...notCompared];
    const requests: ProbeRequest[] = [];
    const pending = new Map<
      string,
      { cmp: TableComparison; equalBuckets: number; fps: TableReport['fingerprints']; local: ReadonlySet<string> }
    >();
    const first: TableRounds[] = [];
    const blocked: string[] = [];
    const generations = new Map<string, ReadonlyMap<string, string>>();
    for (const table of comparable) {
      const pt = pubByTable.get(table);
      const st = subByTable.get(table);
      const why = whyNotCompared(pt, st, [...(late.get(table) ?? []), ...(excluded.has(table) ? [excluded.get(table) as string] : [])]);
      const fps = { publisher: pt?.fingerprint ?? null, subscriber: st?.fingerprint ?? null };
      if (why !== null || pt === undefined || st === undefined) {
        const known = pt === undefined ? 0 : [...pt.ranges.values()].reduce((a, r) => a + r.buckets, 0) + pt.dirty.size;
        reports.push(uncomparable(table, why ?? 'the registration changed during verification; run verify again', fps, known));
        continue;
      }
      const { inspect, equalBuckets } = rangesToInspect(pt, st, width);
      const t = parseTableName(table);
      const pd = inspect.length > 0 ? await readDetail(pub, t, width, { ranges: inspect }) : null;
      const sd = inspect.length > 0 ? await readDetail(sub, t, width, { ranges: inspect }) : null;
      const cmp = pd !== null && sd !== null ? compareTable(pd, sd) : compareTable(EMPTY_SIDE(pt.fingerprint), EMPTY_SIDE(st.fingerprint));
      if (pd !== null) generations.set(table, pd.generations);
      const subscription = probeable.get(table);
      if (subscription !== undefined) {
        const rowsOf = (b: string) => ({ publisher: pd?.buckets.get(b)?.rows ?? null, subscriber: sd?.buckets.get(b)?.rows ?? null });
        const targets = probeTargets(cmp, rowsOf, meanRowsPerBucket(pt.ranges));
        const status = pubStatus.tables.find((x) => x.table === table);
        if (targets.length > 0) {
          requests.push({
            table,
            scheme: (status?.scheme ?? 'int') as ProbeRequest['scheme'],
            subscription,
            targets,
            tableRows: status?.rows ?? 0,
          });
        }
        pending.set(table, { cmp, equalBuckets, fps, local: st.localWrites });
        continue;
      }
      reports.push(tableReport(table, fps, [cmp], equalBuckets));
      const hidden = [...st.localWrites].filter((b) => cmp.skippedBuckets.has(b));
      if (hidden.length > 0) blocked.push(localWriteText(table, hidden, 'could not be compared (still dirty)'));
      if (cmp.mismatches.length > 0) first.push({ table, first: cmp.mismatches, second: new Map() });
    }
    await pub.query('COMMIT');
    pubOpen = false;
    await sub.query('COMMIT');
    subOpen = false;

    // 4: probes
    const probed: Confirmed[] = [];
    let lastLsn = lsn;
    if (pending.size > 0) {
      const outcomes = await resolveByProbes(
        pub,
        sub,
        requests,
        {
          origin: pubStatus.nodeId,
          target: routes.target,
          deadlineMs: deadline,
          budget: { ...DEFAULT_PROBE_BUDGET, maxHoldMs: opts.probeHoldMs ?? DEFAULT_PROBE_BUDGET.maxHoldMs },
        },
        stats,
      );
      for (const [table, p] of pending) {
        const o = outcomes.get(table) ?? [];
        const { report, diverged } = probedTable(table, p.fps, p.equalBuckets, p.cmp, o);
        reports.push(report);
        probed.push(...diverged.map((d) => ({ ...d, table, how: 'probe' as const })));
        const hidden = (report.leftOut ?? []).map((l) => l.bucket).filter((b) => p.local.has(b));
        if (hidden.length > 0) blocked.push(localWriteText(table, hidden, 'could not be probed'));
        for (const x of o) if (x.state !== 'left_out') lastLsn = laterLsn(lastLsn, x.lsn);
      }
    }

    // 5: the fallback's second round
    if (first.length === 0) return finish({ tables: reports, probed, blocked, lsn: lastLsn, barrierMs });
    const fingerprints = new Map(first.map((r) => [r.table, pubByTable.get(r.table)?.fingerprint ?? '']));
    const second = await secondRound(pub, sub, first, {
      width,
      barrierMs: Math.max(1, barrierEnd() - Date.now()),
      drain: drainSide,
      fingerprints,
      generations,
    });
    if (second.barrierFailure !== undefined) {
      return finish({ tables: reports, probed, blocked, lsn: null, barrierMs, barrierFailure: second.barrierFailure });
    }
    return finish({ tables: reports, rounds: second.rounds, probed, blocked, lsn: second.lsn, barrierMs: barrierMs + second.waitedMs });
  } finally {
    if (pubOpen) await pub.query('ROLLBACK').catch(() => {});
    if (subOpen) await sub.query('ROLLBACK').catch(() => {});
  }
}

/** A side with no detail read (every range was equal). */
const EMPTY_SIDE = (fingerprint: string) => ({ fingerprint, swept: true, buckets: new Map(), dirty: new Set<string>() });

function whyNotCompared(pt: TableSnapshot | undefined, st: TableSnapshot | undefined, found: readonly string[]): string | null {
  if (pt === undefined || st === undefined) return 'the registration changed during verification; run verify again';
  if (found.length > 0) return found.join('; ');
  if (st.fingerprint !== pt.fingerprint)
    return `registration fingerprints differ: publisher ${pt.fingerprint}, subscriber ${st.fingerprint}`;
  if (!pt.swept || !st.swept)
    return `the first sweep has not finished on the ${pt.swept ? 'subscriber' : 'publisher'}; run syncguard drain`;
  return null;
}

function localWriteText(table: string, buckets: readonly string[], what: string): string {
  const n = buckets.length;
  return `${table}: bucket${n === 1 ? '' : 's'} ${buckets.slice(0, 10).join(', ')} hold${n === 1 ? 's' : ''} local writes on the subscriber and ${what}`;
}
