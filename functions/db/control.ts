// Writing verification runs to the control-plane database (sql/control).

import { endpointOfDsn, normalizeDsn } from '../core/dsn.js';
import type { VerifyReport } from '../core/report.js';
import type { Client } from './connect.js';

export interface RunMeta {
  readonly pair: string;
  /** host:port/database of each node; never credentials. */
  readonly publisher: string;
  readonly subscriber: string;
  readonly requestedBy: string;
  readonly via: 'cli' | 'lambda';
  readonly table?: string;
  readonly startedAt: Date;
  readonly finishedAt: Date;
}

export interface RecordedRun {
  readonly runId: number;
  /** Divergences opened or refreshed by this run (what an investigation workflow starts from). */
  readonly divergenceIds: readonly number[];
}

export async function recordRun(client: Client, meta: RunMeta, report: VerifyReport): Promise<RecordedRun> {
  const { rows } = await client.query<{ r: { runId: string; divergenceIds: string[] } }>(
    'SELECT syncguard_control.record_run($1, $2) AS r',
    [
      JSON.stringify({ ...meta, startedAt: meta.startedAt.toISOString(), finishedAt: meta.finishedAt.toISOString() }),
      JSON.stringify(report),
    ],
  );
  const r = rows[0]?.r as { runId: string; divergenceIds: string[] };
  return { runId: Number(r.runId), divergenceIds: r.divergenceIds.map(Number) };
}

/** host:port/database of a DSN, for naming a node without its credentials. */
export function endpointOf(dsn: string): string {
  try {
    return endpointOfDsn(normalizeDsn(dsn, 'database'));
  } catch {
    return '<unparseable DSN>';
  }
}
