// Alarms, the rule that starts an investigation when a pair's divergence alarm fires, and the
// dashboard. Every metric is named from functions/contract.ts, with the dimensions the handlers
// emit (service, and Pair or Database).

import { Duration } from 'aws-cdk-lib';
import { Alarm, ComparisonOperator, Dashboard, GraphWidget, Metric, TextWidget, TreatMissingData } from 'aws-cdk-lib/aws-cloudwatch';
import { SnsAction } from 'aws-cdk-lib/aws-cloudwatch-actions';
import { Rule, RuleTargetInput } from 'aws-cdk-lib/aws-events';
import { SfnStateMachine } from 'aws-cdk-lib/aws-events-targets';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import type { ITopic } from 'aws-cdk-lib/aws-sns';
import type { StateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import type { Construct } from 'constructs';
import { DEFAULT_NAMESPACE, DEFAULT_SERVICE, DIMENSION, METRIC } from '../functions/contract.js';
import type { DeployConfig } from './config.js';

export function handlerMetric(
  name: keyof typeof METRIC,
  dimension: { Pair: string } | { Database: string },
  period: Duration,
  statistic = 'Maximum',
): Metric {
  return new Metric({
    namespace: DEFAULT_NAMESPACE,
    metricName: METRIC[name],
    dimensionsMap: {
      service: DEFAULT_SERVICE,
      ...('Pair' in dimension ? { [DIMENSION.Pair]: dimension.Pair } : { [DIMENSION.Database]: dimension.Database }),
    },
    period,
    statistic,
  });
}

export interface Watched {
  readonly functions: readonly IFunction[];
  readonly stateMachines: readonly StateMachine[];
  readonly investigation: StateMachine;
}

export function alarmsAndDashboard(scope: Construct, config: DeployConfig, topic: ITopic, watched: Watched): void {
  const action = new SnsAction(topic);
  const verifyPeriod = Duration.minutes(Math.max(5, config.schedules.verifyMinutes));
  const drainPeriod = Duration.minutes(Math.max(5, config.schedules.drainMinutes));
  const alarm = (id: string, props: ConstructorParameters<typeof Alarm>[2]) => {
    const a = new Alarm(scope, id, props);
    a.addAlarmAction(action);
    return a;
  };
  const widgets: (GraphWidget | TextWidget)[] = [];
  for (const [pair, p] of Object.entries(config.pairs)) {
    const divergence = alarm(`${pair}Divergence`, {
      alarmName: `${config.name}-${pair}-divergence`,
      alarmDescription: `pair ${pair}: verify confirmed diverged buckets; the investigation workflow starts (docs/operations.md)`,
      metric: handlerMetric('DivergentBuckets', { Pair: pair }, verifyPeriod),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
    alarm(`${pair}Coverage`, {
      alarmName: `${config.name}-${pair}-coverage`,
      alarmDescription: `pair ${pair}: verify compared less than ${config.thresholds.minCoveragePct} % of the buckets, or did not run (docs/operations.md)`,
      metric: handlerMetric('CoveragePct', { Pair: pair }, verifyPeriod, 'Minimum'),
      threshold: config.thresholds.minCoveragePct,
      comparisonOperator: ComparisonOperator.LESS_THAN_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: TreatMissingData.BREACHING,
    });
    new Rule(scope, `${pair}Investigate`, {
      description: `start the investigation of pair ${pair} when its divergence alarm fires`,
      eventPattern: {
        source: ['aws.cloudwatch'],
        detailType: ['CloudWatch Alarm State Change'],
        detail: { alarmName: [divergence.alarmName], state: { value: ['ALARM'] } },
      },
      targets: [new SfnStateMachine(watched.investigation, { input: RuleTargetInput.fromObject({ pair }) })],
    });
    widgets.push(
      new TextWidget({ markdown: `## pair ${pair}: ${p.publisher} → ${p.subscriber}`, width: 24, height: 1 }),
      new GraphWidget({
        title: `${pair}: drain lag (oldest dirty mark, s)`,
        left: [p.publisher, p.subscriber].map((d) => handlerMetric('OldestDirtyAgeSeconds', { Database: d }, drainPeriod)),
        width: 6,
      }),
      new GraphWidget({
        title: `${pair}: coverage %`,
        left: [handlerMetric('CoveragePct', { Pair: pair }, verifyPeriod, 'Minimum')],
        width: 6,
      }),
      new GraphWidget({
        title: `${pair}: diverged buckets`,
        left: [handlerMetric('DivergentBuckets', { Pair: pair }, verifyPeriod)],
        width: 6,
      }),
      new GraphWidget({
        title: `${pair}: verify duration (ms)`,
        left: [handlerMetric('VerifyDurationMs', { Pair: pair }, verifyPeriod)],
        width: 6,
      }),
    );
  }
  for (const db of Object.keys(config.databases)) {
    alarm(`${db}DirtyAge`, {
      alarmName: `${config.name}-${db}-oldest-dirty-age`,
      alarmDescription: `database ${db}: the oldest dirty mark is older than ${config.thresholds.oldestDirtyAgeSeconds} s, or the drain did not report (docs/operations.md)`,
      metric: handlerMetric('OldestDirtyAgeSeconds', { Database: db }, drainPeriod),
      threshold: config.thresholds.oldestDirtyAgeSeconds,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 2,
      treatMissingData: TreatMissingData.BREACHING,
    });
  }
  watched.functions.forEach((fn, i) => {
    alarm(`FunctionErrors${i}`, {
      alarmDescription: `Lambda ${fn.node.id} failed (docs/operations.md)`,
      metric: fn.metricErrors({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  });
  watched.stateMachines.forEach((sm, i) => {
    alarm(`WorkflowFailed${i}`, {
      alarmDescription: `state machine ${sm.node.id} ended in a failure state (docs/operations.md)`,
      metric: sm.metricFailed({ period: Duration.minutes(5), statistic: 'Sum' }),
      threshold: 0,
      comparisonOperator: ComparisonOperator.GREATER_THAN_THRESHOLD,
      evaluationPeriods: 1,
      treatMissingData: TreatMissingData.NOT_BREACHING,
    });
  });
  new Dashboard(scope, 'Dashboard', { dashboardName: `${config.name}-pairs`, widgets: [widgets] });
}
