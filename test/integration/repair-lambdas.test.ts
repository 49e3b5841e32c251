// The investigation handlers against a real pair and control plane (only Secrets Manager and
// Step Functions are faked, at the SDK boundary): verify finds a divergence, inspect plans it,
// the approval handler stores the workflow's task token and completes it on a decision
// (SendTaskSuccess, or SendTaskFailure with PlanRejectedError), and repair applies the plan; the
// divergence ends verified. Errors carry the names the workflow routes on.

import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { OWNER, OWNER_PASSWORD } from '../../dev/pair.js';
import { handler as approval } from '../../functions/approval.js';
import { closeConnections } from '../../functions/commons/connections.js';
import { clearSecretCache } from '../../functions/commons/secrets.js';
import { ERROR_NAMES } from '../../functions/core/errors.js';
import { connect } from '../../functions/db/connect.js';
import { installControl } from '../../functions/db/install.js';
import { handler as inspect } from '../../functions/inspect.js';
import { handler as repair } from '../../functions/repair.js';
import { handler as verify } from '../../functions/verify.js';
import { captureStdout, context } from '../support/lambda.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.invoices';
const sm = mockClient(SecretsManagerClient);
const sfn = mockClient(SFNClient);

const ctx = usePair({
  label: 'rlambda',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id bigint PRIMARY KEY, amount numeric, memo text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, i, 'memo ' || i FROM generate_series(1, 2000) i`);
    await pair.pub.query(`CREATE DATABASE ${pair.name}_ctl OWNER ${OWNER}`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 100 });
    await settle(pub);
    await settle(sub);
  },
});

const secret = (port: number, dbname: string) => ({
  SecretString: JSON.stringify({ engine: 'postgres', host: '127.0.0.1', port, username: OWNER, password: OWNER_PASSWORD, dbname }),
});

beforeAll(async () => {
  process.env.AWS_REGION = 'eu-west-1';
  process.env.SYNCGUARD_PAIRS = JSON.stringify({ books: { publisherSecretId: 'sg/pub', subscriberSecretId: 'sg/sub' } });
  process.env.SYNCGUARD_CONTROL_SECRET_ID = 'sg/control';
  process.env.SYNCGUARD_FOUR_EYES = 'true';
  const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
  await installControl(c);
  await c.end();
  sm.on(GetSecretValueCommand, { SecretId: 'sg/pub' }).resolves(secret(ctx.pair.publisher.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: 'sg/sub' }).resolves(secret(ctx.pair.subscriber.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: 'sg/control' }).resolves(secret(ctx.pair.publisher.port, `${ctx.pair.name}_ctl`));
  sfn.on(SendTaskSuccessCommand).resolves({});
  sfn.on(SendTaskFailureCommand).resolves({});
});

afterAll(async () => {
  await closeConnections();
  clearSecretCache();
  sm.restore();
  sfn.restore();
  delete process.env.SYNCGUARD_FOUR_EYES;
  await ctx.pair.pub.query(`DROP DATABASE IF EXISTS ${ctx.pair.name}_ctl WITH (FORCE)`).catch(() => {});
});

async function call<T>(h: (e: unknown, c: ReturnType<typeof context>) => Promise<T>, event: unknown): Promise<{ result: T; log: string }> {
  const out = captureStdout();
  try {
    const result = await h(event, context(120_000));
    return { result, log: out.lines().join('\n') };
  } finally {
    out.restore();
  }
}

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
    // four-eyes: the inspect Lambda made the plan, so its own identity may not approve it
    await expect(
      call(approval, { action: 'decide', planId, decision: 'approved', approver: context().invokedFunctionArn }),
    ).rejects.toThrow(expect.objectContaining({ name: ERROR_NAMES.FourEyesError }));
    expect(sfn.commandCalls(SendTaskSuccessCommand)).toHaveLength(0);
    await call(approval, { action: 'decide', planId, decision: 'approved', approver: 'alice', comment: 'ok' });
    const sent = sfn.commandCalls(SendTaskSuccessCommand);
    expect(sent).toHaveLength(1);
    expect(sent[0]?.args[0].input).toMatchObject({ taskToken: 'token-1' });
    expect(JSON.parse(sent[0]?.args[0].input.output as string)).toMatchObject({ planId, decision: 'approved' });

    const r = (await call(repair, { planId })).result;
    expect(r).toMatchObject({ planId, counts: { applied: 2 }, bucketAfter: 'equal' });
    await expect(call(repair, { planId })).rejects.toThrow(expect.objectContaining({ name: ERROR_NAMES.PlanAlreadyAppliedError }));

    const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
    try {
      const { rows } = await c.query('SELECT to_state FROM syncguard_control.divergence_event WHERE divergence_id = $1 ORDER BY event_id', [
        v.divergenceIds[0],
      ]);
      expect(rows.map((x) => x.to_state)).toEqual(['open', 'inspected', 'approved', 'repaired', 'verified']);
    } finally {
      await c.end();
    }
    expect((await call(verify, { pair: 'books' })).result.status).toBe('in_sync');
  });

  it('fails the waiting workflow step with PlanRejectedError on a rejection, and repair refuses the plan', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = -1 WHERE id = 1500`);
    const plans = (await call(inspect, { pair: 'books', table: T, bucket: '15' })).result.plans;
    const planId = plans[0]?.planId as number;
    await call(approval, { action: 'await', planId, taskToken: 'token-2' });
    await call(approval, { action: 'decide', planId, decision: 'rejected', approver: 'bob' });
    const failed = sfn.commandCalls(SendTaskFailureCommand);
    expect(failed.at(-1)?.args[0].input).toMatchObject({ taskToken: 'token-2', error: 'PlanRejectedError' });
    await expect(call(repair, { planId })).rejects.toThrow(expect.objectContaining({ name: ERROR_NAMES.PlanRejectedError }));
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = 1500 WHERE id = 1500`);
  });

  it('refuses bad events and unknown plans with a clear error', async () => {
    await expect(call(inspect, { pair: 'books', table: T, bucket: 'x' })).rejects.toThrow(/invalid inspect event/);
    await expect(call(inspect, { divergenceIds: [987654] })).rejects.toThrow(/unknown divergence id\(s\): 987654/);
    await expect(call(approval, { action: 'decide', planId: 1, decision: 'maybe', approver: 'a' })).rejects.toThrow(
      /invalid approval event/,
    );
    await expect(call(approval, { action: 'await', planId: 99999, taskToken: 't' })).rejects.toThrow(/plan 99999 does not exist/);
    await expect(call(repair, { planId: 99999 })).rejects.toThrow(/plan 99999 does not exist/);
  });
});
