// Writes sql/schema/node.dump and sql/schema/control.dump: the schema a fresh install creates on
// PostgreSQL 18 (dev/schema-dump.ts says what is in them). Run it after changing anything in sql/
// and commit the result; schema-dump.test.ts fails while the committed dumps differ from an install.
//   npm run schema:dump
import { writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCluster, superuserDsn } from '../dev/cluster.js';
import { plainNode } from '../dev/plain-node.js';
import { freshInstallDumps } from '../dev/schema-dump.js';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const cluster = await startCluster('schema-dump');
try {
  const admin = await plainNode(superuserDsn(cluster));
  try {
    const dsn = (db: string, user: string, pw: string) => `postgres://${user}:${pw}@${cluster.host}:${cluster.port}/${db}`;
    const dumps = await freshInstallDumps(admin, dsn, 'script');
    writeFileSync(join(root, 'sql/schema/node.dump'), dumps.syncguard);
    writeFileSync(join(root, 'sql/schema/control.dump'), dumps.syncguard_control);
    console.log(
      `wrote sql/schema/node.dump (${dumps.syncguard.split('\n').length} lines) and sql/schema/control.dump (${dumps.syncguard_control.split('\n').length} lines)`,
    );
  } finally {
    await admin.close();
  }
} finally {
  await cluster.stop();
}
