// Parallel drain (issue 12), by 1, 2 and 4 connections at once (drain --workers N), in rows
// hashed per second against one worker in the same run, each the best of two runs:
//   - every bucket of the 1M-row table marked dirty, then drained (dirty buckets are claimed with
//     FOR UPDATE SKIP LOCKED, so workers share one table's backlog);
//   - a full re-sweep of that one table (its pass split into lanes, node 0021).

import type { Pair } from '../dev/pair.js';
import type { Client } from '../functions/db/connect.js';
import { Deadline } from '../functions/db/deadline.js';
import { drainWithWorkers } from '../functions/flows/drain.js';
import type { Row } from './report.js';

const WORKERS = [1, 2, 4];

export async function measureWorkers(pair: Pair, pub: Client, table: string, log: (s: string) => void): Promise<Row[]> {
  const rate: Record<number, number> = {};
  const sweepRate: Record<number, number> = {};
  for (const n of WORKERS) {
    const extra = await Promise.all(Array.from({ length: n - 1 }, () => pair.ownerClient('publisher')));
    try {
      for (let round = 0; round < 2; round++) {
        await pub.query(
          `INSERT INTO syncguard.dirty (reg_id, bucket, xid)
           SELECT b.reg_id, b.bucket, pg_current_xact_id() FROM syncguard.bucket b JOIN syncguard.registrations g USING (reg_id)
            WHERE g.table_name = $1 ON CONFLICT DO NOTHING`,
          [table],
        );
        const s = await drainWithWorkers([pub, ...extra], { deadline: Deadline.after(600_000), resweepIntervalMs: null });
        if (s.stoppedBecause !== 'empty') throw new Error(`drain with ${n} workers did not finish: ${JSON.stringify(s)}`);
        const r = s.rowsHashed / (s.durationMs / 1000);
        rate[n] = Math.max(rate[n] ?? 0, r);
        log(`workers: ${n} worker(s) hashed ${s.rowsHashed} rows in ${(s.durationMs / 1000).toFixed(2)} s (${Math.round(r)} rows/s)`);
      }
      for (let round = 0; round < 2; round++) {
        await pub.query('SELECT syncguard.request_full_sweep()');
        const s = await drainWithWorkers([pub, ...extra], { deadline: Deadline.after(600_000), resweepIntervalMs: null });
        if (s.stoppedBecause !== 'empty') throw new Error(`sweep with ${n} workers did not finish: ${JSON.stringify(s)}`);
        const r = s.rowsHashed / (s.durationMs / 1000);
        sweepRate[n] = Math.max(sweepRate[n] ?? 0, r);
        log(`workers: ${n} worker(s) swept ${s.rowsHashed} rows in ${(s.durationMs / 1000).toFixed(2)} s (${Math.round(r)} rows/s)`);
      }
    } finally {
      await Promise.all(extra.map((c) => c.close()));
    }
  }
  return WORKERS.filter((n) => n > 1).flatMap((n) => [
    {
      measure: `drain of a full dirty backlog, ${n} workers: rows/s`,
      baseline: '1 worker',
      baselineValue: rate[1] ?? 0,
      value: rate[n] ?? 0,
      unit: 'rows/s',
      kind: 'info' as const,
    },
    {
      measure: `full re-sweep of one table, ${n} workers: rows/s`,
      baseline: '1 worker',
      baselineValue: sweepRate[1] ?? 0,
      value: sweepRate[n] ?? 0,
      unit: 'rows/s',
      kind: 'info' as const,
    },
  ]);
}
