// A verification of a pair (docs/verification.md):
//   1. drain both sides' dirty buckets of the tables verified (nothing else), briefly;
//   2. barrier: a marker probe through each subscription, committed before the publisher's snapshot
//      (its answer means the subscriber applied everything the snapshot saw); the slot barrier
//      for tables probes cannot reach;
//   3. compare the catalogues (flows/verify-compare.ts): clean equal buckets are compared;
//   4. every candidate mismatch and every dirty or never-computed bucket is resolved by a probe
//      (flows/probes.ts): equal at the probe's replication position, or diverged, confirmed;
//   5. tables probes cannot reach fall back to a second catalogue round (flows/verify-rounds.ts).
// One time limit covers it all; core/verify-plan.ts splits it, and the core makes every decision.

import { InputError, SyncGuardError, TimeLimitError } from '../core/errors.js';
import type { TableRef } from '../core/identifiers.js';
import type { Finding } from '../core/parity.js';
import { DEFAULT_PROBE_BUDGET } from '../core/probe-plan.js';
import { type TableReport, uncomparable, type VerifyReport } from '../core/report.js';
import { TIME } from '../core/time-limits.js';
import type { Confirmed } from '../core/verdict.js';
import { laterLsn, probedTable, splitTimeLimit, twoRoundCandidates } from '../core/verify-plan.js';
import { localWriteText, localWriteWarning, probeSummary, type RunOutcome, verifyReport } from '../core/verify-report.js';
import { insertLsn, subscriptionsOf, unhealthy, waitForBarrier } from '../db/barrier.js';
import { readOverview, type TableSnapshot } from '../db/catalogue.js';
import { type Client, withinDeadline } from '../db/connect.js';
import { Deadline } from '../db/deadline.js';
import { drain } from '../db/drain.js';
import { cleanupProbes, sendMarker } from '../db/probe.js';
import { abandonSnapshot, beginSnapshot, endSnapshot } from '../db/snapshot.js';
import { nodeStatus, unmonitoredTables } from '../db/status.js';
import { localWrites, parityOf, registrationProblems, registrationRoles } from '../db/verify-context.js';
import { CheckedPair } from './pair.js';
import { probeReach } from './probe-route.js';
import { awaitAnswers, emptyStats, resolveByProbes } from './probes.js';
import { compareCatalogues } from './verify-compare.js';
import { secondRound } from './verify-rounds.js';

export interface VerifyOptions {
  readonly table?: TableRef;
  /** Below this coverage in any table the verdict is incomplete (default 100). */
  readonly minCoveragePct?: number;
  /** The end of the whole verification (default 60 s from the start); its time is split inside. */
  readonly deadline?: Deadline;
  /** The longest a probe may hold writers to its table back (default 25 ms). */
  readonly probeHoldMs?: number;
  /** Never probe: every table takes the two-round fallback (for comparison and tests). */
  readonly noProbes?: boolean;
  /**
   * Patterns (core/identifiers.ts TableRef.matches) of tables the subscription carries that are
   * left out of the verdict on purpose; any other such table that is not registered makes the
   * result incomplete.
   */
  readonly exclude?: readonly string[];
}

const NO_FINGERPRINTS = { publisher: null, subscriber: null };

/** Reads a side's catalogue overview in a REPEATABLE READ, read-only transaction left open, so later reads see the same snapshot. */
async function openSnapshot(c: Client): Promise<Map<string, TableSnapshot>> {
  await beginSnapshot(c);
  return new Map((await readOverview(c)).map((t) => [t.table, t]));
}

/**
 * The DSNs given the wrong way round: every registration on the "publisher" was made for a
 * subscriber and every one on the "subscriber" for a publisher. Said as such, since the per-table
 * advice (re-register) would be wrong: run with the DSNs swapped back.
 */
async function refuseSwapped({ pub, sub }: CheckedPair): Promise<void> {
  const [p, s] = [await registrationRoles(pub), await registrationRoles(sub)];
  if (p.length === 1 && p[0] === 'subscriber' && s.length === 1 && s[0] === 'publisher')
    throw new InputError(
      'the publisher and subscriber DSNs are swapped: the database given as the publisher holds only subscriber registrations, and the one given as the subscriber only publisher registrations; run verify with --publisher-dsn and --subscriber-dsn the other way round (do not re-register)',
    );
}

export async function verifyPair(pub: Client, sub: Client, opts: VerifyOptions = {}): Promise<VerifyReport> {
  const started = Date.now();
  const end = opts.deadline ?? Deadline.after(TIME.defaultLimitMs, started);
  const limitMs = end.remainingMs(started);
  if (!(limitMs >= TIME.minLimitMs)) throw new TimeLimitError(`verify needs a time limit of at least 1 s, got ${limitMs} ms`);
  // every query ends by the time limit (plus a grace for the report): a frozen node or a
  // partition ends the run, naming the node, however many queries were in flight
  return withinDeadline([pub, sub], end.withGrace(TIME.verifyGraceMs), async () =>
    verifyWithin(await CheckedPair.open(pub, sub), opts, started, end, limitMs),
  );
}

async function verifyWithin(
  pair: CheckedPair,
  opts: VerifyOptions,
  started: number,
  end: Deadline,
  limitMs: number,
): Promise<VerifyReport> {
  const { pub, sub } = pair;
  const plan = splitTimeLimit(limitMs);
  const deadline = end.less(plan.marginMs);
  const barrierEnd = () => deadline.within(plan.barrierMs);
  await refuseSwapped(pair);

  // What is compared, and how: probes where they reach, two rounds elsewhere
  const { tables, problems, schemaDrift } = await registrationProblems(pub, sub, opts.table);
  const drift = [...schemaDrift].map(
    ([t, cols]) =>
      `${t.text}: column${cols.length === 1 ? '' : 's'} ${cols.join(', ')} dropped on the subscriber only, so it no longer holds the publisher's data: add ${cols.length === 1 ? 'it' : 'them'} back on the subscriber (ALTER TABLE ... ADD COLUMN), then resynchronise the table`,
  );
  if (opts.table !== undefined && tables.length === 0) {
    throw new InputError(`table ${opts.table.text} is not registered on the publisher or the subscriber`);
  }
  const comparable = tables.filter((t) => problems.get(t)?.length === 0);
  const local = await localWrites(sub, opts.table);
  const routes = await probeReach(sub, comparable);
  const probeable = new Map<TableRef, string>();
  const fallback: TableRef[] = [];
  const unreachable: Finding[] = [];
  for (const t of comparable) {
    const r = routes.reach.get(t);
    if (r?.ok === true && opts.noProbes !== true) probeable.set(t, r.subscription);
    else fallback.push(t);
    if (r?.ok === false) {
      const message = `probes cannot reach it (${r.reason}); verified in two rounds instead, which cannot settle buckets written continuously`;
      unreachable.push({ table: t.text, level: 'warning', message });
    }
  }
  const parity = [...(await parityOf(pub, sub)), ...unreachable].filter((f) => opts.table === undefined || f.table === opts.table.text);
  const stats = emptyStats();
  const published = opts.table === undefined ? await unmonitoredTables(sub, new Set(tables)) : [];
  const isExcluded = (t: TableRef) => (opts.exclude ?? []).some((p) => t.matches(p));
  const excludedTables = published.filter(isExcluded).map((t) => t.text);
  const unmonitored = published.filter((t) => !isExcluded(t)).map((t) => t.text);
  const finish = (run: RunOutcome): VerifyReport =>
    verifyReport(run, {
      minCoveragePct: opts.minCoveragePct ?? 100,
      schemaDrift: drift,
      warnings: [
        ...localWriteWarning(local.count),
        ...parity.filter((f) => f.level === 'warning').map((f) => `${f.table}: ${f.message}`),
        ...routes.warnings,
      ],
      ...(opts.table !== undefined ? { only: opts.table.text } : {}),
      unmonitored,
      excluded: excludedTables,
      parity,
      localWrites: local.groups,
      probes: probeSummary(stats),
      durationMs: Date.now() - started,
    });
  const notCompared = tables
    .filter((t) => !comparable.includes(t))
    .map((t) => uncomparable(t.text, (problems.get(t) ?? []).join('; '), NO_FINGERPRINTS, 0));
  if (tables.length === 0) {
    const none = 'no table is registered on either node; register tables with syncguard register';
    return finish({ tables: [], blocked: [none], lsn: null, barrierMs: 0 });
  }
  if (comparable.length === 0) return finish({ tables: notCompared, lsn: null, barrierMs: 0 });

  const drainSide = async (c: Client, label: string) => {
    const s = await drain(c, { deadline: deadline.within(plan.drainMs), resweepIntervalMs: null, only: comparable });
    if (s.stoppedBecause === 'error') throw new SyncGuardError(`the drain before reading the ${label} failed: ${s.error}`);
  };
  const pubStatus = await nodeStatus(pub);
  if (probeable.size > 0) await cleanupProbes(pub);

  // 1-2: drain, markers, the publisher's snapshot, barriers
  await drainSide(pub, 'publisher');
  // a subscription that cannot give a barrier (disabled, tables not ready, another publisher's) gets no marker
  const excluded = new Map<TableRef, string>();
  const probeSubs: string[] = [];
  for (const s of (await subscriptionsOf(sub, [...probeable.keys()])).subscriptions) {
    const why = await unhealthy(pub, s);
    if (why === null) probeSubs.push(s.name);
    else for (const t of s.tables) excluded.set(t, `no replication barrier: ${why}`);
  }
  const markerIds: string[] = [];
  for (const s of probeSubs) markerIds.push(await sendMarker(pub, routes.target, s));
  let open: Client[] = [];
  try {
    open = [pub];
    const pubRanges = await openSnapshot(pub);
    const lsn = await insertLsn(pub);
    let barrierMs = 0;
    if (markerIds.length > 0) {
      const marker = await awaitAnswers(sub, pubStatus.nodeId, markerIds, barrierEnd(), probeSubs);
      barrierMs += marker.waitedMs;
      if (marker.failure !== undefined) {
        for (const t of probeable.keys()) if (!excluded.has(t)) excluded.set(t, `no replication barrier: ${marker.failure}`);
      }
    }
    if (fallback.length > 0) {
      const b = await waitForBarrier(pub, sub, fallback, barrierEnd().remainingMs(), lsn, true);
      if (b.ok) barrierMs += b.waitedMs;
      for (const [t, why] of b.ok ? b.excluded : fallback.map((x) => [x, `no replication barrier: ${b.failure}`] as const))
        excluded.set(t, why);
    }
    if (excluded.size === comparable.length) {
      const failure = [...new Set(excluded.values())].join('; ').replace(/^no replication barrier: /, '');
      const reports = [...notCompared, ...comparable.map((t) => uncomparable(t.text, excluded.get(t) ?? '', NO_FINGERPRINTS, 0))];
      return finish({ tables: reports, lsn: null, barrierMs, barrierFailure: failure });
    }

    // 3: the subscriber's catalogue, and the comparison
    await drainSide(sub, 'subscriber');
    const late = (await registrationProblems(pub, sub, opts.table)).problems;
    open = [pub, sub];
    const subRanges = await openSnapshot(sub);
    const compared = await compareCatalogues(pub, sub, {
      tables: comparable,
      pubRanges,
      subRanges,
      problems: (t) => [...(late.get(t) ?? []), ...(excluded.has(t) ? [excluded.get(t) as string] : [])],
      probeable,
      pubStatus: pubStatus.tables,
    });
    for (const c of open) await endSnapshot(c);
    open = [];

    // 4: probes
    const reports: TableReport[] = [...notCompared, ...compared.reports];
    const probed: Confirmed[] = [];
    let lastLsn = lsn;
    if (compared.pending.size > 0) {
      const budget = { ...DEFAULT_PROBE_BUDGET, maxHoldMs: opts.probeHoldMs ?? DEFAULT_PROBE_BUDGET.maxHoldMs };
      const ctx = { origin: pubStatus.nodeId, target: routes.target, deadline, budget };
      const outcomes = await resolveByProbes(pub, sub, compared.requests, ctx, stats);
      for (const [table, p] of compared.pending) {
        const o = outcomes.get(table) ?? [];
        const deferred = twoRoundCandidates(p.cmp, o);
        if (deferred.length > 0) compared.first.push({ table, first: deferred });
        const { report, diverged } = probedTable(table.text, p.fingerprints, p.equalBuckets, p.cmp, o, deferred);
        reports.push(report);
        probed.push(...diverged.map((d) => ({ ...d, table: table.text, how: 'probe' as const })));
        const hidden = (report.leftOut ?? []).map((l) => l.bucket).filter((b) => p.localWrites.has(b));
        if (hidden.length > 0) compared.blocked.push(localWriteText(table.text, hidden, 'could not be probed'));
        for (const x of o) if (x.state !== 'left_out') lastLsn = laterLsn(lastLsn, x.lsn);
      }
    }
    const found = { tables: reports, probed, blocked: compared.blocked };
    if (compared.first.length === 0) return finish({ ...found, lsn: lastLsn, barrierMs });

    // 5: the fallback's second round
    const fingerprints = new Map(compared.first.map((r) => [r.table, pubRanges.get(r.table.text)?.fingerprint ?? '']));
    const second = await secondRound(pub, sub, compared.first, {
      barrierMs: Math.max(1, barrierEnd().remainingMs()),
      drain: drainSide,
      fingerprints,
      generations: compared.generations,
    });
    if (second.barrierFailure !== undefined) return finish({ ...found, lsn: null, barrierMs, barrierFailure: second.barrierFailure });
    return finish({ ...found, rounds: second.rounds, lsn: second.lsn, barrierMs: barrierMs + second.waitedMs });
  } finally {
    // a snapshot left open is ended by the server when the connection goes; never wait long for it
    for (const c of open) await abandonSnapshot(c, TIME.rollbackWaitMs);
  }
}
