// Writing verification runs to the control-plane database (sql/control).

import { endpointOfDsn, normalizeDsn } from '../core/dsn.js';
import { InputError } from '../core/errors.js';
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

/**
 * Which syncguard schemas a database holds: a node's (`syncguard`) and the control plane's
 * (`syncguard_control`). The control plane lives in a database of its own, so install refuses to
 * put one where the other is.
 */
export async function syncguardSchemas(client: Client): Promise<{ node: boolean; control: boolean }> {
  const { rows } = await client.query<{ node: boolean; control: boolean }>(
    "SELECT to_regnamespace('syncguard') IS NOT NULL AS node, to_regnamespace('syncguard_control') IS NOT NULL AS control",
  );
  return { node: rows[0]?.node ?? false, control: rows[0]?.control ?? false };
}

/** A publisher's or subscriber's database given where the control plane's is expected. */
export class NodeAsControlError extends InputError {}

/**
 * Refuses a node's database as the control plane (`--control-dsn` of install, plan, approve,
 * repair and verify): its tables are not the control plane's, and a raw "does not exist" error
 * would not say the DSN is the wrong one. `endpoint` names the database (host:port/name).
 */
export async function refuseNodeAsControl(client: Client, endpoint: string): Promise<void> {
  if ((await syncguardSchemas(client)).node)
    throw new NodeAsControlError(
      `the --control-dsn database ${endpoint} holds a syncguard node schema (it is a publisher or subscriber database); --control-dsn expects the control-plane database, and the control plane needs a database of its own: create one (CREATE DATABASE syncguard_control), run syncguard install --control-dsn with its DSN, and give that DSN`,
    );
}
