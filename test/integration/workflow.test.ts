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
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import aslValidator from 'asl-validator';
import { App, Duration } from 'aws-cdk-lib';
import { Template } from 'aws-cdk-lib/assertions';
import type { Context } from 'aws-lambda';
import { StateMachine } from 'aws-local-stepfunctions';
import { mockClient } from 'aws-sdk-client-mock';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { superuserDsn } from '../../dev/cluster.js';
import { OWNER, OWNER_PASSWORD } from '../../dev/pair.js';
import { handler as approval } from '../../functions/approval.js';
import { clearOwnPrincipal } from '../../functions/commons/aws-identity.js';
import { closeConnections } from '../../functions/commons/connections.js';
import { clearSecretCache } from '../../functions/commons/secrets.js';
import { DEFAULT_NAMESPACE, ERROR_NAMES, METRIC } from '../../functions/contract.js';
import { connect } from '../../functions/db/connect.js';
import { installControl } from '../../functions/db/install.js';
import { handler as inspect } from '../../functions/inspect.js';
import { handler as repair } from '../../functions/repair.js';
import { handler as verify } from '../../functions/verify.js';
import { loadDeployConfig } from '../../infra/config.js';
import { SyncGuardStack } from '../../infra/stack.js';
import { AWS_APPROVERS, decide, fakeSts, signFor } from '../support/aws-identity.js';
import { captureStdout, context } from '../support/lambda.js';
import { register, settle } from '../support/syncguard.js';
import { usePair } from '../support/use-pair.js';
import { functionEnv, functionIdOf, stateMachines, taskStates } from '../support/workflow.js';

// aws-local-stepfunctions uses Promise.withResolvers, which Node 20 lacks
const P = Promise as unknown as { withResolvers?: () => unknown };
P.withResolvers ??= () => {
  let resolve: unknown;
  let reject: unknown;
  const promise = new Promise((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
};

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
    await pair.pub.query(`CREATE DATABASE ${pair.name}_ctl OWNER ${OWNER}`);
  },
  async ready({ pub, sub }) {
    await register(pub, sub, T, { bucketSize: 1000 });
    await settle(pub);
    await settle(sub);
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
  const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
  await installControl(c);
  await c.query('SELECT syncguard_control.set_approval_policy(false, NULL, $1)', [AWS_APPROVERS]);
  signFor(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'));
  await c.end();
  sm.on(GetSecretValueCommand, { SecretId: PUB_ARN }).resolves(secret(ctx.pair.publisher.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: SUB_ARN }).resolves(secret(ctx.pair.subscriber.port, ctx.pair.name));
  sm.on(GetSecretValueCommand, { SecretId: config.control.secretArn }).resolves(secret(ctx.pair.publisher.port, `${ctx.pair.name}_ctl`));
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
  await ctx.pair.pub.query(`DROP DATABASE IF EXISTS ${ctx.pair.name}_ctl WITH (FORCE)`).catch(() => {});
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

interface Run {
  readonly result: Promise<unknown>;
  /** The plan id, once the workflow waits for its decision. */
  readonly waiting: Promise<number>;
  readonly notified: string[];
  /** Resolves when the first notification went out. */
  readonly notifiedFirst: Promise<void>;
  /** Per notification: whether the waiting step had stored the plan's task token when it went out. */
  readonly storedWhenNotified: boolean[];
  /** Each re-verify after a repair: the state's input (the plan's path so far) and the verdict. */
  readonly reverified: { input: { error?: { Error: string } }; status: string }[];
}

interface Hooks {
  /** Runs before the waiting step's function stores its token (an approver quicker than the workflow). */
  readonly beforeAwait?: (planId: number) => Promise<void>;
  /** Runs before each attempt of the Repair task. */
  readonly beforeRepair?: (planId: number, attempt: number) => Promise<void>;
}

function start(token: string, hooks: Hooks = {}): Run {
  const notified: string[] = [];
  const storedWhenNotified: boolean[] = [];
  const reverified: Run['reverified'] = [];
  let firstNotified: () => void = () => {};
  const notifiedFirst = new Promise<void>((r) => {
    firstNotified = r;
  });
  let repairs = 0;
  let lastRepairError: { Error: string } | undefined;
  const awaited = new Set<number>();
  let waitingFor: (planId: number) => void = () => {};
  const waiting = new Promise<number>((r) => {
    waitingFor = r;
  });
  const overrides: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const [name, state] of taskStates(investigation)) {
    const resource = state.Resource as string;
    if (resource.includes(':sns:')) {
      overrides[name] = async (input) => {
        const message = (input as { Message: string }).Message;
        notified.push(message);
        storedWhenNotified.push(awaited.has(Number(/^Plan (\d+)/.exec(message)?.[1])));
        firstNotified();
        return {};
      };
    } else if (resource.endsWith('.waitForTaskToken')) {
      overrides[name] = async (input) => {
        const { FunctionName, Payload } = input as { FunctionName: string; Payload: { planId: number; taskToken: string } };
        // completed by the approval function's SendTaskSuccess / SendTaskFailure (faked at the SDK)
        const decided = new Promise((resolve, reject) => {
          sfn.on(SendTaskSuccessCommand, { taskToken: Payload.taskToken }).callsFake((i: { output: string }) => {
            resolve(JSON.parse(i.output));
            return {};
          });
          sfn.on(SendTaskFailureCommand, { taskToken: Payload.taskToken }).callsFake((i: { error: string; cause: string }) => {
            reject(Object.assign(new Error(i.cause), { name: i.error }));
            return {};
          });
        });
        await hooks.beforeAwait?.(Payload.planId);
        await asFunction(FunctionName, Payload);
        awaited.add(Payload.planId); // the waiting step's function stored the token (and returned)
        waitingFor(Payload.planId);
        return decided;
      };
    } else if (name === 'ReVerify') {
      overrides[name] = async (input) => {
        // the task's parameters only carry pair and table; the path so far is in the execution's input to the state
        const out = (await asFunction(resource, input)) as { status: string };
        reverified.push({ input: lastRepairError === undefined ? {} : { error: lastRepairError }, status: out.status });
        return out;
      };
    } else if (name === 'Repair') {
      overrides[name] = async (input) => {
        await hooks.beforeRepair?.((input as { planId: number }).planId, ++repairs);
        try {
          lastRepairError = undefined;
          return await asFunction(resource, input);
        } catch (err) {
          lastRepairError = { Error: (err as Error).name };
          throw err;
        }
      };
    } else {
      overrides[name] = (input) => asFunction(resource, input);
    }
  }
  const machine = new StateMachine(investigation as never, { validationOptions: { checkPaths: false } });
  const execution = machine.run(
    { pair: 'upgrade' },
    {
      overrides: {
        taskResourceLocalHandlers: overrides as never,
        waitTimeOverrides: { TokenNotStoredYet: 100 },
        retryIntervalOverrides: { Repair: 50 },
      },
      context: { Task: { Token: token }, Execution: { Id: `arn:aws:states:local:000000000000:execution:investigation:${token}` } } as never,
    },
  );
  return { result: execution.result, waiting, notified, notifiedFirst, storedWhenNotified, reverified };
}

const approvalFn = () => `:function:${Object.keys(template.findResources('AWS::Lambda::Function')).find((k) => k.startsWith('Approval'))}`;
const repairFn = () => `:function:${Object.keys(template.findResources('AWS::Lambda::Function')).find((k) => k.startsWith('Repair'))}`;

async function subscriberMemo(id: number): Promise<string> {
  const { rows } = await ctx.pair.sub.query<{ memo: string }>(`SELECT memo FROM ${T} WHERE id = $1`, [id]);
  return rows[0]?.memo ?? '(missing)';
}

async function planState(planId: number): Promise<string> {
  const c = await connect(ctx.pair.publisherDsn.replace(/\/([^/]+)$/, '/$1_ctl'), 'control');
  try {
    return (
      (await c.query<{ state: string }>('SELECT state FROM syncguard_control.repair_plan WHERE plan_id = $1', [planId])).rows[0]?.state ??
      ''
    );
  } finally {
    await c.end();
  }
}

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
    const admin = new pg.Client({ connectionString: superuserDsn(ctx.pair.publisher, `${ctx.pair.name}_ctl`) });
    await admin.connect();
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
      await admin.end();
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
