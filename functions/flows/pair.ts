// The pair a flow works on: a publisher and its subscriber, checked before the flow reads or
// writes anything: both hold the syncguard schema at the version this syncguard needs, and they
// are two databases (not one given twice, however the DSNs spell it). Verify, inspect, plan,
// repair and register open it the same way (CheckedPair.open), and what they do to both nodes
// takes a CheckedPair, so no flow can reach it unchecked.

import type { Client } from '../db/connect.js';
import { requireDistinct, requireInstalled } from '../db/installed.js';

export class CheckedPair {
  /** A private member makes the type nominal: only open() makes a CheckedPair, so the type says the checks ran. */
  declare private readonly checkedBrand: true;

  private constructor(
    readonly pub: Client,
    readonly sub: Client,
  ) {}

  /** Checks the pair (publisher installed, subscriber installed, distinct databases, in that order) and returns it. */
  static async open(pub: Client, sub: Client): Promise<CheckedPair> {
    await requireInstalled(pub, 'publisher');
    await requireInstalled(sub, 'subscriber');
    await requireDistinct(pub, sub);
    return new CheckedPair(pub, sub);
  }
}
