// `syncguard plan`: inspect a bucket and print the reviewed repair as SQL; with a control plane,
// store it for approval (who made it: the control-plane database login, recorded by the server).

import type { Command } from 'commander';
import { parseTableName } from '../functions/core/identifiers.js';
import { DEFAULT_PLAN_CAP } from '../functions/core/repair-plan.js';
import type { Client } from '../functions/db/connect.js';
import { endpointOf, refuseNodeAsControl } from '../functions/db/control.js';
import { checkDsn } from '../functions/db/dsn.js';
import { storePlan } from '../functions/flows/plans.js';
import { type Plan, planBucket } from '../functions/flows/repair.js';
import { type Out, withClients } from './clients.js';
import { inspectLines } from './inspect-command.js';
import { pairDsns, positiveInt, positiveNumber } from './options.js';

export interface PlanFlags {
  table: string;
  bucket: string;
  publisherDsn?: string;
  subscriberDsn?: string;
  controlDsn?: string;
  pair?: string;
  maxRows: number;
  expiresIn: number;
  json?: boolean;
}

export function planLines(plan: Plan): string[] {
  return [
    `-- plan for ${plan.table.text} bucket ${plan.bucket}: ${plan.rowCount} change${plan.rowCount === 1 ? '' : 's'}, expires ${plan.expiresAt}, checksum ${plan.checksum}`,
    ...plan.sql.split('\n'),
  ];
}

export function planOptions(c: Command): Command {
  return c
    .option('--publisher-dsn <url>', 'publisher database (or SYNCGUARD_PUBLISHER_DSN)')
    .option('--subscriber-dsn <url>', 'subscriber database (or SYNCGUARD_SUBSCRIBER_DSN)')
    .option('--pair <name>', "the pair's name in the control plane (default: the two endpoints)")
    .option('--max-rows <n>', 'refuse a plan that changes more rows', positiveInt('--max-rows'), DEFAULT_PLAN_CAP)
    .option('--expires-in <hours>', 'the plan expires after this long', positiveNumber('--expires-in', 24 * 30, ' hours'), 24);
}

export function planCommand(program: Command, out: Out): void {
  planOptions(
    program
      .command('plan')
      .description('inspect a bucket and plan its repair (SQL to review); with --control-dsn, store it for approval')
      .requiredOption('--table <schema.table>', 'the table')
      .requiredOption('--bucket <n>', 'the bucket (as verify reports it)')
      .option('--control-dsn <url>', 'store the plan in this control plane (or SYNCGUARD_CONTROL_DSN)')
      .option('--json', 'print one JSON object'),
  ).action(async (o: PlanFlags) => {
    const table = parseTableName(o.table);
    const { publisher, subscriber } = pairDsns(o);
    const controlDsn = o.controlDsn ?? process.env.SYNCGUARD_CONTROL_DSN;
    const pair = o.pair ?? `${endpointOf(publisher)} -> ${endpointOf(subscriber)}`;
    await withClients(
      [
        [publisher, 'publisher'],
        [subscriber, 'subscriber'],
        ...(controlDsn === undefined ? [] : ([[checkDsn(controlDsn, 'control-plane'), 'control-plane database']] as [string, string][])),
      ],
      async ([p, s, c]) => {
        if (c !== undefined && controlDsn !== undefined) await refuseNodeAsControl(c, endpointOf(controlDsn));
        const { inspection, plan } = await planBucket(p as Client, s as Client, table, o.bucket, {
          pair,
          maxRows: o.maxRows,
          expiresInMs: o.expiresIn * 3600_000,
        });
        // a stored plan's checksum is the control plane's (computed from the plan as stored)
        const stored = c === undefined ? null : await storePlan(c, plan);
        const shown = stored === null ? plan : { ...plan, checksum: stored.checksum };
        if (o.json) {
          out(JSON.stringify({ planId: stored?.planId ?? null, ...shown, diffs: inspection.diffs }));
          return;
        }
        for (const l of inspectLines(inspection)) out(l);
        for (const l of planLines(shown)) out(l);
        out(
          stored === null
            ? 'not stored (no --control-dsn): apply it with syncguard repair --table ... --bucket ... --yes'
            : `stored as plan ${stored.planId}; approve it with syncguard approve --plan ${stored.planId}, then apply it with syncguard repair --plan ${stored.planId}`,
        );
      },
    );
  });
}
