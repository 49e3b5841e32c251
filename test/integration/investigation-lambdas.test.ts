// The investigation handlers against a real pair and control plane (only Secrets Manager and
// Step Functions are faked, at the SDK boundary): verify finds a divergence, inspect plans it,
// the approval handler stores the workflow's task token and completes it on a decision
// (SendTaskSuccess, or SendTaskFailure with PlanRejectedError), and repair applies the plan; the
// divergence ends verified. Errors carry the names the workflow routes on.

import { SendTaskFailureCommand, SendTaskSuccessCommand } from '@aws-sdk/client-sfn';
import { describe, expect, it } from 'vitest';
import { handler as approval } from '../../functions/approval.js';
import { ERROR_NAMES } from '../../functions/core/errors.js';
import { connect } from '../../functions/db/connect.js';
import { handler as inspect } from '../../functions/inspect.js';
import { handler as repair } from '../../functions/repair.js';
import { handler as verify } from '../../functions/verify.js';
import { decide, PRINCIPALS } from '../support/aws-identity.js';
import { T, useInvestigationLambdas } from '../support/investigation-lambdas.js';

const { ctx, sfn, call } = useInvestigationLambdas();

describe('investigation handlers', () => {
  it('inspect -> await approval -> decide -> repair, ending verified; values never logged', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET memo = 'secret-drift-value' WHERE id = 150; DELETE FROM ${T} WHERE id = 151`);
    const v = (await call(verify, { pair: 'books' })).result;
    expect(v).toMatchObject({ status: 'diverged', mismatches: 1 });

    const ins = await call(inspect, { divergenceIds: v.divergenceIds });
    expect(ins.result.plans).toEqual([
      expect.objectContaining({
        divergenceId: v.divergenceIds[0],
        table: T,
        bucket: '1',
        rowCount: 2,
        diffs: { changed: 1, missing_on_subscriber: 1 },
      }),
    ]);
    expect(ins.log).not.toContain('secret-drift-value');
    expect(ins.result.plans[0]?.sqlPreview).toContain('INSERT INTO "public"."invoices"');
    const planId = ins.result.plans[0]?.planId as number;

    await call(approval, { action: 'await', planId, taskToken: 'token-1' });
    // no approver is taken from the event
    await expect(call(approval, { action: 'decide', planId, decision: 'approved', approver: 'alice' })).rejects.toThrow(
      /invalid approval event/,
    );
    // four-eyes: the inspect function made the plan, so its role may not approve it (in any session)
    await expect(call(approval, await decide('AKIDINSPECT', planId, 'approved'))).rejects.toThrow(
      expect.objectContaining({ name: ERROR_NAMES.FourEyesError }),
    );
    expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
    const decided = await call(approval, await decide('AKIDALICE', planId, 'approved', { comment: 'ok' }));
    expect(decided.result).toMatchObject({ status: 'approved', approver: `aws:${PRINCIPALS.AKIDALICE}` });
    const sent = sfn.commandCalls(SendTaskSuccessCommand);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.args[0].input).toMatchObject({ taskToken: 'token-1' });
    expect(JSON.parse(sent[0]?.args[0].input.output as string)).toMatchObject({ planId, decision: 'approved' });

    const r = (await call(repair, { planId })).result;
    expect(r).toMatchObject({ planId, counts: { applied: 2 }, bucketAfter: 'equal' });
    // another run is refused; the same run (a retry: same claim) gets the recorded outcome back
    await expect(call(repair, { planId, claim: 'another-run' })).rejects.toThrow(
      expect.objectContaining({ name: ERROR_NAMES.PlanAlreadyAppliedError }),
    );
    expect((await call(repair, { planId })).result).toMatchObject({ planId, counts: { applied: 2 }, retried: true });

    const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
    try {
      const { rows } = await c.query('SELECT to_state FROM syncguard_control.divergence_event WHERE divergence_id = $1 ORDER BY event_id', [
        v.divergenceIds[0],
      ]);
      expect(rows.map((x) => x.to_state)).toEqual(['open', 'inspected', 'approved', 'repaired', 'verified']);
    } finally {
      await c.close();
    }
    expect((await call(verify, { pair: 'books' })).result.status).toBe('in_sync');
  });

  it('fails the waiting workflow step with PlanRejectedError on a rejection, and repair refuses the plan', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = -1 WHERE id = 1500`);
    const plans = (await call(inspect, { pair: 'books', table: T, bucket: '15' })).result.plans;
    const planId = plans[0]?.planId as number;
    await call(approval, { action: 'await', planId, taskToken: 'token-2' });
    await call(approval, await decide('AKIDALICE', planId, 'rejected'));
    const failed = sfn.commandCalls(SendTaskFailureCommand);
    expect(failed.at(-1)?.args[0].input).toMatchObject({ taskToken: 'token-2', error: 'PlanRejectedError' });
    await expect(call(repair, { planId })).rejects.toThrow(expect.objectContaining({ name: ERROR_NAMES.PlanRejectedError }));
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = 1500 WHERE id = 1500`);
  });

  it('refuses bad events and unknown plans with a clear error', async () => {
    await expect(call(inspect, { pair: 'books', table: T, bucket: 'x' })).rejects.toThrow(/invalid inspect event/);
    await expect(call(inspect, { divergenceIds: [987654] })).rejects.toThrow(/unknown divergence id\(s\): 987654/);
    await expect(call(approval, { action: 'decide', planId: 1, decision: 'maybe', identity: { headers: {}, body: '' } })).rejects.toThrow(
      /invalid approval event/,
    );
    await expect(call(approval, { action: 'await', planId: 99999, taskToken: 't' })).rejects.toThrow(/plan 99999 does not exist/);
    await expect(call(repair, { planId: 99999 })).rejects.toThrow(/plan 99999 does not exist/);
  });
});
