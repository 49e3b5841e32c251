// The benchmark's workloads: each returns what it measured and changes nothing it does not own.

import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Pair } from '../dev/pair.js';
import { OWNER, OWNER_PASSWORD } from '../dev/pair.js';
import { plainNode } from '../dev/plain-node.js';

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The median of some runs (the mean of the middle two for an even count). */
export function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 === 1 ? (s[m] as number) : ((s[m - 1] as number) + (s[m] as number)) / 2;
}

export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return (performance.now() - t0) / 1000;
}

/** A realistic 10-column table. */
export const tableDdl = (name: string) => `CREATE TABLE ${name} (
  id bigint PRIMARY KEY, customer_id int NOT NULL, status text NOT NULL, amount numeric(12,2) NOT NULL,
  currency char(3) NOT NULL, created_at timestamptz NOT NULL, updated_at timestamptz, note text,
  flags int NOT NULL DEFAULT 0, payload jsonb)`;

export const fillSql = (name: string, rows: number) => `INSERT INTO ${name}
  SELECT i, ((i::bigint * 7919) % 100000)::int, (ARRAY['new','paid','shipped','returned'])[1 + i % 4], (i % 100000) / 7.0,
         'EUR', timestamptz '2024-01-01' + i * interval '1 second', NULL, 'order note number ' || i || ' for the customer',
         i % 16, jsonb_build_object('source', 'web', 'items', i % 9, 'coupon', CASE WHEN i % 5 = 0 THEN 'SPRING' END)
    FROM generate_series(1, ${rows}) i`;

export const updateSql = (name: string) => `UPDATE ${name} SET amount = amount + 1, updated_at = now(), flags = flags + 1`;

/** Seconds the subscriber needs to apply what the publisher wrote while its subscription was disabled. */
export async function catchUpSeconds(pair: Pair): Promise<number> {
  return timed(async () => {
    await pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} ENABLE`);
    await pair.catchUp(600_000);
  }).finally(() => pair.sub.query(`ALTER SUBSCRIPTION ${pair.name} DISABLE`));
}

/** Single-row updates per second by 4 clients for `seconds`: pgbench when installed, else a Node loop. */
export async function singleRowTps(pair: Pair, table: string, rows: number, seconds: number): Promise<{ tps: number; tool: string }> {
  const pgbench = '/usr/lib/postgresql/15/bin/pgbench';
  if (existsSync(pgbench)) {
    const dir = mkdtempSync(join(tmpdir(), 'sg-bench-'));
    try {
      const script = join(dir, 'update.sql');
      writeFileSync(script, `\\set id random(1, ${rows})\nUPDATE ${table} SET amount = amount + 1, updated_at = now() WHERE id = :id;\n`);
      const r = spawnSync(
        pgbench,
        [
          '-n',
          '-c',
          '4',
          '-j',
          '2',
          '-T',
          String(seconds),
          '-f',
          script,
          '-h',
          pair.publisher.host,
          '-p',
          String(pair.publisher.port),
          '-U',
          OWNER,
          pair.name,
        ],
        { encoding: 'utf8', env: { ...process.env, PGPASSWORD: OWNER_PASSWORD } },
      );
      const m = /tps = ([\d.]+) \(without initial connection time\)/.exec(r.stdout);
      if (m?.[1] === undefined) throw new Error(`pgbench failed: ${r.stderr || r.stdout}`);
      return { tps: Number(m[1]), tool: 'pgbench' };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const until = Date.now() + seconds * 1000;
  const counts = await Promise.all(
    [0, 1, 2, 3].map(async () => {
      const c = await plainNode(pair.publisherDsn);
      let n = 0;
      try {
        while (Date.now() < until) {
          await c.query(`UPDATE ${table} SET amount = amount + 1, updated_at = now() WHERE id = $1`, [
            1 + Math.floor(Math.random() * rows),
          ]);
          n++;
        }
      } finally {
        await c.close();
      }
      return n;
    }),
  );
  return { tps: counts.reduce((a, b) => a + b) / seconds, tool: 'node loop' };
}

/** A steady writer: `rate` row changes per second in 20 transactions a second, until `until`. */
export async function steadyWriter(dsn: string, table: string, rows: number, rate: number, until: number): Promise<number> {
  const c = await plainNode(dsn);
  const perTx = Math.max(1, Math.round(rate / 20));
  let changed = 0;
  try {
    for (let next = Date.now(); Date.now() < until; next += 50) {
      const ids = Array.from({ length: perTx }, () => 1 + Math.floor(Math.random() * rows));
      await c.query(`UPDATE ${table} SET flags = flags + 1, updated_at = now() WHERE id = ANY($1::bigint[])`, [ids]);
      changed += perTx;
      const wait = next + 50 - Date.now();
      if (wait > 0) await sleep(wait);
    }
  } finally {
    await c.close();
  }
  return changed;
}
