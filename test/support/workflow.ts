// Reading the synthesized workflows back: a state machine's ASL from the template, with the
// CloudFormation references in it resolved to local names, and each function's environment as
// the stack gives it, so that a local run calls the real handlers with the deployment's wiring.

import type { Template } from 'aws-cdk-lib/assertions';

type Cfn = string | { 'Fn::GetAtt'?: [string, string]; Ref?: string; 'Fn::Join'?: [string, Cfn[]] };

/** A resource's logical id as a local ARN (functions) or name. */
const localArn = (id: string) => `arn:aws:lambda:local:000000000000:function:${id}`;

function resolve(v: Cfn): string {
  if (typeof v === 'string') return v;
  if (v['Fn::GetAtt'] !== undefined) return localArn(v['Fn::GetAtt'][0]);
  if (v.Ref !== undefined)
    return v.Ref.startsWith('AWS::')
      ? ({ 'AWS::Partition': 'aws', 'AWS::Region': 'local', 'AWS::AccountId': '000000000000', 'AWS::URLSuffix': 'amazonaws.com' }[v.Ref] ??
          v.Ref)
      : `local:${v.Ref}`;
  if (v['Fn::Join'] !== undefined) return v['Fn::Join'][1].map(resolve).join(v['Fn::Join'][0]);
  throw new Error(`cannot resolve ${JSON.stringify(v)}`);
}

/** Every state machine of the template: its logical id and its definition as plain ASL. */
export function stateMachines(t: Template): { id: string; asl: Record<string, unknown> }[] {
  return Object.entries(t.findResources('AWS::StepFunctions::StateMachine')).map(([id, r]) => ({
    id,
    asl: JSON.parse(resolve(r.Properties.DefinitionString as Cfn)) as Record<string, unknown>,
  }));
}

/** The logical id of the function a local ARN names. */
export const functionIdOf = (arn: string): string => arn.replace(/^.*:function:/, '').replace(/:.*$/, '');

/** A function's environment variables as the stack sets them (references resolved locally). */
export function functionEnv(t: Template, logicalId: string): Record<string, string> {
  const f = t.findResources('AWS::Lambda::Function')[logicalId];
  if (f === undefined) throw new Error(`no function ${logicalId} in the template`);
  const vars = (f.Properties.Environment?.Variables ?? {}) as Record<string, Cfn>;
  return Object.fromEntries(Object.entries(vars).map(([k, v]) => [k, resolve(v)]));
}

/** The Task states of a definition (also inside Map item processors and Parallel branches), by name. */
export function taskStates(asl: Record<string, unknown>): Map<string, Record<string, unknown>> {
  const out = new Map<string, Record<string, unknown>>();
  const walk = (states: Record<string, Record<string, unknown>>) => {
    for (const [name, s] of Object.entries(states)) {
      if (s.Type === 'Task') out.set(name, s);
      const inner = (s.ItemProcessor ?? s.Iterator) as { States?: Record<string, Record<string, unknown>> } | undefined;
      if (inner?.States !== undefined) walk(inner.States);
      for (const b of (s.Branches ?? []) as { States: Record<string, Record<string, unknown>> }[]) walk(b.States);
    }
  };
  walk(asl.States as Record<string, Record<string, unknown>>);
  return out;
}
