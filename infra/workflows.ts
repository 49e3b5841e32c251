// The Step Functions workflows (JSONPath: JSONata states are not run by the local test runner).
//   fleet:          verify every configured pair now (a Map over the pairs).
//   investigation:  verify the pair; for each diverged bucket: inspect and plan, wait for a
//                   decision (task token, with a timeout that ends the execution as expired) and,
//                   in parallel, notify the approvers once the token is stored (so that no
//                   decision can come before the workflow waits for it), repair (claimed for this
//                   execution, so that a retry continues it), re-verify (also when the plan was
//                   applied already). Retries on transient errors; Catch routes by the error
//                   names of functions/contract.ts to clear terminal states.

import { Duration } from 'aws-cdk-lib';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import {
  Choice,
  Condition,
  DefinitionBody,
  Fail,
  IntegrationPattern,
  JsonPath,
  LogLevel,
  Map as MapState,
  Parallel,
  Pass,
  StateMachine,
  Succeed,
  TaskInput,
  Timeout,
  Wait,
  WaitTime,
} from 'aws-cdk-lib/aws-stepfunctions';
import { LambdaInvoke, SnsPublish } from 'aws-cdk-lib/aws-stepfunctions-tasks';
import type { Construct } from 'constructs';
import { ERROR_NAMES } from '../functions/contract.js';
import type { DeployConfig } from './config.js';
import { NAG } from './nag.js';

/** Errors worth retrying: the Lambda service's own, a lost database, a time limit. */
const TRANSIENT = [
  'Lambda.ServiceException',
  'Lambda.AWSLambdaException',
  'Lambda.SdkClientException',
  'Lambda.TooManyRequestsException',
  ERROR_NAMES.ConnectionError,
  ERROR_NAMES.TimeLimitError,
];

function invoke(scope: Construct, id: string, fn: IFunction, payload: Record<string, unknown>, resultPath: string): LambdaInvoke {
  const task = new LambdaInvoke(scope, id, {
    lambdaFunction: fn,
    payload: TaskInput.fromObject(payload),
    payloadResponseOnly: true,
    resultPath,
  });
  task.addRetry({ errors: TRANSIENT, interval: Duration.seconds(5), maxAttempts: 3, backoffRate: 2 });
  return task;
}

function acknowledge(sm: StateMachine, config: DeployConfig, fns: readonly IFunction[]): void {
  for (const f of new Set(fns)) NAG.invokesFunction(sm, f);
  NAG.logDelivery(sm);
  if (!config.xray) NAG.noXray(sm);
}

function logged(scope: Construct, id: string, config: DeployConfig) {
  return {
    logs: {
      destination: new LogGroup(scope, `${id}Logs`, { retention: config.logRetentionDays }),
      level: LogLevel.ALL,
      includeExecutionData: false,
    },
    tracingEnabled: config.xray,
  };
}

export function fleetStateMachine(scope: Construct, config: DeployConfig, verify: IFunction): StateMachine {
  const pairs = new Pass(scope, 'ConfiguredPairs', {
    result: { value: Object.keys(config.pairs).map((pair) => ({ pair })) },
    resultPath: '$.pairs',
  });
  const each = new MapState(scope, 'VerifyEachPair', { itemsPath: '$.pairs', maxConcurrency: 4, resultPath: '$.results' });
  each.itemProcessor(invoke(scope, 'VerifyOnePair', verify, { 'pair.$': '$.pair' }, '$.verify'));
  const sm = new StateMachine(scope, 'Fleet', {
    stateMachineName: `${config.name}-verify-fleet`,
    definitionBody: DefinitionBody.fromChainable(pairs.next(each)),
    timeout: Duration.hours(1),
    ...logged(scope, 'Fleet', config),
  });
  acknowledge(sm, config, [verify]);
  return sm;
}

export interface InvestigationFunctions {
  readonly verify: IFunction;
  readonly inspect: IFunction;
  readonly approval: IFunction;
  readonly repair: IFunction;
}

export function investigationStateMachine(
  scope: Construct,
  config: DeployConfig,
  fns: InvestigationFunctions,
  topic: ITopic,
  approvalTimeout: Duration,
): StateMachine {
  const verify = invoke(scope, 'VerifyPair', fns.verify, { 'pair.$': '$.pair' }, '$.verify');
  const inspect = invoke(scope, 'InspectAndPlan', fns.inspect, { 'divergenceIds.$': '$.verify.divergenceIds' }, '$.inspect');
  const notify = new SnsPublish(scope, 'NotifyApprovers', {
    topic,
    subject: JsonPath.format('syncguard: plan {} waits for approval', JsonPath.stringAt('$.plan.planId')),
    message: TaskInput.fromText(
      JsonPath.format(
        'Plan {} repairs {} rows of {} bucket {} on pair {} (checksum {}, expires {}). Review it with: syncguard plan --table {} --bucket {}. Approve (as your AWS identity): syncguard approve --plan {} --checksum {} --function <approval function>; reject: the same with --reject.',
        JsonPath.stringAt('$.plan.planId'),
        JsonPath.stringAt('$.plan.rowCount'),
        JsonPath.stringAt('$.plan.table'),
        JsonPath.stringAt('$.plan.bucket'),
        JsonPath.stringAt('$.plan.pair'),
        JsonPath.stringAt('$.plan.checksum'),
        JsonPath.stringAt('$.plan.expiresAt'),
        JsonPath.stringAt('$.plan.table'),
        JsonPath.stringAt('$.plan.bucket'),
        JsonPath.stringAt('$.plan.planId'),
        JsonPath.stringAt('$.plan.checksum'),
      ),
    ),
    resultPath: JsonPath.DISCARD,
  });
  const approve = new LambdaInvoke(scope, 'WaitForApproval', {
    lambdaFunction: fns.approval,
    integrationPattern: IntegrationPattern.WAIT_FOR_TASK_TOKEN,
    payload: TaskInput.fromObject({ action: 'await', 'planId.$': '$.plan.planId', taskToken: JsonPath.taskToken }),
    taskTimeout: Timeout.duration(approvalTimeout),
    resultPath: '$.decision',
  });
  // approvers hear of the plan only once the waiting step stored its token
  const stored = invoke(scope, 'TokenStored', fns.approval, { action: 'status', 'planId.$': '$.plan.planId' }, '$.approvalStatus');
  const notYet = new Wait(scope, 'TokenNotStoredYet', { time: WaitTime.duration(Duration.seconds(1)) });
  const notifyOnceStored = stored.next(
    new Choice(scope, 'TokenStored?')
      .when(Condition.booleanEquals('$.approvalStatus.waiting', true), notify)
      .otherwise(notYet.next(stored)),
  );
  const approval = new Parallel(scope, 'Approval', { resultSelector: { 'decision.$': '$[0].decision' }, resultPath: '$.approval' });
  approval.branch(approve);
  approval.branch(notifyOnceStored);
  // the claim is this execution's: a retry after a lost connection continues it, another run is refused
  const repair = invoke(scope, 'Repair', fns.repair, { 'planId.$': '$.plan.planId', 'claim.$': '$$.Execution.Id' }, '$.repair');
  const reverify = invoke(scope, 'ReVerify', fns.verify, { 'pair.$': '$.plan.pair', 'table.$': '$.plan.table' }, '$.reverify');

  const expired = new Fail(scope, 'PlanExpired', { error: ERROR_NAMES.PlanExpiredError, cause: 'no decision before the plan expired' });
  const rejected = new Succeed(scope, 'Rejected', { comment: 'a person rejected the plan: nothing was changed' });
  const terminal = (name: string, error: string) => new Fail(scope, name, { error, causePath: '$.error.Cause' });
  approval.addCatch(expired, { errors: ['States.Timeout'], resultPath: '$.error' });
  approval.addCatch(rejected, { errors: [ERROR_NAMES.PlanRejectedError], resultPath: '$.error' });
  approval.addCatch(terminal('ApprovalRefused', ERROR_NAMES.FourEyesError), { errors: [ERROR_NAMES.FourEyesError], resultPath: '$.error' });
  repair.addCatch(expired, { errors: [ERROR_NAMES.PlanExpiredError], resultPath: '$.error' });
  // applied by another run, or being applied by one whose claim holds: whether the bucket is now
  // equal is for the re-verify to say
  repair.addCatch(reverify, { errors: [ERROR_NAMES.PlanAlreadyAppliedError, ERROR_NAMES.PlanClaimedError], resultPath: '$.error' });
  for (const [name, error] of [
    ['ChangedSinceInspection', ERROR_NAMES.PreconditionFailedError],
    ['NotApproved', ERROR_NAMES.PlanNotApprovedError],
    ['PlanRejected', ERROR_NAMES.PlanRejectedError],
    ['Tampered', ERROR_NAMES.PlanTamperedError],
    ['RegisteredAgain', ERROR_NAMES.PlanStaleError],
  ] as const) {
    repair.addCatch(terminal(name, error), { errors: [error], resultPath: '$.error' });
  }
  const inSyncAfter = new Choice(scope, 'InSyncAfterRepair?')
    .when(Condition.stringEquals('$.reverify.status', 'in_sync'), new Succeed(scope, 'Repaired'))
    .otherwise(
      new Fail(scope, 'StillDiverged', { error: 'StillDiverged', cause: 'the table still differs after the repair; inspect again' }),
    );
  const perPlan = approval.next(repair).next(reverify).next(inSyncAfter);
  const eachPlan = new MapState(scope, 'EachPlan', {
    itemsPath: '$.inspect.plans',
    maxConcurrency: 1,
    itemSelector: { 'plan.$': '$$.Map.Item.Value' },
    resultPath: JsonPath.DISCARD,
  });
  eachPlan.itemProcessor(perPlan);
  const verdict = new Choice(scope, 'Diverged?')
    .when(Condition.stringEquals('$.verify.status', 'diverged'), inspect.next(eachPlan).next(new Succeed(scope, 'Investigated')))
    .when(Condition.stringEquals('$.verify.status', 'in_sync'), new Succeed(scope, 'InSync'))
    .otherwise(
      new Fail(scope, 'NoVerdict', {
        error: 'VerifyIncomplete',
        cause: 'verify gave no verdict (see its reasons); the alarm stays until it does',
      }),
    );
  const sm = new StateMachine(scope, 'Investigation', {
    stateMachineName: `${config.name}-investigation`,
    definitionBody: DefinitionBody.fromChainable(verify.next(verdict)),
    timeout: Duration.hours(config.approval.expiryHours + 2),
    ...logged(scope, 'Investigation', config),
  });
  acknowledge(sm, config, [fns.verify, fns.inspect, fns.approval, fns.repair]);
  return sm;
}
