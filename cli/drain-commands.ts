// `syncguard drain` and `syncguard status`: one node at a time.

import type { Command } from 'commander';
import { type DrainSummary, MAX_DRAIN_WORKERS } from '../functions/core/drain.js';
import { DrainError } from '../functions/core/errors.js';
import { tableFromText } from '../functions/core/identifiers.js';
import { TIME } from '../functions/core/time-limits.js';
import type { Client } from '../functions/db/connect.js';
import { Deadline } from '../functions/db/deadline.js';
import { requireStatus, unmonitoredTables } from '../functions/db/status.js';
import { drainWithWorkers } from '../functions/flows/drain.js';
import { type Out, withClients } from './clients.js';
import { MAX_SECONDS, nodeDsn, nodeLabel, positiveNumber, workerCount } from './options.js';
import { drainReporter } from './progress.js';

const age = (ms: number | null): string => (ms === null ? '-' : ms < 1000 ? `${ms} ms` : `${(ms / 1000).toFixed(1)} s`);

function describe(s: DrainSummary): string[] {
  const verdict =
    s.stoppedBecause === 'empty'
      ? 'caught up: no dirty bucket left and every table swept'
      : s.stoppedBecause === 'time'
        ? `stopped at the time limit, NOT caught up: ${s.remainingDirty ?? 'an unknown number of'} dirty buckets left, sweep ${(s.sweepProgress * 100).toFixed(1)} %`
        : `stopped on an error: ${s.error}`;
  const lines = [
    `drain ${verdict}`,
    `  recomputed ${s.bucketsRecomputed} buckets (${s.rowsHashed} rows) in ${(s.durationMs / 1000).toFixed(1)} s; oldest dirty mark ${age(s.oldestDirtyAgeMs)}`,
  ];
  if (s.faultyTables.length > 0) {
    lines.push(`  skipped because of a recorded fault (syncguard verify says how to fix it): ${s.faultyTables.join(', ')}`);
  }
  if (s.stateLost) lines.push('  the node had lost its unlogged state (crash recovery or failover): a full sweep was started');
  else if (s.fullResweepStarted) lines.push('  a full re-sweep of every table was started');
  return lines;
}

export function drainCommand(program: Command, out: Out, warn: Out): void {
  program
    .command('drain')
    .description('recompute dirty buckets and advance the sweep on one node, within a time box')
    .option('--dsn <url>', 'the database (or SYNCGUARD_DSN)')
    .option('--max-seconds <n>', 'time box in seconds (up to one day)', positiveNumber('--max-seconds', MAX_SECONDS, ' seconds'), 60)
    .option('--full-resweep', 'start a full re-sweep of every registered table now')
    .option(
      '--workers <n>',
      `connections that drain at once, up to ${MAX_DRAIN_WORKERS} (dirty buckets and each table's sweep are shared out)`,
      workerCount('--workers'),
      1,
    )
    .option('--json', 'print only the summary, as one JSON object')
    .action(async (o: { dsn?: string; maxSeconds: number; fullResweep?: boolean; workers: number; json?: boolean }) => {
      // the box starts now: connecting is part of it, and nothing ends later than box + grace
      const deadline = Deadline.afterSeconds(o.maxSeconds);
      const dsn = nodeDsn(o.dsn);
      const label = nodeLabel(dsn);
      const workers = Array.from({ length: o.workers }, (): [string, string] => [dsn, label]);
      await withClients(
        workers,
        async (clients) => {
          const mode = o.json ? 'none' : process.stdout.isTTY ? 'tty' : 'lines';
          const reporter = drainReporter(mode, deadline.remainingMs(), out);
          let summary: DrainSummary;
          try {
            summary = await drainWithWorkers(clients, {
              deadline: deadline.orAtLeast(1),
              fullResweep: o.fullResweep === true,
              onProgress: (p) => reporter.update(p),
            });
          } finally {
            reporter.stop();
          }
          if (o.json) out(JSON.stringify(summary));
          else for (const l of describe(summary)) out(l);
          if (summary.stoppedBecause === 'error') {
            if (o.json) warn(`syncguard: drain stopped on an error: ${summary.error}`);
            throw new DrainError(`drain stopped on an error: ${summary.error}`);
          }
        },
        deadline.withGrace(TIME.drainGraceMs),
      );
    });
}

export function statusCommand(program: Command, out: Out): void {
  program
    .command('status')
    .description("show one node's catalogue and drain state per monitored table")
    .option('--dsn <url>', 'the database (or SYNCGUARD_DSN)')
    .option('--json', 'print one JSON object')
    .option(
      '--time-limit <seconds>',
      'the longest the command may take, connecting included',
      positiveNumber('--time-limit', MAX_SECONDS, ' seconds'),
      TIME.statusLimitSeconds,
    )
    .action(async (o: { dsn?: string; json?: boolean; timeLimit: number }) => {
      const deadline = Deadline.afterSeconds(o.timeLimit);
      const dsn = nodeDsn(o.dsn);
      const label = nodeLabel(dsn);
      await withClients(
        [[dsn, label]],
        async ([c]) => {
          const s = await requireStatus(c as Client, label);
          // the node's status names its tables as reports do: read once, here
          const registered = new Set(s.tables.map((t) => tableFromText(t.table)));
          const unmonitored = (await unmonitoredTables(c as Client, registered)).map((t) => t.text);
          if (o.json) {
            out(JSON.stringify({ ...s, unmonitored }));
            return;
          }
          out(`node ${s.nodeId}: ${s.remainingDirty} dirty buckets, oldest mark ${age(s.oldestDirtyAgeMs)}`);
          out(`  last full sweep started ${s.lastFullSweepAt ?? 'never'}`);
          if (s.stateLostCount > 0) out(`  unlogged state lost ${s.stateLostCount} time(s), last at ${s.stateLostAt}; re-swept since`);
          if (!s.stateIntact) out('  unlogged state is missing now (crash recovery or failover): the next drain re-sweeps');
          const allTables = s.allTablesPublications ?? [];
          if (allTables.length > 0)
            out(
              `  publishes FOR ALL TABLES (${allTables.join(', ')}): drains keep their state in unlogged tables, which it does not replicate; install, register and unregister write syncguard's logged tables only after checking that each subscription's owner may apply them`,
            );
          for (const t of s.tables.filter((x) => x.fault !== null)) out(`  ${t.table}: not drained, ${t.fault}`);
          for (const t of s.tables.filter((x) => typeof x.hashProblem === 'string')) out(`  ${t.table}: warning: ${t.hashProblem}`);
          for (const t of s.tables) {
            const change = t.partitions?.lastChange;
            if (change)
              out(
                `  ${t.table}: partitions changed (seen ${change.at}; added: ${change.added.join(', ') || 'none'}; removed: ${change.removed.join(', ') || 'none'}); its catalogue was rebuilt from the table`,
              );
          }
          for (const t of unmonitored)
            out(`  warning: ${t} is published but not monitored; register it: syncguard register --table ${t} (or --all)`);
          const rows = s.tables.map((t) => [
            t.table,
            t.role,
            t.scheme,
            String(t.buckets),
            String(t.dirtyBuckets),
            age(t.oldestDirtyAgeMs),
            `${(t.sweepProgress * 100).toFixed(1)} %${t.sweepPass !== null && t.sweepPass > 1 ? ` (pass ${t.sweepPass})` : ''}`,
            t.lastSweepFinishedAt ?? '-',
            t.fingerprint,
          ]);
          const head = ['table', 'role', 'scheme', 'buckets', 'dirty', 'oldest dirty', 'sweep', 'last sweep finished', 'fingerprint'];
          const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
          for (const r of [head, ...rows])
            out(
              r
                .map((v, i) => v.padEnd(widths[i] ?? 0))
                .join('  ')
                .trimEnd(),
            );
        },
        deadline,
      );
    });
}
