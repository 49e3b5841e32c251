// Repair requests sent straight to the publisher's syncguard.repair_request as a repair role, past
// every check the client makes: for files that test what the node itself refuses. The role is
// made on both servers (roles are cluster-wide; made once, kept) and granted the repair job in
// the pair's databases.

import { afterAll, beforeAll } from 'vitest';
import type { TableRef } from '../../functions/core/identifiers.js';
import type { PlannedChange } from '../../functions/core/repair-plan.js';
import { type Client, connect } from '../../functions/db/connect.js';
import { Deadline } from '../../functions/db/deadline.js';
import { probeTargetOf } from '../../functions/flows/inspect.js';
import { CheckedPair } from '../../functions/flows/pair.js';
import { awaitAnswers } from '../../functions/flows/probes.js';
import type { PairContext } from './use-pair.js';

const ROLE = 'sg_insp_repairer';
const PW = 'insp-repairer-pw';

export type Outcome = { key: string; outcome: string; error?: string };

export interface DirectReply {
  readonly reply: { id: string | null; skipped: Outcome[] };
  readonly changes: Outcome[];
  readonly computeMs: number | null;
}

/** What a plan's change says on the wire (the preconditions; a delete's key values). */
export const wire = (c: PlannedChange) => ({
  key: c.key,
  op: c.op,
  subHash: c.subHash,
  pubHash: c.pubHash,
  ...(c.op === 'delete' ? { keyValues: c.keyValues } : {}),
});

/**
 * Call at top level, after usePair: the repair role, connected to the publisher for the file, and
 * directRequest, which calls repair_request as that role and returns the publisher's reply and the
 * subscriber's outcomes.
 */
export function useRepairRole(ctx: PairContext): {
  directRequest: (t: TableRef, bucket: string, body: Record<string, unknown>) => Promise<DirectReply>;
} {
  let repairer: Client | undefined; // the repair role on the publisher

  beforeAll(async () => {
    for (const c of [ctx.pair.pub, ctx.pair.sub]) {
      await c
        .query(
          `DO $$ BEGIN IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '${ROLE}') THEN CREATE ROLE ${ROLE} LOGIN PASSWORD '${PW}'; END IF; END $$`,
        )
        .catch(() => {});
    }
    await ctx.pub.query(`SELECT syncguard.grant_role('${ROLE}', 'repair')`);
    await ctx.sub.query(`SELECT syncguard.grant_role('${ROLE}', 'repair')`);
    repairer = await connect(ctx.pair.publisherDsn.replace(/\/\/[^@]+@/, `//${ROLE}:${PW}@`), 'publisher');
  });

  afterAll(async () => {
    await repairer?.close();
  });

  async function directRequest(t: TableRef, bucket: string, body: Record<string, unknown>): Promise<DirectReply> {
    const c = repairer;
    if (c === undefined) throw new Error('the repair role is only connected inside tests');
    const target = await probeTargetOf(await CheckedPair.open(ctx.pub, ctx.sub), t);
    await c.query('BEGIN');
    const { rows } = await c.query<{ r: { id: string | null; skipped: Outcome[] } }>(
      'SELECT syncguard.repair_request($1, $2, $3, $4, $5, $6, $7) AS r',
      [t.schema, t.table, bucket, JSON.stringify(body), 'direct', target.target, target.subscription],
    );
    await c.query('COMMIT');
    const reply = rows[0]?.r as { id: string | null; skipped: Outcome[] };
    if (reply.id === null) return { reply, changes: [], computeMs: null };
    const waited = await awaitAnswers(ctx.sub, target.origin, [String(reply.id)], Deadline.after(30_000), [target.subscription]);
    await ctx.pair.catchUp();
    const a = waited.answers.get(String(reply.id));
    return { reply, changes: (a?.answer as { changes?: Outcome[] } | undefined)?.changes ?? [], computeMs: a?.computeMs ?? null };
  }

  return { directRequest };
}
