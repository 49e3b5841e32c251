// `syncguard verify`: the verdict for a pair. Exit codes: 0 in sync, 1 diverged, 3 incomplete,
// 2 error.

import { userInfo } from 'node:os';
import type { Command } from 'commander';
import { parseTableName } from '../functions/core/identifiers.js';
import type { VerifyReport } from '../functions/core/report.js';
import { TIME } from '../functions/core/time-limits.js';
import type { Client } from '../functions/db/connect.js';
import { endpointOf, refuseNodeAsControl } from '../functions/db/control.js';
import { Deadline } from '../functions/db/deadline.js';
import { checkDsn } from '../functions/db/dsn.js';
import { type RunRequest, recordVerifyRun, verifyRun } from '../functions/flows/verify-run.js';
import { type Out, withClients } from './clients.js';
import { MAX_SECONDS, pairDsns, percent, positiveNumber } from './options.js';

export const VERIFY_EXIT = { in_sync: 0, diverged: 1, incomplete: 3 } as const;

const rowsText = (n: string): string => `${n} row${n === '1' ? '' : 's'}`;

function describe(r: VerifyReport): string[] {
  const n = r.tables.length;
  const scope =
    r.only !== null
      ? ` for ${r.only} only (--table)`
      : ` for ${n} table${n === 1 ? '' : 's'}${r.excluded.length > 0 ? ` (left out by --exclude: ${r.excluded.join(', ')})` : ''}`;
  const head =
    r.status === 'in_sync'
      ? `IN SYNC as of publisher LSN ${r.verifiedLsn}${scope}`
      : r.status === 'diverged'
        ? `DIVERGED (confirmed; publisher LSN ${r.verifiedLsn})`
        : `INCOMPLETE: no verdict (${r.reasons.join('; ')})`;
  const probes =
    r.probes.probes > 0
      ? `; ${r.probes.probes} probe${r.probes.probes === 1 ? '' : 's'}, writers held back ${r.probes.maxHoldMs.toFixed(1)} ms at most`
      : '';
  const lines = [
    `verify: ${head}; coverage ${(Math.floor(r.coveragePct * 100) / 100).toFixed(2)} % in ${(r.durationMs / 1000).toFixed(1)} s${probes}`,
  ];
  if (r.status === 'diverged' && r.reasons.length > 0) lines.push(`  ${r.reasons.join('; ')}`);
  const rows = r.tables.map((t) => [
    t.table,
    String(t.bucketsCompared),
    String(t.bucketsProbed ?? 0),
    String(t.bucketsSkipped),
    `${(Math.floor(t.coveragePct * 10) / 10).toFixed(1)} %`,
    t.reason ?? (t.method === 'two_rounds' ? 'two rounds: probes cannot reach it (see warnings)' : ''),
  ]);
  const header = ['table', 'compared', 'probed', 'skipped', 'coverage', 'note'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((x) => (x[i] ?? '').length)));
  for (const x of [header, ...rows])
    lines.push(
      `  ${x
        .map((v, i) => v.padEnd(widths[i] ?? 0))
        .join('  ')
        .trimEnd()}`,
    );
  for (const m of r.mismatches) {
    const how = m.how === 'probe' ? `by a probe at publisher LSN ${m.lsn}` : 'in two rounds';
    lines.push(
      `  mismatch ${m.table} bucket ${m.bucket}: publisher ${rowsText(m.publisher.rows)}, subscriber ${rowsText(m.subscriber.rows)} (hash sums differ; confirmed ${how})`,
    );
  }
  for (const c of r.candidates) lines.push(`  candidate ${c.table} bucket ${c.bucket}: ${c.why}`);
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  for (const f of r.parity.filter((x) => x.level === 'info')) lines.push(`  info: ${f.table}: ${f.message}`);
  for (const l of r.localWrites.slice(0, 10)) {
    const apps = l.applicationNames.filter((a) => a !== '').join(', ') || 'no application_name';
    lines.push(
      `  local writes: ${l.table} by ${l.role} (${apps}): ${l.writes} in ${l.buckets} bucket${l.buckets === 1 ? '' : 's'}, ${l.first} to ${l.last}`,
    );
  }
  return lines;
}

export function verifyCommand(program: Command, out: Out, warn: Out, setExit: (code: number) => void): void {
  program
    .command('verify')
    .description('compare the catalogues of a pair behind a replication barrier: in sync, diverged or incomplete')
    .option('--publisher-dsn <url>', 'publisher database (or SYNCGUARD_PUBLISHER_DSN)')
    .option('--subscriber-dsn <url>', 'subscriber database (or SYNCGUARD_SUBSCRIBER_DSN)')
    .option('--table <schema.table>', 'verify only this table')
    .option('--min-coverage <pct>', 'below this coverage in any table the result is incomplete (0-100)', percent('--min-coverage'), 100)
    .option(
      '--time-limit <seconds>',
      'the longest the whole verification may take (drains, barriers and probes share it)',
      positiveNumber('--time-limit', MAX_SECONDS, ' seconds'),
      60,
    )
    .option('--probe-hold <ms>', 'the longest a probe may hold writers to a table back', positiveNumber('--probe-hold', 10_000, ' ms'), 25)
    .option('--control-dsn <url>', 'record the run in this control-plane database (or SYNCGUARD_CONTROL_DSN)')
    .option('--pair <name>', "the pair's name in the control plane (default: the two endpoints)")
    .option(
      '--exclude <pattern>',
      'leave a published table that is not monitored out of the verdict on purpose (schema.table or table, * for any text); repeatable',
      (v: string, prev: string[]) => [...prev, v],
      [],
    )
    .option('--json', 'print one JSON object')
    .action(async (o: VerifyFlags) => {
      // the time limit starts now: connecting is part of it, and nothing ends later than limit + grace
      const deadline = Deadline.afterSeconds(o.timeLimit);
      const table = o.table === undefined ? undefined : parseTableName(o.table);
      const { publisher, subscriber } = pairDsns(o);
      await withClients(
        [
          [publisher, 'publisher'],
          [subscriber, 'subscriber'],
        ],
        async ([p, s]) => {
          const run = await verifyRun(p as Client, s as Client, {
            ...(table !== undefined ? { table } : {}),
            minCoveragePct: o.minCoverage,
            // a verification that starts late (slow connections) still gets its least time limit;
            // the connections' deadline (the limit plus the grace) bounds its every query anyway
            deadline: deadline.orAtLeast(TIME.minLimitMs),
            probeHoldMs: o.probeHold,
            exclude: o.exclude,
          });
          const { report } = run;
          if (o.json) out(JSON.stringify(report));
          else for (const l of describe(report)) out(l);
          setExit(VERIFY_EXIT[report.status]);
          const controlDsn = o.controlDsn ?? process.env.SYNCGUARD_CONTROL_DSN;
          if (controlDsn === undefined) return;
          const request: RunRequest = {
            pair: o.pair ?? `${endpointOf(publisher)} -> ${endpointOf(subscriber)}`,
            publisher: endpointOf(publisher),
            subscriber: endpointOf(subscriber),
            requestedBy: userInfo().username,
            via: 'cli',
            ...(o.table !== undefined ? { table: o.table } : {}),
          };
          // the verdict stands even when it cannot be recorded: warn and keep the exit code
          try {
            await withClients([[checkDsn(controlDsn, 'control-plane'), 'control-plane database']], async ([c]) => {
              await refuseNodeAsControl(c as Client, endpointOf(controlDsn));
              const recorded = await recordVerifyRun(c as Client, request, run);
              if (!o.json) out(`  recorded as run ${recorded.runId} in the control plane`);
            });
          } catch (err) {
            warn(
              `syncguard: warning: the verdict was not recorded in the control plane: ${err instanceof Error ? err.message : String(err)}`,
            );
          }
        },
        deadline.withGrace(TIME.verifyGraceMs),
      );
    });
}

interface VerifyFlags {
  publisherDsn?: string;
  subscriberDsn?: string;
  table?: string;
  minCoverage: number;
  timeLimit: number;
  probeHold: number;
  controlDsn?: string;
  pair?: string;
  exclude: string[];
  json?: boolean;
}
