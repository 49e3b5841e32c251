import { InvokeCommand, LambdaClient } from '@aws-sdk/client-lambda';
import { GetCallerIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { mockClient } from 'aws-sdk-client-mock';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../cli/main.js';

const lambda = mockClient(LambdaClient);
const sts = mockClient(STSClient);
const body = (o: unknown) => new Uint8Array(Buffer.from(JSON.stringify(o)));

beforeAll(() => {
  process.env.AWS_REGION = 'eu-west-1';
  sts.on(GetCallerIdentityCommand).resolves({ Arn: 'arn:aws:sts::123456789012:assumed-role/dba/alice' });
});
afterAll(() => {
  lambda.restore();
  sts.restore();
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
  it('invokes the approval function as the caller, who is the approver', async () => {
    lambda.on(InvokeCommand).resolves({ StatusCode: 200, Payload: body({ planId: 7, status: 'approved' }) as never });
    const r = await cli('approve', '--plan', '7', '--function', 'syncguard-approval', '--comment', 'ok');
    expect(r).toMatchObject({
      code: 0,
      out: ['plan 7 approved by arn:aws:sts::123456789012:assumed-role/dba/alice (through syncguard-approval)'],
    });
    const sent = JSON.parse(Buffer.from(lambda.commandCalls(InvokeCommand)[0]?.args[0].input.Payload as Uint8Array).toString());
    expect(sent).toEqual({
      action: 'decide',
      planId: 7,
      decision: 'approved',
      approver: 'arn:aws:sts::123456789012:assumed-role/dba/alice',
      comment: 'ok',
    });
  });

  it("reports the function's named error, exit 2", async () => {
    lambda.on(InvokeCommand).resolves({
      StatusCode: 200,
      FunctionError: 'Unhandled',
      Payload: body({
        errorType: 'FourEyesError',
        errorMessage: 'four-eyes approval is on: alice made plan 8 and may not approve it; another person must',
      }) as never,
    });
    const r = await cli('approve', '--plan', '8', '--function', 'syncguard-approval');
    expect(r.code).toBe(2);
    expect(r.err).toEqual(['syncguard: four-eyes approval is on: alice made plan 8 and may not approve it; another person must']);
  });
});
