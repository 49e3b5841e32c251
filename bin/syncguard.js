#!/usr/bin/env node
// The syncguard CLI. Its code is TypeScript compiled to dist/ by `npm run build`, which the
// package's `prepare` script runs on `npm ci`.
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

const main = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(fileURLToPath(main))) {
  process.stderr.write('syncguard: not built; run `npm run build` in the repository root\n');
  process.exit(2);
}
// `syncguard status | head -1`: the reader went away. Stop writing quietly; the exit code stays
// the command's own (1 would read as "diverged").
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (err) => {
    if (err.code !== 'EPIPE') throw err;
  });
}
const { run } = await import(main.href);
process.exitCode = await run(process.argv);
