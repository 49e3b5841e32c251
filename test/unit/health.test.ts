import { describe, expect, it } from 'vitest';
import { currentAdvice, droppedOnSubscriberOnly, type NodeHealth } from '../../functions/core/health.js';
import { decide } from '../../functions/core/verdict.js';

const node = (role: 'publisher' | 'subscriber', now: string[], at: string[] = ['id', 'v']): NodeHealth => ({
  table: 'public.t',
  regId: 1,
  role,
  problems: [],
  columnsAtRegistration: at,
  columnsNow: now,
});

describe('schema drift', () => {
  it('finds registered columns the subscriber dropped while the publisher kept them', () => {
    expect(droppedOnSubscriberOnly(node('publisher', ['id', 'v']), node('subscriber', ['id']))).toEqual(['v']);
    expect(droppedOnSubscriberOnly(node('publisher', ['id']), node('subscriber', ['id']))).toEqual([]); // dropped on both
    expect(droppedOnSubscriberOnly(node('publisher', ['id', 'v', 'new']), node('subscriber', ['id', 'v']))).toEqual([]); // added on the publisher
    expect(droppedOnSubscriberOnly(node('publisher', ['id', 'v']), node('subscriber', []))).toEqual([]); // the table itself is gone
  });

  it('is a divergence by itself, even without a barrier', () => {
    const base = {
      tableCoverage: [],
      minCoveragePct: 100,
      blocked: [],
      confirmation: { confirmed: [], candidates: [] },
      uncomparableTables: ['public.t (x)'],
    };
    expect(decide({ ...base, schemaDrift: ['public.t: column v dropped'] })).toEqual({
      status: 'diverged',
      reasons: ['public.t: column v dropped'],
    });
    expect(decide({ ...base, schemaDrift: ['public.t: column v dropped'], barrierFailure: 'disabled' }).status).toBe('diverged');
    expect(decide({ ...base, barrierFailure: 'disabled' }).status).toBe('incomplete');
  });
});

describe('node problems with advice for the table as it is now', () => {
  const fix = (t: string) => `; re-register it: syncguard unregister --table ${t}, then syncguard register --table ${t}`;
  it('a renamed table is registered under its new name, also when its old name is another table now', () => {
    expect(
      currentAdvice(`the registered table is now named public."New T" (renamed), and public.t is another table${fix('public.t')}`),
    ).toBe(
      'the registered table public.t was renamed to public."New T", and public.t is now another table; register it under its new name: syncguard unregister --table public.t, then syncguard register --table public."New T"',
    );
  });
  it('a dropped table is unregistered; a table replaced under its name is registered again as before', () => {
    expect(currentAdvice(`the table was dropped on this node${fix('public.t')}`)).toBe(
      'the table was dropped on this node; its registration is left over: remove it with syncguard unregister --table public.t',
    );
    const replaced = `the table was dropped on this node and public.t is a new table without syncguard triggers${fix('public.t')}`;
    expect(currentAdvice(replaced)).toBe(replaced);
  });
  it('keeps every other text', () => {
    const other = `trigger syncguard_insert is missing, so changes are not tracked${fix('public.t')}`;
    expect(currentAdvice(other)).toBe(other);
    const local = 'trigger syncguard_update is enabled for local writes only, not ENABLE ALWAYS, so replicated changes are not tracked (x)';
    expect(currentAdvice(local)).toBe(local);
  });
});
