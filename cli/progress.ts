// Progress display for long CLI work: a bar on a terminal, plain lines (at most one a second)
// when stdout is not a terminal, nothing with --json.

import cliProgress from 'cli-progress';
import type { DrainProgress } from '../functions/db/drain.js';

export interface DrainReporter {
  update(p: DrainProgress): void;
  stop(): void;
}

const fmt = new Intl.NumberFormat('en-US');

export function drainReporter(mode: 'tty' | 'lines' | 'none', boxMs: number, out: (line: string) => void): DrainReporter {
  if (mode === 'none') return { update: () => {}, stop: () => {} };
  if (mode === 'lines') {
    let last = 0;
    return {
      update(p) {
        if (p.elapsedMs - last < 1000) return;
        last = p.elapsedMs;
        out(
          `drain: ${(p.elapsedMs / 1000).toFixed(1)}s/${(boxMs / 1000).toFixed(0)}s ${p.phase}${p.table ? ` ${p.table}` : ''}: ` +
            `${fmt.format(p.bucketsRecomputed)} buckets, ${fmt.format(p.rowsHashed)} rows (batch ${p.batchSize})`,
        );
      },
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      format: 'drain [{bar}] {elapsed}s/{box}s | {phase} | {buckets} buckets | {rows} rows | batch {batch}',
      hideCursor: true,
      clearOnComplete: false,
    },
    cliProgress.Presets.shades_classic,
  );
  const boxS = Math.ceil(boxMs / 1000);
  bar.start(boxMs, 0, { elapsed: '0.0', box: boxS, phase: 'dirty', buckets: 0, rows: 0, batch: 0 });
  return {
    update(p) {
      bar.update(Math.min(p.elapsedMs, boxMs), {
        elapsed: (p.elapsedMs / 1000).toFixed(1),
        box: boxS,
        phase: p.table ? `sweep ${p.table}` : p.phase,
        buckets: fmt.format(p.bucketsRecomputed),
        rows: fmt.format(p.rowsHashed),
        batch: p.batchSize,
      });
    },
    stop: () => bar.stop(),
  };
}
