// One way to make the deployment's Lambda functions: NodejsFunction bundled by the local esbuild
// (no Docker), ESM with the createRequire banner, nodejs24.x on arm64, its own log group with
// retention, its own role that reads only the secrets it is given, optional X-Ray, optional VPC.

import { join } from 'node:path';
import { Annotations, type Duration, Fn, Stack } from 'aws-cdk-lib';
import { type IVpc, SecurityGroup, Vpc } from 'aws-cdk-lib/aws-ec2';
import { Effect, ManagedPolicy, PolicyStatement, Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import { Architecture, Runtime, Tracing } from 'aws-cdk-lib/aws-lambda';
import { NodejsFunction, OutputFormat } from 'aws-cdk-lib/aws-lambda-nodejs';
import { LogGroup } from 'aws-cdk-lib/aws-logs';
import type { Construct } from 'constructs';
import { DEFAULT_NAMESPACE, DEFAULT_SERVICE, ENV } from '../functions/contract.js';
import type { DeployConfig } from './config.js';
import { NAG } from './nag.js';

const ROOT = join(import.meta.dirname, '..');

export type HandlerName = 'drain' | 'verify' | 'inspect' | 'approval' | 'repair';

export interface FunctionSpec {
  readonly id: string;
  readonly handler: HandlerName;
  readonly description: string;
  readonly environment: Record<string, string>;
  /** Secrets the function may read, by ARN; nothing else. */
  readonly secretArns: readonly string[];
  /** The VPC placement of the databases it talks to (the first one that has one). */
  readonly vpc?: DeployConfig['control']['vpc'];
  readonly timeout: Duration;
  readonly reservedConcurrency?: number;
}

/** One import per VPC id, shared by the functions placed in it. */
function importVpc(scope: Construct, v: NonNullable<FunctionSpec['vpc']>): IVpc {
  const stack = Stack.of(scope);
  const id = `Vpc-${v.vpcId}`;
  const existing = stack.node.tryFindChild(id) as IVpc | undefined;
  if (existing !== undefined) return existing;
  const vpc = Vpc.fromVpcAttributes(stack, id, {
    vpcId: v.vpcId,
    availabilityZones: v.subnetIds.map((_, i) => Fn.select(i, Fn.getAzs(stack.region))),
    privateSubnetIds: v.subnetIds,
  });
  // the functions name their subnets themselves; no route table is ever read
  Annotations.of(vpc).acknowledgeWarning(
    '@aws-cdk/aws-ec2:noSubnetRouteTableId',
    'functions attach to the given subnets; route tables are not needed',
  );
  return vpc;
}

export function makeFunction(scope: Construct, config: DeployConfig, spec: FunctionSpec): NodejsFunction {
  const logGroup = new LogGroup(scope, `${spec.id}Logs`, { retention: config.logRetentionDays });
  const role = new Role(scope, `${spec.id}Role`, {
    assumedBy: new ServicePrincipal('lambda.amazonaws.com'),
    description: `syncguard ${spec.handler}: its log group, its secrets${spec.vpc ? ', its network interfaces' : ''}`,
  });
  role.addToPolicy(
    new PolicyStatement({
      actions: ['logs:CreateLogStream', 'logs:PutLogEvents'],
      resources: [logGroup.logGroupArn, `${logGroup.logGroupArn}:*`],
    }),
  );
  if (spec.secretArns.length > 0) {
    // a secret's ARN ends in 6 random characters: allow them, and nothing else
    role.addToPolicy(
      new PolicyStatement({
        actions: ['secretsmanager:GetSecretValue'],
        resources: [...new Set(spec.secretArns)].map((a) => (/-[A-Za-z0-9]{6}$/.test(a) ? a : `${a}-??????`)),
      }),
    );
  }
  NAG.logStreams(role, logGroup);
  if (spec.vpc !== undefined) {
    role.addManagedPolicy(ManagedPolicy.fromAwsManagedPolicyName('service-role/AWSLambdaVPCAccessExecutionRole'));
    NAG.vpcAccess(role);
  }
  if (config.xray) {
    role.addToPolicy(
      new PolicyStatement({ effect: Effect.ALLOW, actions: ['xray:PutTraceSegments', 'xray:PutTelemetryRecords'], resources: ['*'] }),
    );
    NAG.xray(role);
  }
  const vpc = spec.vpc === undefined ? undefined : importVpc(scope, spec.vpc);
  return new NodejsFunction(scope, spec.id, {
    entry: join(ROOT, 'functions', `${spec.handler}.ts`),
    handler: 'handler',
    description: spec.description,
    runtime: Runtime.NODEJS_24_X,
    architecture: Architecture.ARM_64,
    memorySize: 512,
    timeout: spec.timeout,
    role,
    logGroup,
    tracing: config.xray ? Tracing.ACTIVE : Tracing.DISABLED,
    ...(spec.reservedConcurrency !== undefined ? { reservedConcurrentExecutions: spec.reservedConcurrency } : {}),
    ...(vpc !== undefined && spec.vpc !== undefined
      ? {
          vpc,
          vpcSubnets: { subnets: vpc.privateSubnets },
          securityGroups: spec.vpc.securityGroupIds.map((g, i) => SecurityGroup.fromSecurityGroupId(scope, `${spec.id}Sg${i}`, g)),
        }
      : {}),
    environment: {
      [ENV.service]: DEFAULT_SERVICE,
      [ENV.namespace]: DEFAULT_NAMESPACE,
      NODE_OPTIONS: '--enable-source-maps',
      ...spec.environment,
    },
    bundling: {
      format: OutputFormat.ESM,
      target: 'node24',
      platform: 'node',
      mainFields: ['module', 'main'],
      minify: true,
      sourceMap: true,
      forceDockerBundling: false,
      // pg's optional native binding is never used
      externalModules: ['pg-native'],
      banner: "import { createRequire as sgCreateRequire } from 'node:module'; const require = sgCreateRequire(import.meta.url);",
    },
  });
}
