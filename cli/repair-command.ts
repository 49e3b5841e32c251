// `syncguard repair`: apply an approved plan (--plan ID, with a control plane), or inspect, plan
// and apply one bucket in one go (--table, --bucket, --yes). Without --yes, or with --dry-run, it
// prints the plan and changes nothing. Exit 0 when every change landed and the bucket is equal,
// 1 when some change was skipped or the bucket still differs, 2 on an error.

import type { Command } from 'commander';
import { InputError } from '../functions/core/errors.js';
import { parseTableName } from '../functions/core/identifiers.js';
import type { Client } from '../functions/db/connect.js';
import { endpointOf, refuseNodeAsControl } from '../functions/db/control.js';
import { checkDsn } from '../functions/db/dsn.js';
import { applyStoredPlan } from '../functions/flows/plans.js';
import { applyPlan, planBucket, type RepairOutcome } from '../functions/flows/repair.js';
import { type Out, withClients } from './clients.js';
import { inspectLines } from './inspect-command.js';
import { pairDsns, positiveInt } from './options.js';
import { type PlanFlags, planLines, planOptions } from './plan-command.js';

function outcomeLines(r: RepairOutcome): string[] {
  const counts = Object.entries(r.counts)
    .map(([k, n]) => `${n} ${k.replaceAll('_', ' ')}`)
    .join(', ');
  const lines = [
    `repair ${r.table} bucket ${r.bucket}: ${counts || 'nothing to do'}; bucket ${r.bucketAfter === 'equal' ? 'now equal' : r.bucketAfter === 'differs' ? 'STILL DIFFERS' : 'not checked'}` +
      ` (writers held back ${r.holdMs.toFixed(1)} ms, applied on the subscriber in ${r.applyMs ?? '-'} ms)`,
  ];
  for (const c of r.changes.filter((x) => x.outcome !== 'applied' && x.outcome !== 'already_equal')) {
    lines.push(`  ${c.key}: ${c.outcome.replaceAll('_', ' ')}${c.error !== undefined ? ` (${c.error})` : ''}`);
  }
  return lines;
}

const exitOf = (r: RepairOutcome) =>
  r.bucketAfter === 'equal' && r.changes.every((c) => c.outcome === 'applied' || c.outcome === 'already_equal') ? 0 : 1;

export function repairCommand(program: Command, out: Out, setExit: (code: number) => void): void {
  planOptions(
    program
      .command('repair')
      .description('apply an approved plan (--plan) or repair one bucket (--table, --bucket, --yes) through the subscription')
      .option('--plan <id>', 'an approved plan in the control plane', positiveInt('--plan'))
      .option('--control-dsn <url>', 'the control plane (or SYNCGUARD_CONTROL_DSN)')
      .option('--table <schema.table>', 'without a plan: the table')
      .option('--bucket <n>', 'without a plan: the bucket')
      .option('--yes', 'without a plan: apply what was planned (otherwise only print it)')
      .option('--dry-run', 'print the plan and change nothing')
      .option('--json', 'print one JSON object'),
  ).action(async (o: PlanFlags & { plan?: number; yes?: boolean; dryRun?: boolean; table?: string; bucket?: string }) => {
    const { publisher, subscriber } = pairDsns(o);
    const print = (r: RepairOutcome) => {
      if (o.json) out(JSON.stringify(r));
      else for (const l of outcomeLines(r)) out(l);
      setExit(exitOf(r));
    };
    if (o.plan !== undefined) {
      const dsn = o.controlDsn ?? process.env.SYNCGUARD_CONTROL_DSN;
      if (dsn === undefined) throw new InputError('--plan needs the control plane: pass --control-dsn or set SYNCGUARD_CONTROL_DSN');
      if (o.dryRun) throw new InputError('--dry-run applies to --table/--bucket; a stored plan is reviewed with syncguard plan');
      await withClients(
        [
          [publisher, 'publisher'],
          [subscriber, 'subscriber'],
          [checkDsn(dsn, 'control-plane'), 'control-plane database'],
        ],
        async ([p, s, c]) => {
          await refuseNodeAsControl(c as Client, endpointOf(dsn));
          print(await applyStoredPlan(c as Client, p as Client, s as Client, { planId: o.plan as number }));
        },
      );
      return;
    }
    if (o.table === undefined || o.bucket === undefined) throw new InputError('give --plan ID, or --table and --bucket');
    const table = parseTableName(o.table);
    await withClients(
      [
        [publisher, 'publisher'],
        [subscriber, 'subscriber'],
      ],
      async ([p, s]) => {
        const pair = o.pair ?? `${endpointOf(publisher)} -> ${endpointOf(subscriber)}`;
        const { inspection, plan } = await planBucket(p as Client, s as Client, table, o.bucket as string, {
          pair,
          maxRows: o.maxRows,
          expiresInMs: o.expiresIn * 3600_000,
        });
        if (o.dryRun || !o.yes || plan.rowCount === 0) {
          if (!o.json) for (const l of [...inspectLines(inspection), ...planLines(plan)]) out(l);
          else out(JSON.stringify({ applied: false, ...plan }));
          if (!o.json && plan.rowCount > 0) out(o.dryRun ? 'dry run: nothing changed' : 'nothing changed: add --yes to apply this plan');
          return;
        }
        print(await applyPlan(p as Client, s as Client, { id: `cli:${plan.checksum.slice(7, 19)}`, ...plan }));
      },
    );
  });
}
