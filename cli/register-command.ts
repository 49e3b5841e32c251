// `syncguard register`: monitor one table (--table), or every table of the subscriber's
// publications that exists on both sides (--all, optionally --publication and --exclude), one
// line per table. Registering a table again with the same settings changes nothing.
// Exit codes: 0, or 1 when --all refused a table (the others are registered), 2 on an error.

import { type Command, Option } from 'commander';
import { BUCKET_SCHEMES, type BucketScheme } from '../functions/core/buckets.js';
import { InputError } from '../functions/core/errors.js';
import { DEFAULT_HASH_VERSION, type HashVersion } from '../functions/core/hashing.js';
import { columnText, parseColumnList, parseTableName } from '../functions/core/identifiers.js';
import type { RegistrationConfig } from '../functions/core/registration.js';
import type { Client } from '../functions/db/connect.js';
import { registerAll, registerOnPair } from '../functions/flows/pair-setup.js';
import { type Out, withClients } from './clients.js';
import { hashVersionOption, pairDsns, positiveInt } from './options.js';

const layoutOf = (c: RegistrationConfig) =>
  `${c.keyColumns.length === 0 ? 'no key (rows compared as a multiset)' : `key (${c.keyColumns.map(columnText).join(', ')})`}, ${c.scheme} buckets, ${c.scheme === 'int' ? `${c.bucketWidth} keys per bucket` : `${c.bucketCount} bucket${c.bucketCount === 1 ? '' : 's'}`}`;

interface RegisterFlags {
  table?: string;
  all?: boolean;
  refresh?: boolean;
  publication?: string;
  exclude: string[];
  publisherDsn?: string;
  subscriberDsn?: string;
  bucketSize?: number;
  columns?: string;
  bucketScheme?: BucketScheme;
  hashVersion?: HashVersion;
}

export function registerCommand(program: Command, out: Out, setExit: (code: number) => void): void {
  program
    .command('register')
    .description(
      'monitor a table on a pair (--table), or every published table (--all): choose key, buckets and columns, install the triggers',
    )
    .option('--table <schema.table>', 'the table (schema defaults to public)')
    .option('--all', "every table of the subscriber's publications that exists on both sides")
    .option('--refresh', 'with --table: register it again with the columns it has now, after DDL on both sides (new fingerprint, re-sweep)')
    .option('--publication <name>', 'with --all: only this publication')
    .option(
      '--exclude <pattern>',
      'with --all: leave out tables matching schema.table (or table), * for any text; repeatable',
      (v: string, prev: string[]) => [...prev, v],
      [],
    )
    .option('--publisher-dsn <url>', 'publisher database (or SYNCGUARD_PUBLISHER_DSN)')
    .option('--subscriber-dsn <url>', 'subscriber database (or SYNCGUARD_SUBSCRIBER_DSN)')
    .option('--bucket-size <n>', 'rows per bucket (keys per bucket for integer keys)', positiveInt('--bucket-size'))
    .option('--columns <a,b,...>', 'with --table: hash only these columns (the key is always included)')
    .addOption(new Option('--bucket-scheme <scheme>', 'with --table: override the bucket scheme').choices([...BUCKET_SCHEMES]))
    .option(
      '--hash-version <n>',
      `canonical encoding for tables registered now (default ${DEFAULT_HASH_VERSION}; tables registered before keep theirs); with --refresh, upgrades the table to it (docs/hashing.md)`,
      hashVersionOption('--hash-version'),
    )
    .action(async (o: RegisterFlags) => {
      if (o.table !== undefined && o.all === true)
        throw new InputError('give --table schema.table or --all, not both: --all registers every published table');
      if (o.table === undefined && o.all !== true) throw new InputError('give --table schema.table, or --all');
      if (o.all && (o.columns !== undefined || o.bucketScheme !== undefined)) {
        throw new InputError('--columns and --bucket-scheme apply to one table; register such tables with --table');
      }
      if (!o.all && (o.publication !== undefined || o.exclude.length > 0))
        throw new InputError('--publication and --exclude go with --all');
      const { publisher, subscriber } = pairDsns(o);
      await withClients(
        [
          [publisher, 'publisher'],
          [subscriber, 'subscriber'],
        ],
        async ([p, s]) => {
          if (o.all) {
            const r = await registerAll(p as Client, s as Client, {
              ...(o.publication !== undefined ? { publication: o.publication } : {}),
              exclude: o.exclude,
              ...(o.bucketSize !== undefined ? { bucketSize: o.bucketSize } : {}),
              ...(o.hashVersion !== undefined ? { hashVersion: o.hashVersion } : {}),
              onTable: (t) =>
                out(
                  t.outcome === 'refused' ? `${t.table}: refused: ${t.reason}` : `${t.table}: ${t.outcome} (${layoutOf(t.result.config)})`,
                ),
            });
            const n = (k: string) => r.outcomes.filter((x) => x.outcome === k).length;
            out(`${n('registered')} registered, ${n('already registered')} already registered, ${n('refused')} refused`);
            for (const note of r.probeNotes) out(`probes: ${note}`);
            if (n('registered') > 0) out('run `syncguard drain` on both nodes to compute the initial hashes');
            if (n('refused') > 0) setExit(1);
            return;
          }
          const columns = o.columns === undefined ? undefined : parseColumnList(o.columns);
          const table = parseTableName(o.table as string);
          const r = await registerOnPair(p as Client, s as Client, {
            table,
            ...(o.bucketSize !== undefined ? { bucketSize: o.bucketSize } : {}),
            ...(columns !== undefined ? { columns } : {}),
            ...(o.bucketScheme !== undefined ? { scheme: o.bucketScheme } : {}),
            ...(o.hashVersion !== undefined ? { hashVersion: o.hashVersion } : {}),
            ...(o.refresh ? { refresh: true } : {}),
          });
          const c = r.config;
          if (r.alreadyRegistered) {
            out(`${table.text} is already registered on both nodes (fingerprint ${c.fingerprint}); nothing changed`);
            for (const note of r.notes) out(`  note: ${note}`);
            return;
          }
          out(`registered ${table.text}: ${layoutOf(c)}`);
          out(`  hashed columns (${c.columns.length}): ${c.columns.join(', ')}`);
          out(`  hash version ${c.hashVersion}, fingerprint ${c.fingerprint}, publications ${c.publications.join(', ')}`);
          for (const note of r.notes) out(`  note: ${note}`);
          out('  run `syncguard drain` on both nodes to compute the initial hashes');
        },
      );
    });
}
