// The investigation workflow as deployed, run locally: the app is synthesized with the example
// config, the state machine's ASL is taken from the template (and checked by asl-validator), and
// aws-local-stepfunctions runs it with each Task calling the real handler, with the environment
// the stack gives that function, against a real replicating pair. Only AWS services are faked, at
// the SDK boundary: Secrets Manager, and Step Functions' SendTaskSuccess/SendTaskFailure (which
// complete the waiting task locally); the SNS publish is the one state replaced by a recorder.
// Three paths: approve (the repair lands, the re-verify is in sync), reject (nothing changes),
// timeout (the execution ends as expired, the plan is never applied).

import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SFNClient } from '@aws-sdk/client-sfn';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import aslValidator from 'asl-validator';
import { App, Duration } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { Context } from 'aws-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { superuserDsn } from '../../dev/cluster.js';
import { OWNER, OWNER_PASSWORD } from '../../dev/pair.js';
import { plainNode } from '../../dev/plain-node.js';
import { handler as approval } from '../../functions/approval.js';
import { clearOwnPrincipal } from '../../functions/commons/aws-identity.js';
import { closeConnections } from '../../functions/commons/connections.js';
import { clearSecretCache } from '../../functions/commons/secrets.js';
import { DEFAULT_NAMESPACE, ERROR_NAMES, METRIC } from '../../functions/contract.js';
import { handler as inspect } from '../../functions/inspect.js';
import { handler as repair } from '../../functions/repair.js';
import { handler as verify } from '../../functions/verify.js';
import { loadDeployConfig } from '../../infra/config.js';
import { SyncGuardStack } from '../../infra/stack.js';
import { AWS_APPROVERS, decide, fakeSts, signFor } from '../support/aws-identity.js';
import { useControlPlane } from '../support/control-plane.js';
import { captureStdout, context } from '../support/lambda.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';
import { functionEnv, functionIdOf, stateMachines } from '../support/workflow.js';
import { type Hooks, type Run, runInvestigation } from '../support/workflow-run.js';

const T = 'public.ledger';
const APPROVAL_TIMEOUT_S = 6;
const config = loadDeployConfig('syncguard.config.example.json');
const PUB_ARN = config.databases.blue?.secretArn as string;
const SUB_ARN = config.databases.green?.secretArn as string;
const sm = mockClient(SecretsManagerClient);
const sfn = mockClient(SFNClient);
const sts = mockClient(STSClient); // the inspect function's own principal

const ctx = usePair({
  label: 'workflow',
  tables: [T],
  async prepare(pair) {
    await pair.both(`CREATE TABLE ${T} (id int PRIMARY KEY, amount numeric NOT NULL, memo text)`);
    await pair.pub.query(`INSERT INTO ${T} SELECT i, i, 'm' || i FROM generate_series(1, 3000) i`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 1000 });
    await settle(pub);
    await settle(sub);
  },
});
// approvals through the approval function only: its AWS principals are the approvers
const control = useControlPlane(ctx, {
  afterInstall: async (owner) => {
    await owner.query('SELECT syncguard_control.set_approval_policy(false, NULL, $1)', [AWS_APPROVERS]);
  },
});

let template: Template;
let investigation: Record<string, unknown>;

const secret = (port: number, dbname: string) => ({
  SecretString: JSON.stringify({ engine: 'postgres', host: '127.0.0.1', port, username: OWNER, password: OWNER_PASSWORD, dbname }),
});

// the cloud assembly goes to a folder of our own, removed afterwards (CDK's default temp folder stays)
const outdir = mkdtempSync(join(tmpdir(), 'sg-cdk-'));

beforeAll(async () => {
  const app = new App({ outdir });
  const stack = new SyncGuardStack(app, 'local', config, { approvalTimeout: Duration.seconds(APPROVAL_TIMEOUT_S) });
  template = Template.fromStack(stack);
  const all = stateMachines(template);
  for (const m of all) {
    const v = aslValidator(m.asl);
    expect(v.errorsText(), m.id).toBe('');
  }
  investigation = all.find((m) => m.id.startsWith('WorkflowsInvestigation'))?.asl as Record<string, unknown>;
  signFor(control.dsn());
  sm.on(GetSecretValueCommand, { SecretId: PUB_ARN }).resolves(secret(ctx.pair.publisher.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: SUB_ARN }).resolves(secret(ctx.pair.subscriber.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: config.control.secretArn }).resolves(secret(ctx.pair.publisher.port, control.database()));
  process.env.AWS_REGION = 'eu-west-1';
  sts.on(GetCallerIdentityCommand).resolves({ Arn: 'arn:aws:sts::000000000000:assumed-role/syncguard-inspect/fn' });
  vi.stubGlobal('fetch', fakeSts);
  stdout = captureStdout();
}, 120_000);

afterAll(async () => {
  rmSync(outdir, { recursive: true, force: true });
  stdout?.restore();
  await closeConnections();
  clearSecretCache();
  sm.restore();
  sfn.restore();
  sts.restore();
  clearOwnPrincipal();
  vi.unstubAllGlobals();
});

type Handler = (event: unknown, context: Context) => Promise<unknown>;
const HANDLERS: [string, Handler][] = [
  ['WorkflowVerify', verify as Handler],
  ['Inspect', inspect as Handler],
  ['Approval', approval as Handler],
  ['Repair', repair as Handler],
];

/** What the handlers print (their JSON logs and EMF metrics), captured for the whole file: handlers overlap. */
let stdout: ReturnType<typeof captureStdout>;
let printedFrom = 0;
const printed = () => stdout.lines().slice(printedFrom);

/** Runs one task as the deployed function would: its environment, its handler. */
async function asFunction(fnArn: string, event: unknown): Promise<unknown> {
  const id = functionIdOf(fnArn);
  const h = HANDLERS.find(([prefix]) => id.startsWith(prefix))?.[1];
  if (h === undefined) throw new Error(`no handler for ${id}`);
  Object.assign(process.env, functionEnv(template, id));
  // every invocation its own request id, as Lambda gives a retried task
  return h(event, { ...context(120_000), awsRequestId: randomUUID() });
}

const start = (token: string, hooks: Hooks = {}): Run => runInvestigation({ asl: investigation, sfn, call: asFunction }, token, hooks);

const approvalFn = () => `:function:${Object.keys(template.findResources('AWS::Lambda::Function')).find((k) => k.startsWith('Approval'))}`;
const repairFn = () => `:function:${Object.keys(template.findResources('AWS::Lambda::Function')).find((k) => k.startsWith('Repair'))}`;

async function subscriberMemo(id: number): Promise<string> {
  const { rows } = await ctx.pair.sub.query<{ memo: string }>(`SELECT memo FROM ${T} WHERE id = $1`, [id]);
  return rows[0]?.memo ?? '(missing)';
}

const planState = (planId: number): Promise<string> =>
  control.as(
    OWNER,
    async (c) =>
      (await c.query<{ state: string }>('SELECT state FROM syncguard_control.repair_plan WHERE plan_id = $1', [planId])).rows[0]?.state ??
      '',
  );

describe('the investigation workflow, run locally against the real handlers', () => {
  it('approve: the repair lands and the re-verify is in sync; the alarms watch the metrics verify emits', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET memo = 'drift' WHERE id = 1500`);
    printedFrom = stdout.lines().length;
    {
      const run = start('token-approve');
      const planId = await run.waiting;
      await run.notifiedFirst;
      expect(run.notified[0]).toMatch(new RegExp(`^Plan ${planId} repairs 1 rows of public\\.ledger bucket 1 on pair upgrade`));
      expect(run.notified[0]).not.toContain('drift'); // no row values in notifications
      await asFunction(
        functionIdOf(`:function:${Object.keys(template.findResources('AWS::Lambda::Function')).find((k) => k.startsWith('Approval'))}`),
        await decide('AKIDALICE', planId, 'approved'),
      );
      const result = (await run.result) as Record<string, unknown>;
      expect(result).toMatchObject({ pair: 'upgrade', verify: { status: 'diverged' } });
      expect(await planState(planId)).toBe('applied');
    }
    const emf = printed()
      .filter((l) => l.includes('"_aws"'))
      .map((l) => JSON.parse(l)) as {
      _aws: { CloudWatchMetrics: { Namespace: string; Dimensions: string[][]; Metrics: { Name: string }[] }[] };
      [k: string]: unknown;
    }[];
    expect(await subscriberMemo(1500)).toBe('m1500');
    // the divergence alarm's metric is exactly what the verify handler emitted
    const emitted = emf.find((e) => e._aws.CloudWatchMetrics[0]?.Metrics.some((m) => m.Name === METRIC.DivergentBuckets));
    const alarm = Object.values(template.findResources('AWS::CloudWatch::Alarm')).find(
      (a) => a.Properties.MetricName === METRIC.DivergentBuckets,
    )?.Properties as { Namespace: string; Dimensions: { Name: string; Value: string }[] };
    expect(emitted?._aws.CloudWatchMetrics[0]?.Namespace).toBe(alarm.Namespace);
    expect(alarm.Namespace).toBe(DEFAULT_NAMESPACE);
    expect([...(emitted?._aws.CloudWatchMetrics[0]?.Dimensions[0] ?? [])].sort()).toEqual(alarm.Dimensions.map((d) => d.Name).sort());
    for (const d of alarm.Dimensions) expect(emitted?.[d.Name]).toBe(d.Value);
  });

  it('reject: nothing changes', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET memo = 'drift' WHERE id = 2500`);
    const run = start('token-reject');
    const planId = await run.waiting;
    const approvalId = Object.keys(template.findResources('AWS::Lambda::Function')).find((k) => k.startsWith('Approval')) as string;
    await asFunction(`:function:${approvalId}`, await decide('AKIDALICE', planId, 'rejected', { comment: 'not now' }));
    await run.result; // ends in the Rejected success state
    expect(await planState(planId)).toBe('rejected');
    expect(await subscriberMemo(2500)).toBe('drift');
    await ctx.pair.sub.query(`UPDATE ${T} SET memo = 'm2500' WHERE id = 2500`);
  });

  it('timeout: the execution ends as expired and the plan is never applied', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET memo = 'drift' WHERE id = 500`);
    const run = start('token-timeout');
    const planId = await run.waiting;
    const failure = await run.result.then(
      () => null,
      (e: unknown) => e as Error,
    );
    // the execution failed in the PlanExpired state, with the contract's error name
    expect(failure).toMatchObject({ name: 'ExecutionError', cause: { name: ERROR_NAMES.PlanExpiredError } });
    expect(failure?.message).toMatch(/no decision before the plan expired/);
    expect(await planState(planId)).toBe('proposed');
    expect(await subscriberMemo(500)).toBe('drift');
    await ctx.pair.sub.query(`UPDATE ${T} SET memo = 'm500' WHERE id = 500`);
  }, 60_000);

  it('an approval before the workflow waits does not fail it; approvers hear of a plan only once its token is stored', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET memo = 'drift' WHERE id = 1600`);
    const run = start('token-early', {
      beforeAwait: async (planId) => {
        await asFunction(approvalFn(), await decide('AKIDALICE', planId, 'approved'));
      },
    });
    const planId = await run.waiting;
    await run.result;
    expect(run.storedWhenNotified).toEqual([true]);
    expect(run.reverified.map((r) => r.status)).toEqual(['in_sync']);
    expect(await planState(planId)).toBe('applied');
    expect(await subscriberMemo(1600)).toBe('m1600');
  });

  it('a repair whose outcome was lost to a dropped connection is retried by the same execution and verified', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET memo = 'drift' WHERE id = 1700`);
    // the control plane drops the connection the first time an outcome is recorded (after the repair landed)
    const admin = await plainNode(superuserDsn(ctx.pair.publisher, control.database()));
    await admin.query(`CREATE SEQUENCE public.drop_once;
      CREATE FUNCTION public.drop_connection_once() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.state = 'applied' AND nextval('public.drop_once') = 1 THEN PERFORM pg_terminate_backend(pg_backend_pid()); END IF;
        RETURN NEW;
      END $$;
      GRANT USAGE ON SEQUENCE public.drop_once TO PUBLIC;
      CREATE TRIGGER drop_connection_once AFTER UPDATE ON syncguard_control.repair_plan FOR EACH ROW EXECUTE FUNCTION public.drop_connection_once()`);
    try {
      const attempts: number[] = [];
      const run = start('token-lost', { beforeRepair: async (_p, n) => void attempts.push(n) });
      const planId = await run.waiting;
      await asFunction(approvalFn(), await decide('AKIDALICE', planId, 'approved'));
      await run.result;
      expect(attempts).toEqual([1, 2]);
      expect(run.reverified).toEqual([{ input: {}, status: 'in_sync' }]);
      expect(await planState(planId)).toBe('applied');
      expect(await subscriberMemo(1700)).toBe('m1700');
    } finally {
      await admin.query(
        'DROP TRIGGER drop_connection_once ON syncguard_control.repair_plan; DROP FUNCTION public.drop_connection_once(); DROP SEQUENCE public.drop_once',
      );
      await admin.close();
    }
  });

  it('a plan applied by another run is re-verified, not reported as done', async () => {
    await ctx.pair.sub.query(`UPDATE ${T} SET memo = 'drift' WHERE id = 1800`);
    const run = start('token-other', {
      // another run applies the plan first
      beforeRepair: async (planId, n) => {
        if (n === 1) await asFunction(repairFn(), { planId, claim: 'another-run' });
      },
    });
    const planId = await run.waiting;
    await asFunction(approvalFn(), await decide('AKIDALICE', planId, 'approved'));
    await run.result;
    expect(run.reverified).toEqual([{ input: { error: { Error: ERROR_NAMES.PlanAlreadyAppliedError } }, status: 'in_sync' }]);
    expect(await subscriberMemo(1800)).toBe('m1800');
  });
});
