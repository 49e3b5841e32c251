// Parallel drain (issue 12): every bucket of the 1M-row table marked dirty, then drained by 1, 2
// and 4 connections at once (drain --workers N): rows hashed per second, against one worker in the
// same run. Dirty buckets are claimed with FOR UPDATE SKIP LOCKED, so workers share one table's
// backlog; each count is the best of two runs.

import type pg from 'pg';
import type { Pair } from '../dev/pair.js';
import { drainWithWorkers } from '../functions/flows/drain.js';
import type { Row } from './report.js';

const WORKERS = [1, 2, 4];

export async function measureWorkers(pair: Pair, pub: pg.Client, table: string, log: (s: string) => void): Promise<Row[]> {
  const rate: Record<number, number> = {};
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
        const s = await drainWithWorkers([pub, ...extra], { deadlineMs: Date.now() + 600_000, resweepIntervalMs: null });
        if (s.stoppedBecause !== 'empty') throw new Error(`drain with ${n} workers did not finish: ${JSON.stringify(s)}`);
        const r = s.rowsHashed / (s.durationMs / 1000);
        rate[n] = Math.max(rate[n] ?? 0, r);
        log(`workers: ${n} worker(s) hashed ${s.rowsHashed} rows in ${(s.durationMs / 1000).toFixed(2)} s (${Math.round(r)} rows/s)`);
      }
    } finally {
      await Promise.all(extra.map((c) => c.end()));
    }
  }
  return WORKERS.filter((n) => n > 1).map((n) => ({
    measure: `drain of a full dirty backlog, ${n} workers: rows/s`,
    baseline: '1 worker',
    baselineValue: rate[1] ?? 0,
    value: rate[n] ?? 0,
    unit: 'rows/s',
    kind: 'info' as const,
  }));
}
