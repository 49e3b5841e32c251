// The investigation handlers' setting, for the files that call them: a real pair with a
// divergable table (T), a control plane in its own database with AWS approvers (four-eyes on),
// and AWS faked only at the SDK boundary (Secrets Manager, Step Functions, the inspect function's
// own STS identity) and at the HTTP boundary for the approvers' signed STS requests.

import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetSecretValueCommand, SecretsManagerClient } from '@aws-sdk/client-secrets-manager';
import { SendTaskFailureCommand, SendTaskSuccessCommand, SFNClient } from '@aws-sdk/client-sfn';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, vi } from 'vitest';
import { OWNER, OWNER_PASSWORD } from '../../dev/pair.js';
import { clearOwnPrincipal } from '../../functions/commons/aws-identity.js';
import { closeConnections } from '../../functions/commons/connections.js';
import { clearSecretCache } from '../../functions/commons/secrets.js';
import { connect } from '../../functions/db/connect.js';
import { installControl } from '../../functions/db/install.js';
import { AWS_APPROVERS, fakeSts, signFor } from './aws-identity.js';
import { captureStdout, context } from './lambda.js';
import { register, settle } from './syncguard.js';
import { usePair } from './use-pair.js';

export const T = 'public.invoices';
// the inspect function's own principal (STS GetCallerIdentity with its role's credentials)
export const INSPECT_ARN = 'arn:aws:sts::000000000000:assumed-role/syncguard-inspect/syncguard-inspect-fn';

/** Call at top level: the pair (configured as pair "books"), the Step Functions fake, and `call` to invoke a handler. */
export function useInvestigationLambdas() {
  const sm = mockClient(SecretsManagerClient);
  const sfn = mockClient(SFNClient);
  const sts = mockClient(STSClient);

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
    await c.close();
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

  async function call<T>(
    h: (e: unknown, c: ReturnType<typeof context>) => Promise<T>,
    event: unknown,
  ): Promise<{ result: T; log: string }> {
    const out = captureStdout();
    try {
      const result = await h(event, context(120_000));
      return { result, log: out.lines().join('\n') };
    } finally {
      out.restore();
    }
  }

  return { ctx, sfn, call };
}

/** The approval function as approve --function reaches it (the Lambda SDK): a status with these facts; decisions recorded. */
export function fakeApprovalFunction(facts: { deployment: string; checksum: string }) {
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
