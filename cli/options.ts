// Option parsing shared by the CLI commands.

import { InvalidArgumentError } from 'commander';
import { MAX_DRAIN_WORKERS } from '../functions/core/drain.js';
import { InputError } from '../functions/core/errors.js';
import { HASH_VERSIONS, type HashVersion, parseHashVersion } from '../functions/core/hashing.js';
import { endpointOf } from '../functions/db/control.js';
import { checkDsn } from '../functions/db/dsn.js';

export function positiveInt(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || !Number.isSafeInteger(n) || n < 1) {
      throw new InvalidArgumentError(`${flag} must be a positive integer, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

export function positiveNumber(flag: string, max = Number.MAX_SAFE_INTEGER, unit = ''): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || !(n > 0) || n > max) {
      throw new InvalidArgumentError(
        `${flag} must be a positive number${max < Number.MAX_SAFE_INTEGER ? ` up to ${max}${unit}` : ''}, got ${JSON.stringify(value)}`,
      );
    }
    return n;
  };
}

/** A percentage from 0 to 100. */
export function percent(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+(\.\d+)?$/.test(value) || !(n >= 0 && n <= 100)) {
      throw new InvalidArgumentError(`${flag} must be a percentage from 0 to 100, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

/** The longest time box a command accepts: one day. */
export const MAX_SECONDS = 86_400;

/** A worker count from 1 to MAX_DRAIN_WORKERS. */
export function workerCount(flag: string): (value: string) => number {
  return (value) => {
    const n = Number(value);
    if (!/^\d+$/.test(value) || n < 1 || n > MAX_DRAIN_WORKERS) {
      throw new InvalidArgumentError(`${flag} must be a whole number from 1 to ${MAX_DRAIN_WORKERS}, got ${JSON.stringify(value)}`);
    }
    return n;
  };
}

/** How a one-node command names its node in messages: `database host:port/name`. */
export function nodeLabel(dsn: string): string {
  return `database ${endpointOf(dsn)}`;
}

export function singleDsn(dsn: string): string {
  return checkDsn(dsn, 'database');
}

/** One node's DSN from --dsn, else SYNCGUARD_DSN. */
export function nodeDsn(dsn: string | undefined): string {
  const value = dsn ?? process.env.SYNCGUARD_DSN;
  if (value === undefined) throw new InputError('no DSN: pass --dsn or set SYNCGUARD_DSN');
  return checkDsn(value, 'database');
}

/** Publisher and subscriber DSNs from flags, else SYNCGUARD_PUBLISHER_DSN / SYNCGUARD_SUBSCRIBER_DSN. */
export function pairDsns(o: { publisherDsn?: string; subscriberDsn?: string }): { publisher: string; subscriber: string } {
  const publisher = o.publisherDsn ?? process.env.SYNCGUARD_PUBLISHER_DSN;
  const subscriber = o.subscriberDsn ?? process.env.SYNCGUARD_SUBSCRIBER_DSN;
  if (publisher === undefined) throw new InputError('no publisher DSN: pass --publisher-dsn or set SYNCGUARD_PUBLISHER_DSN');
  if (subscriber === undefined) throw new InputError('no subscriber DSN: pass --subscriber-dsn or set SYNCGUARD_SUBSCRIBER_DSN');
  return { publisher: checkDsn(publisher, 'publisher'), subscriber: checkDsn(subscriber, 'subscriber') };
}

/** --hash-version: one of the canonical encodings a registration may carry (core parseHashVersion). */
export function hashVersionOption(flag: string): (value: string) => HashVersion {
  return (value) => {
    try {
      if (/^\d+$/.test(value)) return parseHashVersion(value);
    } catch {
      // said below, in the flag's words
    }
    throw new InvalidArgumentError(`${flag} must be one of ${HASH_VERSIONS.join(', ')}, got ${JSON.stringify(value)}`);
  };
}
