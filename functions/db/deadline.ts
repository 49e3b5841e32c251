// The moment by which a command has promised to end. Each entry point (a CLI command, a Lambda
// handler) builds one and passes it down; flows cut shares of it, and db/ turns what is left into
// each query's timeout. Immutable: every operation returns a new Deadline. It reads the clock, so
// it lives outside core/ (core's planners take the remaining milliseconds and the time as numbers).

import { TimeLimitError } from '../core/errors.js';

/** What a Lambda context offers about its time (aws-lambda's Context has it). */
export interface LambdaClock {
  getRemainingTimeInMillis(): number;
}

function finite(value: number, what: string, fix: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value))
    throw new TimeLimitError(`${what} must be a finite number, got ${String(value)}; ${fix}`);
  return value;
}

export class Deadline {
  /** The instant, in epoch milliseconds. */
  readonly atMs: number;

  private constructor(atMs: number) {
    this.atMs = finite(atMs, 'a deadline (epoch ms)', 'pass an instant such as Date.now() + a number of ms');
  }

  /** The deadline at an instant (epoch ms). */
  static at(epochMs: number): Deadline {
    return new Deadline(epochMs);
  }

  /** The deadline ms from now (negative: already passed). */
  static after(ms: number, nowMs = Date.now()): Deadline {
    return new Deadline(nowMs + finite(ms, 'a time limit (ms)', 'pass a number of milliseconds'));
  }

  /** The deadline of a CLI time option given in seconds (more than 0), from now. */
  static afterSeconds(seconds: number, nowMs = Date.now()): Deadline {
    finite(seconds, 'a time limit (seconds)', 'pass a positive number of seconds');
    if (!(seconds > 0))
      throw new TimeLimitError(`a time limit must be more than 0 seconds, got ${seconds}; pass a positive number of seconds`);
    return new Deadline(nowMs + Math.round(seconds * 1000));
  }

  /**
   * A Lambda invocation's end less a margin kept free for what follows the work. With `least`,
   * fewer than least.ms left after the margin is refused (nothing was started): TimeLimitError.
   */
  static fromLambda(context: LambdaClock, marginMs: number, least?: { ms: number; what: string }): Deadline {
    const left = context.getRemainingTimeInMillis() - marginMs;
    if (least !== undefined && !(left >= least.ms))
      throw new TimeLimitError(`not enough time left to ${least.what} (${left} ms after the margin; give the function a longer timeout)`);
    return Deadline.after(left);
  }

  /** Milliseconds left (negative once passed). */
  remainingMs(nowMs = Date.now()): number {
    return this.atMs - nowMs;
  }

  expired(nowMs = Date.now()): boolean {
    return nowMs >= this.atMs;
  }

  /** What a query may still take: what is left, rounded up, at least 1 ms. */
  statementTimeoutMs(nowMs = Date.now()): number {
    return Math.max(1, Math.ceil(this.atMs - nowMs));
  }

  /** The earlier of this and other (this when other is undefined). */
  earlierOf(other: Deadline | undefined): Deadline {
    return other === undefined || this.atMs <= other.atMs ? this : other;
  }

  /** ms from now, or this deadline if it comes first: never later than this. */
  within(ms: number, nowMs = Date.now()): Deadline {
    return this.earlierOf(Deadline.after(ms, nowMs));
  }

  /** A fraction (0..1) of what is left, from now: never later than this. */
  share(fraction: number, nowMs = Date.now()): Deadline {
    if (!(fraction >= 0 && fraction <= 1))
      throw new TimeLimitError(`a share of a deadline must be from 0 to 1, got ${fraction}; pass a fraction of the time left`);
    return this.within(Math.max(0, this.remainingMs(nowMs)) * fraction, nowMs);
  }

  /** ms earlier than this (a margin kept free at the end). */
  less(ms: number): Deadline {
    if (!(ms >= 0)) throw new TimeLimitError(`a margin must be 0 ms or more, got ${ms}; pass the milliseconds to keep free`);
    return new Deadline(this.atMs - ms);
  }

  /**
   * ms later than this: the grace a client-side bound allows past a promised end (the last answer
   * and the report). Only for such bounds, never for the work itself.
   */
  withGrace(ms: number): Deadline {
    if (!(ms >= 0)) throw new TimeLimitError(`a grace must be 0 ms or more, got ${ms}; pass the milliseconds allowed past the deadline`);
    return new Deadline(this.atMs + ms);
  }

  /**
   * This deadline, or ms from now when that is later: the least time a step is given when it
   * starts late (the connections' own deadline still bounds every query it sends).
   */
  orAtLeast(ms: number, nowMs = Date.now()): Deadline {
    const floor = Deadline.after(ms, nowMs);
    return floor.atMs > this.atMs ? floor : this;
  }

  toString(): string {
    return new Date(this.atMs).toISOString();
  }
}
