// The approver of a repair through the Lambdas is the caller's AWS identity, verified by STS (issue
// 17 item 9): STS is faked at the HTTP boundary with the SDK's real signer; the approval function
// refuses an identity signed for another plan, decision, deployment or checksum, or pointed at
// another host, before anything is sent, and records the principals STS names.

import { describe, expect, it } from 'vitest';
import { OWNER } from '../../dev/pair.js';
import { handler as approval } from '../../functions/approval.js';
import { decideRemotely } from '../../functions/commons/remote-approval.js';
import { ERROR_NAMES } from '../../functions/core/errors.js';
import { parseTableName } from '../../functions/core/identifiers.js';
import { connect } from '../../functions/db/connect.js';
import { installControl } from '../../functions/db/install.js';
import { storePlan } from '../../functions/flows/plans.js';
import { planBucket } from '../../functions/flows/repair.js';
import { handler as inspect } from '../../functions/inspect.js';
import { handler as repair } from '../../functions/repair.js';
import { AWS_APPROVERS, bindingFacts, decide, PRINCIPALS, signedAs, stsRequests } from '../support/aws-identity.js';
import { fakeApprovalFunction, INSPECT_ARN, T, useInvestigationLambdas } from '../support/investigation-lambdas.js';

const { ctx, call } = useInvestigationLambdas();

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
      await c.close();
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
      await c.close();
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
      await other.close();
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
      await c.close();
    }
    await call(repair, { planId });
    await ctx.pair.sub.query(`UPDATE ${T} SET amount = 1900 WHERE id = 1900`);
  });
});
