// One call per integration test file: registers beforeAll/afterAll hooks that create a replicating
// pair, let the file create its tables and data, subscribe, install syncguard on both sides and
// run the file's own preparation; and that always tear it all down, also when a test failed.

import { afterAll, beforeAll, inject } from 'vitest';
import type { Cluster, ClusterInfo } from '../../dev/cluster.js';
import { createPair, type Pair, type PairOptions } from '../../dev/pair.js';
import type { Client } from '../../functions/db/connect.js';
import { installed } from './syncguard.js';

export interface PairContext {
  readonly pair: Pair;
  /** Owner-role connections with syncguard installed. */
  readonly pub: Client;
  readonly sub: Client;
}

export interface PairSetup {
  readonly label: string;
  /** Tables the publication lists; null for FOR ALL TABLES. */
  readonly tables: readonly string[] | null;
  /** Creates schema and data before the subscription starts. */
  readonly prepare: (pair: Pair) => Promise<void>;
  /** Runs once syncguard is installed (registrations, initial sweep). */
  readonly ready?: (ctx: PairContext) => Promise<unknown>;
  readonly publicationSql?: (pair: Pair) => string;
  /** A publisher server of the file's own (stopped afterwards); default: the shared PG18 one. */
  readonly publisher?: () => Promise<Cluster>;
  /** A subscriber server of the file's own (stopped afterwards), e.g. one the file crashes; default: the shared PG18 one. */
  readonly subscriber?: () => Promise<Cluster>;
  readonly options?: PairOptions;
}

export function usePair(setup: PairSetup): PairContext {
  let state: { pair: Pair; pub: Client; sub: Client } | undefined;
  let ownPublisher: Cluster | undefined;
  let ownSubscriber: Cluster | undefined;
  let pairOnly: Pair | undefined;
  const get = () => {
    if (state === undefined) throw new Error('the pair is only available inside tests');
    return state;
  };

  beforeAll(async () => {
    ownPublisher = setup.publisher === undefined ? undefined : await setup.publisher();
    ownSubscriber = setup.subscriber === undefined ? undefined : await setup.subscriber();
    const publisher: ClusterInfo = ownPublisher ?? inject('publisherCluster');
    const subscriber: ClusterInfo = ownSubscriber ?? inject('subscriberCluster');
    pairOnly = await createPair(publisher, subscriber, setup.label, setup.options);
    await setup.prepare(pairOnly);
    const publicationSql = setup.publicationSql?.(pairOnly);
    await pairOnly.subscribe(setup.tables, publicationSql === undefined ? {} : { publicationSql });
    const { pub, sub } = await installed(pairOnly);
    state = { pair: pairOnly, pub, sub };
    await setup.ready?.(state);
  });

  afterAll(async () => {
    await Promise.all([state?.pub.close(), state?.sub.close()].map((p) => p?.catch(() => {})));
    await pairOnly?.dispose();
    await ownSubscriber?.stop();
    await ownPublisher?.stop();
  });

  return {
    get pair() {
      return get().pair;
    },
    get pub() {
      return get().pub;
    },
    get sub() {
      return get().sub;
    },
  };
}
