import { describe, expect, it } from 'vitest';
import { droppedOnSubscriberOnly, type NodeHealth } from '../../functions/core/health.js';
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
