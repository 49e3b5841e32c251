import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { EVENT_SCHEMAS, parseEvent } from '../../functions/events.js';

const doc = readFileSync('docs/events.md', 'utf8');
const examples = [...doc.matchAll(/```json event=(\w+)\n([\s\S]*?)```/g)].map((m) => ({
  kind: m[1] as keyof typeof EVENT_SCHEMAS,
  text: m[2] as string,
}));

describe('docs/events.md', () => {
  it('has an example for every function', () => {
    expect(new Set(examples.map((e) => e.kind))).toEqual(new Set(Object.keys(EVENT_SCHEMAS)));
  });

  it.each(examples.map((e) => [e.kind, e.text.trim(), e] as const))('%s %s parses', (_k, _t, e) => {
    expect(() => parseEvent(e.kind, JSON.parse(e.text))).not.toThrow();
  });

  it('names the field of a malformed event', () => {
    expect(() => parseEvent('verify', {})).toThrow(/^invalid verify event: .*→ at pair/);
    expect(() => parseEvent('repair', { planId: 'seven' })).toThrow(/→ at planId/);
    expect(() => parseEvent('approval', { action: 'decide', planId: 7, decision: 'maybe', approver: 'a' })).toThrow(/→ at decision/);
    expect(() => parseEvent('drain', { databse: 'blue' })).toThrow(/Unrecognized key: "databse"/);
  });
});
