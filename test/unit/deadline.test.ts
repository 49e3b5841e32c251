import { describe, expect, it } from 'vitest';
import { TimeLimitError } from '../../functions/core/errors.js';
import { Deadline } from '../../functions/db/deadline.js';

describe('Deadline', () => {
  const now = 1_000_000;

  it('is built at the edges: after ms, after CLI seconds, from a Lambda context less a margin', () => {
    expect(Deadline.after(60_000, now).atMs).toBe(now + 60_000);
    expect(Deadline.afterSeconds(1.5, now).atMs).toBe(now + 1500);
    const d = Deadline.fromLambda({ getRemainingTimeInMillis: () => 10_000 }, 3000);
    expect(d.remainingMs()).toBeGreaterThan(6900);
    expect(d.remainingMs()).toBeLessThanOrEqual(7000);
  });

  it('refuses what is not a time, with a TimeLimitError that says what to pass', () => {
    expect(() => Deadline.after(Number.NaN)).toThrow(TimeLimitError);
    expect(() => Deadline.after(Number.NaN)).toThrow(/time limit \(ms\) must be a finite number, got NaN; pass a number of milliseconds/);
    expect(() => Deadline.at(Number.POSITIVE_INFINITY)).toThrow(/deadline \(epoch ms\) must be a finite number/);
    expect(() => Deadline.afterSeconds(0)).toThrow(/more than 0 seconds, got 0/);
    expect(() => Deadline.after(1000).less(-1)).toThrow(TimeLimitError);
    expect(() => Deadline.after(1000).share(2)).toThrow(/from 0 to 1, got 2/);
  });

  it('refuses a Lambda start with too little time left after the margin', () => {
    const context = { getRemainingTimeInMillis: () => 6000 };
    expect(() => Deadline.fromLambda(context, 3000, { ms: 5000, what: 'verify' })).toThrow(
      /^not enough time left to verify \(3000 ms after the margin; give the function a longer timeout\)$/,
    );
  });

  it('says what is left, whether it passed, and what a query may take (at least 1 ms)', () => {
    const d = Deadline.at(now + 250.2);
    expect(d.remainingMs(now)).toBeCloseTo(250.2);
    expect(d.expired(now)).toBe(false);
    expect(d.expired(now + 251)).toBe(true);
    expect(d.statementTimeoutMs(now)).toBe(251);
    expect(d.statementTimeoutMs(now + 10_000)).toBe(1);
    expect(d.remainingMs(now + 1250.2)).toBeCloseTo(-1000);
  });

  it('cuts shares that are never later than itself', () => {
    const d = Deadline.at(now + 10_000);
    expect(d.within(2000, now).atMs).toBe(now + 2000);
    expect(d.within(20_000, now).atMs).toBe(now + 10_000);
    expect(d.share(0.4, now).atMs).toBe(now + 4000);
    expect(d.share(1, now).atMs).toBe(now + 10_000);
    expect(d.less(500).atMs).toBe(now + 9500);
    expect(d.earlierOf(Deadline.at(now + 5)).atMs).toBe(now + 5);
    expect(d.earlierOf(undefined)).toBe(d);
  });

  it('moves later only where it says so: a grace for client-side bounds, a least time for a late start', () => {
    const d = Deadline.at(now + 500);
    expect(d.withGrace(2000).atMs).toBe(now + 2500);
    expect(d.orAtLeast(1000, now).atMs).toBe(now + 1000);
    expect(d.orAtLeast(100, now)).toBe(d);
  });
});
