// The investigation handlers against a real pair and control plane (only Secrets Manager and
// Step Functions are faked, at the SDK boundary): verify finds a divergence, inspect plans it,
// the approval handler stores the workflow's task token and completes it on a decision
// (SendTaskSuccess, or SendTaskFailure with PlanRejectedError), and repair applies the plan; the
// divergence ends verified. Errors carry the names the workflow routes on.

import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { OWNER, OWNER_PASSWORD } from '../../dev/pair.js';
import { handler as approval } from '../../functions/approval.js';
import { clearOwnPrincipal } from '../../functions/commons/aws-identity.js';
import { closeConnections } from '../../functions/commons/connections.js';
import { decideRemotely } from '../../functions/commons/remote-approval.js';
import { clearSecretCache } from '../../functions/commons/secrets.js';
import { ERROR_NAMES } from '../../functions/core/errors.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import { connect } from '../../functions/db/connect.js';
import { installControl } from '../../functions/db/install.js';
import { storePlan } from '../../functions/flows/plans.js';
import { planBucket } from '../../functions/flows/repair.js';
import { handler as inspect } from '../../functions/inspect.js';
import { handler as repair } from '../../functions/repair.js';
import { handler as verify } from '../../functions/verify.js';
import { AWS_APPROVERS, bindingFacts, decide, fakeSts, PRINCIPALS, signedAs, signFor, stsRequests } from '../support/aws-identity.js';
import { captureStdout, context } from '../support/lambda.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';

const T = 'public.invoices';
const sm = mockClient(SecretsManagerClient);
const sfn = mockClient(SFNClient);
// the inspect function's own principal (STS GetCallerIdentity with its role's credentials)
const sts = mockClient(STSClient);
const INSPECT_ARN = 'arn:aws:sts::000000000000:assumed-role/syncguard-inspect/syncguard-inspect-fn';

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
  await c.query('SELECT syncguard_control.set_approval_policy(false, NULL, $1)', [AWS_APPROVERS]);
  signFor(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'));
  await c.end();
  sm.on(GetSecretValueCommand, { SecretId: 'sg/pub' }).resolves(secret(ctx.pair.publisher.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: 'sg/sub' }).resolves(secret(ctx.pair.subscriber.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: 'sg/control' }).resolves(secret(ctx.pair.publisher.port, `${ctx.pair.name}_ctl`));
  sfn.on(SendTaskSuccessCommand).resolves({});
  sfn.on(SendTaskFailureCommand).resolves({});
  sts.on(GetCallerIdentityCommand).resolves({ Arn: INSPECT_ARN });
  vi.stubGlobal('fetch', fakeSts);
});

afterAll(async () => {
  await closeConnections();
  clearSecretCache();
  sm.restore();
  sfn.restore();
  sts.restore();
  clearOwnPrincipal();
  vi.unstubAllGlobals();
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

/** The approval function as approve --function reaches it (the Lambda SDK): a status with these facts; decisions recorded. */
function fakeApprovalFunction(facts: { deployment: string; checksum: string }) {
  const lambda = mockClient(LambdaClient);
  const events: Record<string, unknown>[] = [];
  lambda.on(InvokeCommand).callsFake((input: { Payload: Uint8Array }) => {
    const e = JSON.parse(Buffer.from(input.Payload).toString('utf8')) as Record<string, unknown>;
    events.push(e);
    const answer =
      e.action === 'status'
        ? { planId: e.planId, status: 'waiting', waiting: true, ...facts }
        : { planId: e.planId, status: 'approved', approver: 'aws:x' };
    return { Payload: Buffer.from(JSON.stringify(answer)) };
  });
  return { lambda, events };
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
      await c.end();
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

describe("the approver is the caller's AWS identity, verified by STS (issue 17 item 9)", () => {
  it('records the verified principals, and refuses an identity signed for another decision or sent elsewhere', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = -1 WHERE id = 1700`);
    const planId = (await call(inspect, { pair: 'books', table: T, bucket: '17' })).result.plans[0]?.planId as number;
    const other = (await call(inspect, { pair: 'books', table: T, bucket: '17' })).result.plans[0]?.planId as number;
    const sent = stsRequests.length;
    // signed for plan `other`, presented for plan `planId`: refused before STS is asked
    const facts = await bindingFacts(planId);
    const forOther = await signedAs('AKIDALICE', { ...(await bindingFacts(other)), planId: other, decision: 'approved' });
    await expect(
      call(approval, { action: 'decide', planId, decision: 'approved', checksum: facts.checksum, identity: forOther }),
    ).rejects.toThrow(
      /signed for another decision \(deployment=[0-9a-f-]{36};plan=\d+;checksum=sha256:[0-9a-f]{64};decision=approved, this is deployment=[0-9a-f-]{36};plan=\d+;checksum=sha256:[0-9a-f]{64};decision=approved\)/,
    );
    // a rejection's identity does not approve
    const rejecting = await signedAs('AKIDALICE', { ...facts, planId, decision: 'rejected' });
    await expect(
      call(approval, { action: 'decide', planId, decision: 'approved', checksum: facts.checksum, identity: rejecting }),
    ).rejects.toThrow(/signed for another decision/);
    // an identity pointed at another host is never sent
    const elsewhere = await signedAs('AKIDALICE', { ...facts, planId, decision: 'approved' });
    elsewhere.headers.host = 'sts.attacker.example.com';
    await expect(
      call(approval, { action: 'decide', planId, decision: 'approved', checksum: facts.checksum, identity: elsewhere }),
    ).rejects.toThrow(/not an STS endpoint/);
    expect(stsRequests.length).toBe(sent);
    // an unknown key (STS refuses its signature)
    await expect(call(approval, await decide('AKIDNOBODY', planId, 'approved'))).rejects.toThrow(/STS refused it \(HTTP 403/);
    await call(approval, await decide('AKIDALICE', planId, 'approved'));
    expect(stsRequests.at(-1)?.url).toBe('https://sts.eu-west-1.amazonaws.com/');

    const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
    try {
      const { rows } = await c.query(
        'SELECT p.created_by, a.decided_by FROM syncguard_control.repair_plan p JOIN syncguard_control.plan_approval a USING (plan_id) WHERE plan_id = $1',
        [planId],
      );
      expect(rows).toEqual([{ created_by: `aws:${INSPECT_ARN}`, decided_by: `aws:${PRINCIPALS.AKIDALICE}` }]);
    } finally {
      await c.end();
    }
    await call(repair, { planId });
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = 1700 WHERE id = 1700`);
  });

  it('refuses a verified principal the control plane does not list as an approver (review finding 4)', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = -1 WHERE id = 1800`);
    const planId = (await call(inspect, { pair: 'books', table: T, bucket: '18' })).result.plans[0]?.planId as number;
    // STS verifies mallory; she is not in approval_policy.aws_approvers
    await expect(call(approval, await decide('AKIDMALLORY', planId, 'approved'))).rejects.toThrow(
      /arn:aws:sts::000000000000:assumed-role\/dashboard\/mallory is not allowed to decide plans: it matches none of approval_policy.aws_approvers/,
    );
    const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
    try {
      // an empty list refuses every AWS approval, saying how to set it
      await c.query("UPDATE syncguard_control.approval_policy SET aws_approvers = '{}'");
      await expect(call(approval, await decide('AKIDALICE', planId, 'approved'))).rejects.toThrow(
        /no AWS principal may decide plans in this control plane: approval_policy.aws_approvers is empty; its owner sets who may/,
      );
      await c.query('SELECT syncguard_control.set_approval_policy(false, NULL, $1)', [AWS_APPROVERS]);
      expect((await c.query('SELECT state FROM syncguard_control.repair_plan WHERE plan_id = $1', [planId])).rows).toEqual([
        { state: 'proposed' },
      ]);
    } finally {
      await c.end();
    }
    await call(approval, await decide('AKIDALICE', planId, 'approved'));
    await call(repair, { planId });
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = 1800 WHERE id = 1800`);
  });

  it('approve --function sends a signed identity bound to the deployment, the plan as reviewed and the decision, and no approver name', async () => {
    const SUM = `sha256:${'ab'.repeat(32)}`;
    const { lambda, events } = fakeApprovalFunction({ deployment: 'dep-1', checksum: SUM });
    process.env.AWS_ACCESS_KEY_ID = 'AKIDALICE';
    process.env.AWS_SECRET_ACCESS_KEY = 'test-secret';
    try {
      // a plan that is not the one reviewed: refused before anything is signed or decided
      await expect(
        decideRemotely({ functionName: 'approval-fn', planId: 7, decision: 'approved', checksum: `sha256:${'cd'.repeat(32)}` }),
      ).rejects.toMatchObject({
        name: ERROR_NAMES.PlanTamperedError,
        message: expect.stringContaining(`plan 7 in this deployment is ${SUM}`),
      });
      expect(events.map((e) => e.action)).toEqual(['status']);
      expect(await decideRemotely({ functionName: 'approval-fn', planId: 7, decision: 'approved', checksum: SUM })).toEqual({
        approver: 'aws:x',
        planId: 7,
        status: 'approved',
        checksum: SUM,
      });
      const event = events.at(-1) as { identity: { headers: Record<string, string>; body: string } };
      expect(Object.keys(event).sort()).toEqual(['action', 'checksum', 'decision', 'identity', 'planId']);
      expect(event.identity.headers).toMatchObject({
        host: 'sts.eu-west-1.amazonaws.com',
        'x-syncguard-approval': `deployment=dep-1;plan=7;checksum=${SUM};decision=approved`,
      });
      expect(event.identity.headers.authorization).toMatch(
        /^AWS4-HMAC-SHA256 Credential=AKIDALICE\/\d{8}\/eu-west-1\/sts\/aws4_request, SignedHeaders=[^ ]*x-syncguard-approval/,
      );
      expect(event.identity.body).toBe('Action=GetCallerIdentity&Version=2011-06-15');
    } finally {
      lambda.restore();
      delete process.env.AWS_ACCESS_KEY_ID;
      delete process.env.AWS_SECRET_ACCESS_KEY;
    }
  });

  // i17b finding 2: what was signed named only plan=N;decision=D, so for 15 minutes it approved plan N anywhere
  it('refuses a decision signed in another deployment for a plan of the same number, or for another version of the plan', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = -1 WHERE id = 1900`);
    const planId = (await call(inspect, { pair: 'books', table: T, bucket: '19' })).result.plans[0]?.planId as number;
    // another deployment (its own control plane) holds a plan of the same number, which Alice approves there
    const otherDsn = ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl2');
    await ctx.pair.pub.query(`CREATE DATABASE ${ctx.pair.name}_ctl2 OWNER ${OWNER}`);
    const other = await connect(otherDsn, 'control');
    let captured: Record<string, unknown>;
    try {
      await installControl(other);
      const { plan } = await planBucket(ctx.pub, ctx.sub, parseTableName(T), '19', { pair: 'books' });
      let stored = await storePlan(other, plan, INSPECT_ARN);
      while (stored.planId < planId) stored = await storePlan(other, plan, INSPECT_ARN);
      expect(stored.planId).toBe(planId);
      const otherDeployment = (await other.query<{ d: string }>('SELECT syncguard_control.deployment_id() AS d')).rows[0]?.d as string;
      // what approve --function sends to the other deployment's approval function
      const { lambda, events } = fakeApprovalFunction({ deployment: otherDeployment, checksum: stored.checksum });
      process.env.AWS_ACCESS_KEY_ID = 'AKIDALICE';
      process.env.AWS_SECRET_ACCESS_KEY = 'test-secret';
      try {
        await decideRemotely({ functionName: 'other-approval-fn', planId, decision: 'approved' });
      } finally {
        lambda.restore();
        delete process.env.AWS_ACCESS_KEY_ID;
        delete process.env.AWS_SECRET_ACCESS_KEY;
      }
      captured = events.at(-1) as Record<string, unknown>;
      expect(captured.action).toBe('decide');
    } finally {
      await other.end();
      await ctx.pair.pub.query(`DROP DATABASE IF EXISTS ${ctx.pair.name}_ctl2 WITH (FORCE)`).catch(() => {});
    }
    // replayed here within its 15 minutes: refused before STS is asked, and the plan stays undecided
    const sent = stsRequests.length;
    await expect(call(approval, captured)).rejects.toThrow(
      /the approver's AWS identity is not verified: it was signed for another decision/,
    );
    await expect(call(approval, { ...captured, checksum: (await bindingFacts(planId)).checksum })).rejects.toThrow(
      /signed for another decision/,
    );
    expect(stsRequests.length).toBe(sent);
    // signed here, for this plan, but for another version of it: the control plane refuses it
    const facts = await bindingFacts(planId);
    const wrong = `sha256:${'0'.repeat(64)}`;
    const forWrong = await signedAs('AKIDALICE', { deployment: facts.deployment, planId, checksum: wrong, decision: 'approved' });
    await expect(
      call(approval, { action: 'decide', planId, decision: 'approved', checksum: wrong, identity: forWrong }),
    ).rejects.toMatchObject({
      name: ERROR_NAMES.PlanTamperedError,
      message: expect.stringContaining(`plan ${planId} is ${facts.checksum}, not the ${wrong} its approver reviewed`),
    });
    const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
    try {
      expect((await c.query('SELECT state FROM syncguard_control.repair_plan WHERE plan_id = $1', [planId])).rows).toEqual([
        { state: 'proposed' },
      ]);
      // an AWS decision without the checksum it was signed for is not recorded, even by a trusted role
      await expect(
        c.query("SELECT syncguard_control.decide_plan($1, 'approved', NULL, false, $2)", [planId, PRINCIPALS.AKIDALICE]),
      ).rejects.toThrow(/a decision for an AWS principal names the checksum of the plan the approver signed for/);
      // signed for this deployment and the plan as stored: recorded against that checksum
      await call(approval, await decide('AKIDALICE', planId, 'approved'));
      expect((await c.query('SELECT checksum FROM syncguard_control.plan_approval WHERE plan_id = $1', [planId])).rows).toEqual([
        { checksum: facts.checksum },
      ]);
    } finally {
      await c.end();
    }
    await call(repair, { planId });
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = 1900 WHERE id = 1900`);
  });
});
