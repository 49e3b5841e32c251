// `syncguard inspect`: the rows behind one diverged bucket, compared at one replication position.
// Values are printed because the user asked for them; they never go to a log.

import type { Command } from 'commander';
import { parseTableName } from '../functions/core/identifiers.js';
import type { Client } from '../functions/db/connect.js';
import { type Inspection, inspectBucket } from '../functions/flows/inspect.js';
import { type Out, withClients } from './clients.js';
import { pairDsns } from './options.js';

const show = (v: string | null) => (v === null ? 'NULL' : JSON.stringify(v.length > 200 ? `${v.slice(0, 200)}...` : v));

export function inspectLines(r: Inspection): string[] {
  const lines = [
    `inspect ${r.table.text} bucket ${r.bucket}: ${r.rowsChecked.publisher} rows on the publisher, ${r.rowsChecked.subscriber} on the subscriber, compared at publisher LSN ${r.lsn}; ${r.diffs.length} difference${r.diffs.length === 1 ? '' : 's'}`,
  ];
  for (const d of r.diffs) {
    lines.push(`  ${d.kind} ${d.key}`);
    for (const c of d.columns) {
      lines.push(
        d.kind === 'changed'
          ? `    ${c.name}: publisher ${show(c.publisher)}, subscriber ${show(c.subscriber)}`
          : `    ${c.name}: ${show(d.kind === 'missing_on_subscriber' ? c.publisher : c.subscriber)}`,
      );
    }
  }
  return lines;
}

export function inspectCommand(program: Command, out: Out): void {
  program
    .command('inspect')
    .description('the rows that differ in one bucket, both sides read at one replication position')
    .requiredOption('--table <schema.table>', 'the table')
    .requiredOption('--bucket <n>', 'the bucket (as verify reports it)')
    .option('--publisher-dsn <url>', 'publisher database (or SYNCGUARD_PUBLISHER_DSN)')
    .option('--subscriber-dsn <url>', 'subscriber database (or SYNCGUARD_SUBSCRIBER_DSN)')
    .option('--json', 'print one JSON object: table, bucket, lsn, rowsChecked, diffs[] of kind, key, columns')
    .action(async (o: { table: string; bucket: string; publisherDsn?: string; subscriberDsn?: string; json?: boolean }) => {
      const table = parseTableName(o.table);
      const { publisher, subscriber } = pairDsns(o);
      await withClients(
        [
          [publisher, 'publisher'],
          [subscriber, 'subscriber'],
        ],
        async ([p, s]) => {
          const r = await inspectBucket(p as Client, s as Client, table, o.bucket);
          if (o.json) {
            const { table: t, bucket, lsn, rowsChecked, diffs, durationMs } = r;
            out(JSON.stringify({ table: t.text, bucket, lsn, rowsChecked, diffs, durationMs }));
          } else for (const l of inspectLines(r)) out(l);
        },
      );
    });
}
