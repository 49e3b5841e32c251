// The syncguard command line. A thin adapter: it parses options, opens connections, calls the
// core and db modules, and prints for humans. Exit codes: 0 success, 2 any error (one line on
// stderr, never a stack trace for a user error, never a password).

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Command, CommanderError } from 'commander';
import { InputError, SyncGuardError } from '../functions/core/errors.js';
import { parseTableName } from '../functions/core/identifiers.js';
import type { Client } from '../functions/db/connect.js';
import { endpointOf, refuseNodeAsControl, syncguardSchemas } from '../functions/db/control.js';
import { checkDsn, redactSecrets, secretsOf } from '../functions/db/dsn.js';
import { type InstallResult, installControl, installSchema, requireNoAllTablesSubscriber } from '../functions/db/install.js';
import { nodeOfError } from '../functions/db/node.js';
import { SQLSTATE } from '../functions/db/sqlstate.js';
import { requireApplicable } from '../functions/flows/apply-rights.js';
import { installOnPair } from '../functions/flows/pair-setup.js';
import { unregisterTable } from '../functions/flows/register.js';
import { approveCommand } from './approve-command.js';
import { type Out, withClients } from './clients.js';
import { drainCommand, statusCommand } from './drain-commands.js';
import { inspectCommand } from './inspect-command.js';
import { pairDsns, singleDsn } from './options.js';
import { planCommand } from './plan-command.js';
import { registerCommand } from './register-command.js';
import { repairCommand } from './repair-command.js';
import { verifyCommand } from './verify-command.js';

/** The version in the package.json above this module (in the repository, or in dist/). */
function packageVersion(): string {
  for (let dir = dirname(fileURLToPath(import.meta.url)); dir !== dirname(dir); dir = dirname(dir)) {
    try {
      const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'pg-sync-guard' && pkg.version !== undefined) return pkg.version;
    } catch {
      // not here: look one level up
    }
  }
  return 'unknown';
}

export const EXIT_OK = 0;
export const EXIT_ERROR = 2;

/** Who owns syncguard.probe, and what to run when install could not give them to their own role. */
function describeApplyOwner(label: string, r: InstallResult, out: Out, warn: Out): void {
  const a = r.applyOwner;
  if (a?.adopted) out(`${label}: syncguard.probe belongs to role ${a.role} (docs/permissions.md, "The subscription's owner")`);
  else if (a?.unsafe !== undefined) {
    warn(
      `warning: ${label}: role ${a.role} exists but is not safe to own syncguard.probe (${a.unsafe}); it was not given the table; an administrator drops or fixes that role, then runs syncguard install again`,
    );
  } else if (a !== null && label !== 'publisher') {
    warn(
      `warning: ${label}: syncguard.probe stays the installer's, so a subscription owned by another role (not a superuser) gets no probes; ` +
        `to let one apply them, an administrator runs: ${a.setup.join('; ')}; then run syncguard install again (docs/permissions.md, "The subscription's owner")`,
    );
  }
}

function describeInstall(label: string, r: InstallResult, out: Out, warn: Out): void {
  out(
    r.applied.length === 0
      ? `${label}: syncguard schema is up to date (version ${r.toVersion})`
      : `${label}: syncguard schema ${r.fromVersion === 0 ? 'installed' : `upgraded from version ${r.fromVersion}`} to version ${r.toVersion}`,
  );
  for (const pub of r.allTablesPublications) {
    warn(
      `warning: publication ${pub} on the ${label} is FOR ALL TABLES, so it also publishes syncguard's configuration tables ` +
        '(syncguard.migration, syncguard.registration, syncguard.node_state). Their rows are keyed by node, so copies on a subscriber are ignored and never ' +
        'overwrite its own; but install syncguard on every subscriber of it first, or their apply worker stops on a missing table. ' +
        'To avoid the traffic, publish only your tables (FOR TABLE ... or FOR TABLES IN SCHEMA ...).',
    );
  }
}

/** A node's schema never goes into the control plane's database. */
async function refuseControlDatabase(c: Client, flag: string): Promise<void> {
  if ((await syncguardSchemas(c)).control)
    throw new InputError(
      `the ${flag} database is the control-plane database (it holds syncguard_control); install the node schema in the publisher and subscriber databases`,
    );
}

export function buildProgram(out: Out, warn: Out, setExit: (code: number) => void = () => {}): Command {
  const program = new Command('syncguard')
    .description("Prove a logical-replication subscriber holds exactly its publisher's data.")
    .version(packageVersion(), '-V, --version', 'print the syncguard version')
    .showHelpAfterError(false)
    .exitOverride()
    .configureOutput({ writeOut: (s) => out(s.trimEnd()), writeErr: (s) => warn(s.trimEnd()) });

  program
    .command('install')
    .description('create or upgrade the syncguard schema on one node (--dsn) or on a pair')
    .option('--dsn <url>', 'one database')
    .option('--publisher-dsn <url>', 'publisher database (or SYNCGUARD_PUBLISHER_DSN)')
    .option('--subscriber-dsn <url>', 'subscriber database (or SYNCGUARD_SUBSCRIBER_DSN)')
    .option('--control-dsn <url>', 'the control-plane database (its own database, not a node)')
    .action(async (o: { dsn?: string; publisherDsn?: string; subscriberDsn?: string; controlDsn?: string }) => {
      if (o.controlDsn !== undefined) {
        const dsn = checkDsn(o.controlDsn, 'control-plane');
        await withClients([[dsn, 'control-plane database']], async ([c]) => {
          await refuseNodeAsControl(c as Client, endpointOf(dsn));
          const r = await installControl(c as Client);
          out(
            r.applied.length === 0
              ? `control plane: schema is up to date (version ${r.toVersion})`
              : `control plane: schema ${r.fromVersion === 0 ? 'installed' : `upgraded from version ${r.fromVersion}`} to version ${r.toVersion}`,
          );
        });
        if (o.dsn === undefined && o.publisherDsn === undefined && o.subscriberDsn === undefined) return;
      }
      if (o.dsn !== undefined) {
        const dsn = singleDsn(o.dsn);
        await withClients([[dsn, 'database']], async ([c]) => {
          await refuseControlDatabase(c as Client, '--dsn');
          await requireNoAllTablesSubscriber(c as Client);
          const r = await installSchema(c as Client);
          describeInstall('database', r, out, warn);
          describeApplyOwner('database', r, out, warn);
        });
        return;
      }
      const { publisher, subscriber } = pairDsns(o);
      await withClients(
        [
          [publisher, 'publisher'],
          [subscriber, 'subscriber'],
        ],
        async ([p, s]) => {
          await refuseControlDatabase(p as Client, '--publisher-dsn');
          await refuseControlDatabase(s as Client, '--subscriber-dsn');
          const r = await installOnPair(p as Client, s as Client);
          describeInstall('subscriber', r.subscriber, out, warn);
          describeInstall('publisher', r.publisher, out, warn);
          describeApplyOwner('subscriber', r.subscriber, out, warn);
          for (const n of r.probeNotes) out(`probes: ${n}`);
          if (r.reidentified) out("subscriber: it had the publisher's node id (a physical clone?); it was given a new one");
        },
      );
    });

  program
    .command('unregister')
    .description('stop monitoring a table on a pair: remove its triggers and state')
    .requiredOption('--table <schema.table>', 'the table (schema defaults to public)')
    .option('--publisher-dsn <url>', 'publisher database (or SYNCGUARD_PUBLISHER_DSN)')
    .option('--subscriber-dsn <url>', 'subscriber database (or SYNCGUARD_SUBSCRIBER_DSN)')
    .action(async (o: { table: string; publisherDsn?: string; subscriberDsn?: string }) => {
      const table = parseTableName(o.table);
      const { publisher, subscriber } = pairDsns(o);
      await withClients(
        [
          [publisher, 'publisher'],
          [subscriber, 'subscriber'],
        ],
        async ([p, s]) => {
          await requireApplicable(s as Client, ['registration', 'node_state'], 'syncguard unregister');
          const r = await unregisterTable(p as Client, s as Client, table);
          out(
            `unregistered ${table.schema}.${table.table} (publisher: ${r.publisher ? 'removed' : 'was not registered'}, subscriber: ${r.subscriber ? 'removed' : 'was not registered'})`,
          );
        },
      );
    });

  drainCommand(program, out, warn);
  statusCommand(program, out);
  registerCommand(program, out, setExit);
  verifyCommand(program, out, warn, setExit);
  inspectCommand(program, out);
  planCommand(program, out);
  approveCommand(program, out);
  repairCommand(program, out, setExit);
  return program;
}

/** Every secret the command line or the DSN variables carry; no output line may show one. */
function secretsIn(argv: readonly string[]): string[] {
  const dsns = [
    ...argv,
    ...['SYNCGUARD_DSN', 'SYNCGUARD_PUBLISHER_DSN', 'SYNCGUARD_SUBSCRIBER_DSN', 'SYNCGUARD_CONTROL_DSN'].map((k) => process.env[k] ?? ''),
  ];
  return [...dsns.flatMap(secretsOf), ...(process.env.PGPASSWORD ? [process.env.PGPASSWORD] : [])];
}

/** Runs the CLI; returns the exit code. */
export async function run(
  argv: readonly string[],
  rawOut: Out = (l) => process.stdout.write(`${l}\n`),
  rawWarn: Out = (l) => process.stderr.write(`${l}\n`),
): Promise<number> {
  const secrets = secretsIn(argv);
  const out: Out = (l) => rawOut(redactSecrets(l, secrets));
  const warn: Out = (l) => rawWarn(redactSecrets(l, secrets));
  let exit = EXIT_OK;
  const program = buildProgram(out, warn, (code) => {
    exit = code;
  });
  try {
    await program.parseAsync([...argv]);
    return exit;
  } catch (err) {
    if (err instanceof CommanderError) {
      // Help and version exit 0; commander has already printed its one-line error otherwise.
      return err.exitCode === 0 ? EXIT_OK : EXIT_ERROR;
    }
    if (err instanceof SyncGuardError) {
      warn(`syncguard: ${err.message}`);
      return EXIT_ERROR;
    }
    const pgErr = err as { code?: string; message?: string };
    if (typeof pgErr.code === 'string' && typeof pgErr.message === 'string') {
      // A PostgreSQL error (our SQL functions raise specific messages): one line, no stack, and
      // the node it came from ("permission denied for function schema_version" alone names none)
      const node = nodeOfError(err);
      const advice =
        pgErr.code === SQLSTATE.queryCanceled && /statement timeout/i.test(pgErr.message)
          ? `; a statement_timeout set for this session (the DSN's options=-c statement_timeout=..., PGOPTIONS, or the role's or database's settings) ended the query: remove or raise it${node === undefined ? '' : ` for the ${node}`} and run the command again`
          : '';
      warn(`syncguard: ${node === undefined ? '' : `the ${node} said: `}${pgErr.message}${advice}`);
      return EXIT_ERROR;
    }
    warn(`syncguard: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}`);
    return EXIT_ERROR;
  }
}
