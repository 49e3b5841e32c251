// The deployment (docs/deploy.md): per database a scheduled drain, per pair a scheduled verify,
// the fleet and investigation workflows, the approval entry point (the only function that
// completes task tokens), alarms with the rule that starts an investigation, and a dashboard.

import { ArnFormat, Duration, Stack, type StackProps } from 'aws-cdk-lib';
import { PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { NodejsFunction } from 'aws-cdk-lib/aws-lambda-nodejs';
import { Schedule, ScheduleExpression, ScheduleTargetInput } from 'aws-cdk-lib/aws-scheduler';
import { LambdaInvoke as ScheduledInvoke } from 'aws-cdk-lib/aws-scheduler-targets';
import { type ITopic, Topic } from 'aws-cdk-lib/aws-sns';
import { EmailSubscription } from 'aws-cdk-lib/aws-sns-subscriptions';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { ENV } from '../functions/contract.js';
import { alarmsAndDashboard } from './alarms.js';
import type { DeployConfig } from './config.js';
import { makeFunction } from './functions.js';
import { NAG } from './nag.js';
import { fleetStateMachine, investigationStateMachine } from './workflows.js';

export interface SyncGuardStackProps extends StackProps {
  /** How long the investigation waits for a decision (default: the plan expiry). */
  readonly approvalTimeout?: Duration;
}

export class SyncGuardStack extends Stack {
  readonly investigation: StateMachine;
  readonly fleet: StateMachine;
  readonly approval: NodejsFunction;
  readonly topic: ITopic;

  constructor(scope: Construct, id: string, config: DeployConfig, props: SyncGuardStackProps = {}) {
    super(scope, id, props);
    const db = config.databases;
    const overrides = (names: readonly string[]) => {
      const o: Record<string, { host?: string; port?: number }> = {};
      for (const n of names) {
        const d = n === 'control' ? config.control : db[n];
        if (d?.host !== undefined || d?.port !== undefined)
          o[d.secretArn] = { ...(d.host ? { host: d.host } : {}), ...(d.port ? { port: d.port } : {}) };
      }
      return Object.keys(o).length === 0 ? {} : { [ENV.endpointOverrides]: JSON.stringify(o) };
    };
    const pairsEnv = (names: readonly string[]) =>
      JSON.stringify(
        Object.fromEntries(
          names.map((p) => [
            p,
            {
              publisherSecretId: db[config.pairs[p]?.publisher ?? '']?.secretArn,
              subscriberSecretId: db[config.pairs[p]?.subscriber ?? '']?.secretArn,
            },
          ]),
        ),
      );
    const pairDatabases = (names: readonly string[]) =>
      names.flatMap((p) => [config.pairs[p]?.publisher ?? '', config.pairs[p]?.subscriber ?? '']);
    const secretsOf = (names: readonly string[]) =>
      names.map((n) => (n === 'control' ? config.control.secretArn : (db[n]?.secretArn ?? '')));
    const vpcOf = (names: readonly string[]) =>
      names.map((n) => (n === 'control' ? config.control.vpc : db[n]?.vpc)).find((v) => v !== undefined);
    const allPairs = Object.keys(config.pairs);
    const workflowEnv = {
      [ENV.pairs]: pairsEnv(allPairs),
      [ENV.controlSecretId]: config.control.secretArn,
      [ENV.minCoverage]: String(config.thresholds.minCoveragePct),
      [ENV.fourEyes]: String(config.approval.fourEyes),
      [ENV.planMaxRows]: String(config.approval.maxRows),
      [ENV.planExpiryHours]: String(config.approval.expiryHours),
      ...overrides([...pairDatabases(allPairs), 'control']),
    };
    const functions: NodejsFunction[] = [];
    const fn = (spec: Parameters<typeof makeFunction>[2]) => {
      const f = makeFunction(this, config, spec);
      functions.push(f);
      return f;
    };

    // scheduled drains, one function per database (one drain at a time: reserved concurrency 1)
    for (const name of Object.keys(db)) {
      const drain = fn({
        id: `Drain-${name}`,
        handler: 'drain',
        description: `syncguard: drain database ${name}`,
        environment: {
          [ENV.databases]: JSON.stringify({ [name]: { secretId: db[name]?.secretArn } }),
          [ENV.database]: name,
          ...(db[name]?.drainWorkers !== undefined ? { [ENV.drainWorkers]: String(db[name]?.drainWorkers) } : {}),
          ...overrides([name]),
        },
        secretArns: secretsOf([name]),
        ...(db[name]?.vpc ? { vpc: db[name]?.vpc } : {}),
        timeout: Duration.minutes(Math.min(15, Math.max(1, config.schedules.drainMinutes - 1))),
        reservedConcurrency: 1,
      });
      new Schedule(this, `Drain-${name}-Schedule`, {
        description: `drain ${name} every ${config.schedules.drainMinutes} min`,
        schedule: ScheduleExpression.rate(Duration.minutes(config.schedules.drainMinutes)),
        target: new ScheduledInvoke(drain, {
          input: ScheduleTargetInput.fromObject({ database: name }),
          retryAttempts: 0,
          role: this.schedulerRole(drain),
        }),
      });
    }
    // scheduled verifies, one function per pair
    for (const [pair, p] of Object.entries(config.pairs)) {
      const names = [p.publisher, p.subscriber, 'control'];
      const verify = fn({
        id: `Verify-${pair}`,
        handler: 'verify',
        description: `syncguard: verify pair ${pair}`,
        environment: {
          [ENV.pairs]: pairsEnv([pair]),
          [ENV.controlSecretId]: config.control.secretArn,
          [ENV.minCoverage]: String(config.thresholds.minCoveragePct),
          ...overrides(names),
        },
        secretArns: secretsOf(names),
        ...(vpcOf(names) ? { vpc: vpcOf(names) } : {}),
        timeout: Duration.minutes(5),
        reservedConcurrency: 1,
      });
      for (const table of p.tables === 'all' ? [undefined] : p.tables) {
        new Schedule(this, `Verify-${pair}${table === undefined ? '' : `-${table.replace(/[^A-Za-z0-9]/g, '-')}`}-Schedule`, {
          description: `verify ${pair}${table === undefined ? '' : ` ${table}`} every ${config.schedules.verifyMinutes} min`,
          schedule: ScheduleExpression.rate(Duration.minutes(config.schedules.verifyMinutes)),
          target: new ScheduledInvoke(verify, {
            input: ScheduleTargetInput.fromObject(table === undefined ? { pair } : { pair, table }),
            retryAttempts: 0,
            role: this.schedulerRole(verify),
          }),
        });
      }
    }
    // the workflows' functions: every pair's databases and the control plane
    const names = [...new Set([...pairDatabases(allPairs), 'control'])];
    const shared = { environment: workflowEnv, secretArns: secretsOf(names), ...(vpcOf(names) ? { vpc: vpcOf(names) } : {}) };
    const verifyAny = fn({
      id: 'WorkflowVerify',
      handler: 'verify',
      description: 'syncguard: verify a pair for a workflow',
      timeout: Duration.minutes(5),
      ...shared,
    });
    const inspect = fn({
      id: 'Inspect',
      handler: 'inspect',
      description: 'syncguard: inspect diverged buckets and store plans',
      timeout: Duration.minutes(5),
      ...shared,
    });
    const repair = fn({
      id: 'Repair',
      handler: 'repair',
      description: 'syncguard: apply an approved plan',
      timeout: Duration.minutes(5),
      ...shared,
    });
    this.approval = fn({
      id: 'Approval',
      handler: 'approval',
      description: 'syncguard: record a decision on a plan and complete the workflow waiting for it',
      environment: workflowEnv,
      secretArns: secretsOf(['control']),
      ...(config.control.vpc ? { vpc: config.control.vpc } : {}),
      timeout: Duration.minutes(1),
    });

    const topic =
      'topicArn' in config.notify
        ? Topic.fromTopicArn(this, 'Notify', config.notify.topicArn)
        : new Topic(this, 'Notify', { topicName: `${config.name}-notify`, enforceSSL: true });
    if ('email' in config.notify && topic instanceof Topic) topic.addSubscription(new EmailSubscription(config.notify.email));
    this.topic = topic;

    const workflows = new Construct(this, 'Workflows');
    this.fleet = fleetStateMachine(workflows, config, verifyAny);
    this.investigation = investigationStateMachine(
      workflows,
      config,
      { verify: verifyAny, inspect, approval: this.approval, repair },
      topic,
      props.approvalTimeout ?? Duration.hours(config.approval.expiryHours),
    );
    // only the approval function completes task tokens, and only of the investigation (its ARN
    // from its fixed name: a reference would make the function and the state machine depend on each other)
    const investigationArn = this.formatArn({
      service: 'states',
      resource: 'stateMachine',
      resourceName: `${config.name}-investigation`,
      arnFormat: ArnFormat.COLON_RESOURCE_NAME,
    });
    this.approval.addToRolePolicy(
      new PolicyStatement({ actions: ['states:SendTaskSuccess', 'states:SendTaskFailure'], resources: [investigationArn] }),
    );

    alarmsAndDashboard(new Construct(this, 'Monitoring'), config, topic, {
      functions,
      stateMachines: [this.fleet, this.investigation],
      investigation: this.investigation,
    });
  }

  /** The role EventBridge Scheduler assumes to invoke one function (and only it). */
  private schedulerRole(fn: NodejsFunction): Role {
    const id = `${fn.node.id}-SchedulerRole`;
    const existing = this.node.tryFindChild(id) as Role | undefined;
    if (existing !== undefined) return existing;
    const role = new Role(this, id, {
      assumedBy: new ServicePrincipal('scheduler.amazonaws.com'),
      description: `invokes ${fn.node.id} on its schedule`,
    });
    NAG.invokesFunction(role, fn);
    return role;
  }
}
