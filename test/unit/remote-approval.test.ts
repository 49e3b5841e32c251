import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../cli/main.js';

const lambda = mockClient(LambdaClient);
const SUM = `sha256:${'ab'.repeat(32)}`;
const body = (o: unknown) => new Uint8Array(Buffer.from(JSON.stringify(o)));

beforeAll(() => {
  process.env.AWS_REGION = 'eu-west-1';
  process.env.AWS_ACCESS_KEY_ID = 'AKIDALICE';
  process.env.AWS_SECRET_ACCESS_KEY = 'test-secret';
});
afterAll(() => {
  lambda.restore();
  delete process.env.AWS_ACCESS_KEY_ID;
  delete process.env.AWS_SECRET_ACCESS_KEY;
});

async function cli(...args: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(
    ['node', 'syncguard', ...args],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out, err };
}

describe('syncguard approve --function', () => {
  it('invokes the approval function with a signed identity, and prints the approver the function verified', async () => {
    lambda
      .on(InvokeCommand)
      .resolvesOnce({
        StatusCode: 200,
        Payload: body({ planId: 7, status: 'proposed', waiting: true, checksum: SUM, deployment: 'dep-a' }) as never,
      })
      .resolves({
        StatusCode: 200,
        Payload: body({ planId: 7, status: 'approved', approver: 'aws:arn:aws:sts::123456789012:assumed-role/dba/alice' }) as never,
      });
    const r = await cli('approve', '--plan', '7', '--function', 'syncguard-approval', '--comment', 'ok', '--checksum', SUM);
    expect(r).toMatchObject({
      code: 0,
      out: [`plan 7 approved by aws:arn:aws:sts::123456789012:assumed-role/dba/alice (through syncguard-approval; checksum ${SUM})`],
    });
    const calls = lambda.commandCalls(InvokeCommand).map((c) => JSON.parse(Buffer.from(c.args[0].input.Payload as Uint8Array).toString()));
    // first what the plan and the deployment are, then the decision
    expect(calls[0]).toEqual({ action: 'status', planId: 7 });
    const sent = calls[1];
    // no approver name: an STS request signed by the caller, bound to this decision in this deployment
    expect(sent).toEqual({
      action: 'decide',
      planId: 7,
      decision: 'approved',
      checksum: SUM,
      comment: 'ok',
      identity: {
        headers: expect.objectContaining({
          host: 'sts.eu-west-1.amazonaws.com',
          'x-syncguard-approval': `deployment=dep-a;plan=7;checksum=${SUM};decision=approved`,
        }),
        body: 'Action=GetCallerIdentity&Version=2011-06-15',
      },
    });
    expect(sent.identity.headers.authorization).toMatch(/Credential=AKIDALICE\/.*SignedHeaders=[^ ]*x-syncguard-approval/);
  });

  it("reports the function's named error, exit 2", async () => {
    lambda.reset();
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      FunctionError: 'Unhandled',
      Payload: body({
        errorType: 'FourEyesError',
        errorMessage: 'four-eyes approval is on: alice made plan 8 and may not approve it; another person must',
      }) as never,
    });
    const r = await cli('approve', '--plan', '8', '--function', 'syncguard-approval', '--checksum', SUM);
    expect(r.code).toBe(2);
    expect(r.err).toEqual(['syncguard: four-eyes approval is on: alice made plan 8 and may not approve it; another person must']);
  });
});
