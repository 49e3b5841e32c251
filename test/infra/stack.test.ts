// The CDK app, synthesized offline with the example config: specific properties of the template
// (not a snapshot), cdk-nag AwsSolutions clean, every handler bundled by the local esbuild.

import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { App, Validations } from 'aws-cdk-lib';
import { Match, Template } from 'aws-cdk-lib/assertions';
import { AwsSolutionsChecks } from 'cdk-nag';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_NAMESPACE, DEFAULT_SERVICE, ERROR_NAMES, METRIC } from '../../functions/contract.js';
import { type DeployConfig, loadDeployConfig, parseDeployConfig } from '../../infra/config.js';
import { SyncGuardStack } from '../../infra/stack.js';

const config: DeployConfig = loadDeployConfig('syncguard.config.example.json');
let t: Template;
let assembly: string;
// the cloud assembly goes to a folder of our own, removed afterwards (CDK's default temp folder stays)
const outdir = mkdtempSync(join(tmpdir(), 'sg-cdk-'));
afterAll(() => rmSync(outdir, { recursive: true, force: true }));

beforeAll(() => {
  // findings are errors here: synth throws on any unacknowledged cdk-nag finding
  const app = new App({ outdir, context: { '@aws-cdk/core:validateAgainstDefaultRules': true } });
  const stack = new SyncGuardStack(app, 'test-stack', config);
  Validations.of(app).addPlugins(new AwsSolutionsChecks(app));
  assembly = app.synth().directory;
  t = Template.fromStack(stack);
}, 120_000);

const fnId = (prefix: string) => Object.keys(t.findResources('AWS::Lambda::Function')).find((k) => k.startsWith(prefix)) as string;

describe('the deployment', () => {
  it('bundles every handler with the local esbuild as ESM, nodejs24.x on arm64', () => {
    const fns = t.findResources('AWS::Lambda::Function');
    expect(
      Object.keys(fns)
        .map((k) => k.replace(/[A-F0-9]{8}$/, ''))
        .sort(),
    ).toEqual(['Approval', 'Drainblue', 'Draingreen', 'Inspect', 'Repair', 'Verifyupgrade', 'WorkflowVerify'].sort());
    for (const f of Object.values(fns)) {
      expect(f.Properties).toMatchObject({ Runtime: 'nodejs24.x', Architectures: ['arm64'], Handler: 'index.handler' });
    }
    const bundles = readdirSync(assembly).filter((d) => d.startsWith('asset.') && existsSync(join(assembly, d, 'index.mjs')));
    expect(bundles.length).toBeGreaterThanOrEqual(5); // drain, verify, inspect, repair, approval (identical bundles share an asset)
  });

  it('drains each database and verifies each pair on its schedule', () => {
    t.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(5 minutes)',
      Target: Match.objectLike({ Arn: { 'Fn::GetAtt': [fnId('Drainblue'), 'Arn'] }, Input: JSON.stringify({ database: 'blue' }) }),
    });
    t.hasResourceProperties('AWS::Scheduler::Schedule', {
      ScheduleExpression: 'rate(15 minutes)',
      Target: Match.objectLike({ Arn: { 'Fn::GetAtt': [fnId('Verifyupgrade'), 'Arn'] }, Input: JSON.stringify({ pair: 'upgrade' }) }),
    });
    t.resourceCountIs('AWS::Scheduler::Schedule', 3);
    t.hasResourceProperties('AWS::Lambda::Function', {
      FunctionName: Match.absent(),
      ReservedConcurrentExecutions: 1,
      Environment: { Variables: Match.objectLike({ SYNCGUARD_DATABASE: 'blue', SYNCGUARD_DRAIN_WORKERS: '2' }) },
    });
  });

  it('lets each function read only its own secrets, and only the approval function complete task tokens', () => {
    const policyOf = (fn: string) => {
      const props = t.findResources('AWS::Lambda::Function')[fnId(fn)]?.Properties as { Role: { 'Fn::GetAtt': [string] } } | undefined;
      const role = props?.Role['Fn::GetAtt'][0] ?? '(no role)';
      return Object.values(t.findResources('AWS::IAM::Policy')).find((p) => JSON.stringify(p.Properties.Roles).includes(role))?.Properties
        .PolicyDocument.Statement as unknown[];
    };
    expect(policyOf('Drainblue')).toEqual(
      expect.arrayContaining([{ Action: 'secretsmanager:GetSecretValue', Effect: 'Allow', Resource: config.databases.blue?.secretArn }]),
    );
    expect(JSON.stringify(policyOf('Drainblue'))).not.toContain('green');
    expect(JSON.stringify(policyOf('Approval'))).not.toContain(config.databases.blue?.secretArn);
    t.hasResourceProperties('AWS::IAM::Policy', {
      PolicyDocument: {
        Statement: Match.arrayWith([
          Match.objectLike({ Action: ['states:SendTaskSuccess', 'states:SendTaskFailure'], Resource: { 'Fn::Join': Match.anyValue() } }),
        ]),
      },
    });
    const senders = Object.values(t.findResources('AWS::IAM::Policy')).filter((p) => JSON.stringify(p).includes('states:SendTask'));
    expect(senders).toHaveLength(1);
  });

  it('waits for a decision with a task token and a timeout, and routes by the error names of the contract', () => {
    const sm = Object.values(t.findResources('AWS::StepFunctions::StateMachine')).find((r) =>
      JSON.stringify(r.Properties.DefinitionString).includes('waitForTaskToken'),
    );
    const text = JSON.stringify(sm?.Properties.DefinitionString);
    expect(text).toContain('lambda:invoke.waitForTaskToken');
    expect(text).toContain('\\"taskToken.$\\":\\"$$.Task.Token\\"');
    expect(text).toContain(`\\"TimeoutSeconds\\":${config.approval.expiryHours * 3600}`);
    for (const e of [
      ERROR_NAMES.PlanExpiredError,
      ERROR_NAMES.PlanRejectedError,
      ERROR_NAMES.PreconditionFailedError,
      ERROR_NAMES.ConnectionError,
      'States.Timeout',
    ]) {
      expect(text).toContain(`\\"${e}\\"`);
    }
  });

  it('alarms on divergence, coverage, dirty age, errors and failed workflows, with the metrics the handlers emit', () => {
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      AlarmName: 'syncguard-upgrade-divergence',
      Namespace: DEFAULT_NAMESPACE,
      MetricName: METRIC.DivergentBuckets,
      Dimensions: [
        { Name: 'Pair', Value: 'upgrade' },
        { Name: 'service', Value: DEFAULT_SERVICE },
      ],
      ComparisonOperator: 'GreaterThanThreshold',
      Threshold: 0,
      AlarmActions: [{ Ref: Match.stringLikeRegexp('^Notify') }],
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: METRIC.CoveragePct,
      ComparisonOperator: 'LessThanThreshold',
      Threshold: 100,
      TreatMissingData: 'breaching',
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', {
      MetricName: METRIC.OldestDirtyAgeSeconds,
      Dimensions: Match.arrayWith([{ Name: 'Database', Value: 'green' }]),
      Threshold: 900,
    });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'Errors', Namespace: 'AWS/Lambda' });
    t.hasResourceProperties('AWS::CloudWatch::Alarm', { MetricName: 'ExecutionsFailed', Namespace: 'AWS/States' });
    t.resourceCountIs('AWS::CloudWatch::Dashboard', 1);
  });

  it('starts the investigation of the pair when its divergence alarm fires', () => {
    t.hasResourceProperties('AWS::Events::Rule', {
      EventPattern: {
        source: ['aws.cloudwatch'],
        'detail-type': ['CloudWatch Alarm State Change'],
        detail: { alarmName: [{ Ref: Match.stringLikeRegexp('^MonitoringupgradeDivergence') }], state: { value: ['ALARM'] } },
      },
      Targets: [
        Match.objectLike({ Arn: { Ref: Match.stringLikeRegexp('^WorkflowsInvestigation') }, Input: JSON.stringify({ pair: 'upgrade' }) }),
      ],
    });
  });

  it('keeps logs for the configured days, and the topic for TLS only', () => {
    t.allResourcesProperties('AWS::Logs::LogGroup', { RetentionInDays: 30 });
    t.hasResourceProperties('AWS::SNS::TopicPolicy', {
      PolicyDocument: {
        Statement: Match.arrayWith([Match.objectLike({ Effect: 'Deny', Condition: { Bool: { 'aws:SecureTransport': 'false' } } })]),
      },
    });
  });
});

describe('the config file', () => {
  const base = () => structuredClone(JSON.parse(JSON.stringify(config))) as Record<string, unknown>;
  it('refuses unknown keys, bad ARNs and pairs naming unknown databases, naming the key', () => {
    expect(() => parseDeployConfig({ ...base(), extra: 1 })).toThrow(/Unrecognized key: "extra"/);
    const bad = base();
    (bad.control as Record<string, unknown>).secretArn = 'my-secret';
    expect(() => parseDeployConfig(bad)).toThrow(/must be an ARN of secretsmanager[\s\S]*→ at control\.secretArn/);
    const pair = base();
    (pair.pairs as Record<string, Record<string, unknown>>).upgrade = { publisher: 'blue', subscriber: 'purple' };
    expect(() => parseDeployConfig(pair)).toThrow(
      /names database "purple"; the databases are blue, green[\s\S]*→ at pairs\.upgrade\.subscriber/,
    );
    const sched = base();
    sched.schedules = { drainMinutes: 0 };
    expect(() => parseDeployConfig(sched)).toThrow(/→ at schedules\.drainMinutes/);
    const workers = base();
    (workers.databases as Record<string, Record<string, unknown>>).blue = {
      ...(base().databases as Record<string, object>).blue,
      drainWorkers: 0,
    };
    expect(() => parseDeployConfig(workers)).toThrow(/→ at databases\.blue\.drainWorkers/);
  });

  it('takes tables as the CLI does, quoted where a part is not a plain name', () => {
    const ok = base();
    (ok.pairs as Record<string, Record<string, unknown>>).upgrade = {
      publisher: 'blue',
      subscriber: 'green',
      tables: ['public.orders', '"Sales"."Order Items"', '"app.v2"."orders.2026"'],
    };
    expect(parseDeployConfig(ok).pairs.upgrade?.tables).toHaveLength(3);
    const bad = base();
    (bad.pairs as Record<string, Record<string, unknown>>).upgrade = {
      publisher: 'blue',
      subscriber: 'green',
      tables: ['Sales.Order Items'],
    };
    expect(() => parseDeployConfig(bad)).toThrow(/must be schema\.table[\s\S]*→ at pairs\.upgrade\.tables\[0\]/);
  });
});
