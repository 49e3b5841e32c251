// A paced writer for tests and the bench: each transaction updates one random row of a large
// table and one row of a small, hot table, at a target rate, and records each commit's latency.

import { plainNode } from '../../dev/plain-node.js';

export interface WriterOptions {
  readonly big: string;
  readonly hot: string;
  /** Keys 1..maxKey of the big table; keys divisible by `spare` are never written. */
  readonly maxKey: number;
  readonly spare?: number;
  readonly hotRows: number;
  readonly perSecond: number;
}

export interface WriterResult {
  readonly transactions: number;
  readonly seconds: number;
  /** Commit latencies, ms, in order. */
  readonly latenciesMs: readonly number[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export async function startWriter(dsn: string, o: WriterOptions): Promise<{ stop: () => Promise<WriterResult> }> {
  const c = await plainNode(dsn);
  let running = true;
  const latencies: number[] = [];
  const started = Date.now();
  const loop = (async () => {
    let n = 0;
    while (running) {
      let key = 1 + Math.floor(Math.random() * o.maxKey);
      if (o.spare !== undefined && key % o.spare === 0) key = Math.max(1, key - 1);
      const hot = 1 + (n % o.hotRows);
      const t0 = performance.now();
      // integers only: no value from outside reaches this text
      await c.query(`BEGIN; UPDATE ${o.big} SET v = v + 1 WHERE id = ${key}; UPDATE ${o.hot} SET n = n + 1 WHERE id = ${hot}; COMMIT`);
      latencies.push(performance.now() - t0);
      n++;
      const due = started + (n * 1000) / o.perSecond;
      if (due > Date.now()) await sleep(due - Date.now());
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      await c.close();
      return { transactions: latencies.length, seconds: (Date.now() - started) / 1000, latenciesMs: latencies };
    },
  };
}

/** The p-th percentile (0..100) of some numbers. */
export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return 0;
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))] as number;
}
