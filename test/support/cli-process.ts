// The CLI as its own process, from the TypeScript sources (what bin/syncguard.js runs from dist/):
// `node --import tsx test/support/cli-process.ts <args>`. For tests of what only a real process
// shows: how long it takes to exit after its last output, and deadlines measured from its start.

import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

const isMain = process.argv[1] !== undefined && fileURLToPath(import.meta.url) === process.argv[1];

if (isMain) {
  const { run } = await import('../../cli/main.js');
  process.exitCode = await run(process.argv);
}

export interface ProcessRun {
  readonly code: number | null;
  readonly stdout: string;
  readonly stderr: string;
  /** From spawn to exit. */
  readonly totalMs: number;
  /** From the process's last output (stdout or stderr) to its exit. */
  readonly afterLastOutputMs: number;
  /** From spawn to the first output. */
  readonly firstOutputMs: number | null;
}

/** Runs the CLI as a child process and times it. */
export function cliProcess(args: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<ProcessRun> {
  const started = Date.now();
  const child = spawn(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url), ...args], {
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  let first: number | null = null;
  let last = started;
  const seen = () => {
    last = Date.now();
    first ??= last - started;
  };
  child.stdout.on('data', (d: Buffer) => {
    stdout += d.toString();
    seen();
  });
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    seen();
  });
  return new Promise((resolve, reject) => {
    child.on('error', reject);
    child.on('exit', (code) => {
      const end = Date.now();
      resolve({ code, stdout, stderr, totalMs: end - started, afterLastOutputMs: end - last, firstOutputMs: first });
    });
  });
}
