// The investigation workflow run locally by aws-local-stepfunctions, each Task calling the real
// handler (workflow.test.ts): the execution, what it notified, and hooks into its waiting and
// repair steps.

import {
  SendTaskFailureCommand,
  SendTaskSuccessCommand,
  type ServiceInputTypes,
  type ServiceOutputTypes,
  type SFNClientResolvedConfig,
} from '@aws-sdk/client-sfn';
import { StateMachine } from 'aws-local-stepfunctions';
import type { AwsStub } from 'aws-sdk-client-mock';
import { taskStates } from './workflow.js';

// aws-local-stepfunctions uses Promise.withResolvers, which Node 20 lacks
const P = Promise as unknown as { withResolvers?: () => unknown };
P.withResolvers ??= () => {
  let resolve: unknown;
  let reject: unknown;
  const promise = new Promise((a, b) => {
    resolve = a;
    reject = b;
  });
  return { promise, resolve, reject };
};

export interface Run {
  readonly result: Promise<unknown>;
  /** The plan id, once the workflow waits for its decision. */
  readonly waiting: Promise<number>;
  readonly notified: string[];
  /** Resolves when the first notification went out. */
  readonly notifiedFirst: Promise<void>;
  /** Per notification: whether the waiting step had stored the plan's task token when it went out. */
  readonly storedWhenNotified: boolean[];
  /** Each re-verify after a repair: the state's input (the plan's path so far) and the verdict. */
  readonly reverified: { input: { error?: { Error: string } }; status: string }[];
}

export interface Hooks {
  /** Runs before the waiting step's function stores its token (an approver quicker than the workflow). */
  readonly beforeAwait?: (planId: number) => Promise<void>;
  /** Runs before each attempt of the Repair task. */
  readonly beforeRepair?: (planId: number, attempt: number) => Promise<void>;
}

/** The deployment's investigation workflow, its functions and its Step Functions client (faked at the SDK). */
export interface LocalWorkflow {
  readonly asl: Record<string, unknown>;
  readonly sfn: AwsStub<ServiceInputTypes, ServiceOutputTypes, SFNClientResolvedConfig>;
  /** Runs a task as the deployed function would (its environment, its handler). */
  readonly call: (fnArn: string, event: unknown) => Promise<unknown>;
}

/**
 * Starts one execution: the SNS publish is recorded, the waiting step completes when the approval
 * function sends SendTaskSuccess/SendTaskFailure for its token, and every other Task calls its function.
 */
export function runInvestigation(w: LocalWorkflow, token: string, hooks: Hooks = {}): Run {
  const notified: string[] = [];
  const storedWhenNotified: boolean[] = [];
  const reverified: Run['reverified'] = [];
  let firstNotified: () => void = () => {};
  const notifiedFirst = new Promise<void>((r) => {
    firstNotified = r;
  });
  let repairs = 0;
  let lastRepairError: { Error: string } | undefined;
  const awaited = new Set<number>();
  let waitingFor: (planId: number) => void = () => {};
  const waiting = new Promise<number>((r) => {
    waitingFor = r;
  });
  const overrides: Record<string, (input: unknown) => Promise<unknown>> = {};
  for (const [name, state] of taskStates(w.asl)) {
    const resource = state.Resource as string;
    if (resource.includes(':sns:')) {
      overrides[name] = async (input) => {
        const message = (input as { Message: string }).Message;
        notified.push(message);
        storedWhenNotified.push(awaited.has(Number(/^Plan (\d+)/.exec(message)?.[1])));
        firstNotified();
        return {};
      };
    } else if (resource.endsWith('.waitForTaskToken')) {
      overrides[name] = async (input) => {
        const { FunctionName, Payload } = input as { FunctionName: string; Payload: { planId: number; taskToken: string } };
        // completed by the approval function's SendTaskSuccess / SendTaskFailure (faked at the SDK)
        const decided = new Promise((resolve, reject) => {
          w.sfn.on(SendTaskSuccessCommand, { taskToken: Payload.taskToken }).callsFake((i: { output: string }) => {
            resolve(JSON.parse(i.output));
            return {};
          });
          w.sfn.on(SendTaskFailureCommand, { taskToken: Payload.taskToken }).callsFake((i: { error: string; cause: string }) => {
            reject(Object.assign(new Error(i.cause), { name: i.error }));
            return {};
          });
        });
        await hooks.beforeAwait?.(Payload.planId);
        await w.call(FunctionName, Payload);
        awaited.add(Payload.planId); // the waiting step's function stored the token (and returned)
        waitingFor(Payload.planId);
        return decided;
      };
    } else if (name === 'ReVerify') {
      overrides[name] = async (input) => {
        // the task's parameters only carry pair and table; the path so far is in the execution's input to the state
        const out = (await w.call(resource, input)) as { status: string };
        reverified.push({ input: lastRepairError === undefined ? {} : { error: lastRepairError }, status: out.status });
        return out;
      };
    } else if (name === 'Repair') {
      overrides[name] = async (input) => {
        await hooks.beforeRepair?.((input as { planId: number }).planId, ++repairs);
        try {
          lastRepairError = undefined;
          return await w.call(resource, input);
        } catch (err) {
          lastRepairError = { Error: (err as Error).name };
          throw err;
        }
      };
    } else {
      overrides[name] = (input) => w.call(resource, input);
    }
  }
  const machine = new StateMachine(w.asl as never, { validationOptions: { checkPaths: false } });
  const execution = machine.run(
    { pair: 'upgrade' },
    {
      overrides: {
        taskResourceLocalHandlers: overrides as never,
        waitTimeOverrides: { TokenNotStoredYet: 100 },
        retryIntervalOverrides: { Repair: 50 },
      },
      context: { Task: { Token: token }, Execution: { Id: `arn:aws:states:local:000000000000:execution:investigation:${token}` } } as never,
    },
  );
  return { result: execution.result, waiting, notified, notifiedFirst, storedWhenNotified, reverified };
}
