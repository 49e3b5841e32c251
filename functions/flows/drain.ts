// A drain run by several connections at once (drain --workers N, and the drain Lambda's
// SYNCGUARD_DRAIN_WORKERS). Each worker is an ordinary drain run (db/drain.ts): dirty buckets are
// claimed with FOR UPDATE SKIP LOCKED, so workers never recompute the same bucket twice and never
// wait for each other; a table's sweep pass is split into lanes (node 0021), each locked by one
// worker at a time, so several workers sweep one large table together. Only the first worker may
// start a full re-sweep.

import { type DrainSummary, mergeDrains } from '../core/drain.js';
import type { Client } from '../db/connect.js';
import { type DrainOptions, type DrainProgress, drain } from '../db/drain.js';

export async function drainWithWorkers(clients: readonly Client[], opts: DrainOptions): Promise<DrainSummary> {
  const [first] = clients;
  if (first === undefined) throw new RangeError('a drain needs at least one connection');
  if (clients.length === 1) return drain(first, opts);
  const start = Date.now();
  const done = clients.map(() => ({ buckets: 0, rows: 0 }));
  const report = opts.onProgress;
  const progress = (i: number) =>
    report === undefined
      ? undefined
      : (p: DrainProgress) => {
          done[i] = { buckets: p.bucketsRecomputed, rows: p.rowsHashed };
          report({ ...p, bucketsRecomputed: done.reduce((a, d) => a + d.buckets, 0), rowsHashed: done.reduce((a, d) => a + d.rows, 0) });
        };
  let last = 0;
  const runs = await Promise.all(
    clients.map(async (c, i) => {
      const { onProgress: _, ...rest } = opts;
      const onProgress = progress(i);
      const run = await drain(c, {
        ...rest,
        ...(i > 0 ? { fullResweep: false, resweepIntervalMs: null } : {}),
        ...(onProgress !== undefined ? { onProgress } : {}),
      });
      last = i;
      return run;
    }),
  );
  return mergeDrains(runs, last, Date.now() - start);
}
