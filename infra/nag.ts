// cdk-nag AwsSolutions (v3: a CDK validation plugin). Every finding is fixed, or acknowledged
// here, on the construct it concerns, with the reason it does not apply; cdk-nag 3 acknowledges
// findings one by one, so each acknowledgment names exactly the resource it allows.

import { type CfnElement, Stack, Validations } from 'aws-cdk-lib';
import type { IConstruct } from 'constructs';

/** The CloudFormation logical id of a construct's resource, as cdk-nag prints it. */
function logicalId(c: IConstruct): string {
  const stack = Stack.of(c);
  return stack.resolve(stack.getLogicalId(c.node.defaultChild as CfnElement)) as string;
}

export const NAG = {
  /** A function's role writes to the streams of its own log group. */
  logStreams(role: IConstruct, logGroup: IConstruct): void {
    Validations.of(role).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logicalId(logGroup)}.Arn>:*]`,
      reason: "Log streams are created by Lambda at run time; the wildcard covers only the streams of this function's own log group.",
    });
  },
  vpcAccess(role: IConstruct): void {
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AWSLambdaVPCAccessExecutionRole]',
      reason:
        'The AWS-maintained policy holds exactly the network-interface calls Lambda needs to attach a function to the subnets of its database.',
    });
  },
  xray(role: IConstruct): void {
    Validations.of(role).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'xray:PutTraceSegments and xray:PutTelemetryRecords have no resource type; they are only granted when X-Ray is on.',
    });
  },
  /** A scheduler role or a state machine invokes the versions of the functions it calls. */
  invokesFunction(invoker: IConstruct, fn: IConstruct): void {
    Validations.of(invoker).acknowledge({
      id: `AwsSolutions-IAM5[Resource::<${logicalId(fn)}.Arn>:*]`,
      reason: 'The grant covers any version or alias of this one function (how CDK grants invoke); it reaches no other function.',
    });
  },
  /** State machine logging needs the log-delivery calls, which take no resource. */
  logDelivery(stateMachine: IConstruct): void {
    Validations.of(stateMachine).acknowledge({
      id: 'AwsSolutions-IAM5[Resource::*]',
      reason: 'logs:CreateLogDelivery and the other log-delivery calls Step Functions needs for ALL-level logging accept no resource.',
    });
  },
  noXray(stateMachine: IConstruct): void {
    Validations.of(stateMachine).acknowledge({
      id: 'AwsSolutions-SF2',
      reason: 'X-Ray tracing is optional (config "xray"); execution history and ALL-level logs cover the workflow without it.',
    });
  },
};
