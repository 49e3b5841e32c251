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
// The AWS SDK prints an 8-line NodeVersionSupportWarning on every run under Node < 22 (its
// releases after January 2027 will need Node 22). syncguard supports Node 20 (package.json
// engines) and pins its SDK release, so the notice is nothing to act on at each command. The
// SDK's own switch silences that one warning and no other; a value the user set is kept.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
const { run } = await import(main.href);
process.exitCode = await run(process.argv);
