// The fallback for tables that probes cannot reach (syncguard.probe not in the table's
// subscription): a second catalogue round for the first round's candidates, after a fresh
// barrier, confirming those that persist with the publisher bucket unchanged (docs/verification.md "A verdict
// that does not cry wolf"). A bucket written continuously never settles this way; that is why
// probes exist, and why verify warns about every table that falls back.

import type { DetailCatalogue, Mismatch } from '../core/compare.js';
import type { TableRef } from '../core/identifiers.js';
import { secondLook, type TableRounds } from '../core/verdict.js';
import { waitForBarrier } from '../db/barrier.js';
import { readDetail } from '../db/catalogue.js';
import type { Client } from '../db/connect.js';

/** A table's candidates from the first round, waiting for the second. */
export interface FirstRound {
  readonly table: TableRef;
  readonly first: readonly Mismatch[];
}

export interface SecondRound {
  readonly rounds: readonly TableRounds[];
  readonly lsn: string | null;
  readonly waitedMs: number;
  readonly barrierFailure?: string;
}

/**
 * Round two for the candidates of `first`. `drain` brings a side's catalogue up to date first;
 * `fingerprints` and `generations` are round one's (a recompute in between means "changed").
 */
export async function secondRound(
  pub: Client,
  sub: Client,
  first: readonly FirstRound[],
  ctx: {
    barrierMs: number;
    drain: (c: Client, label: string) => Promise<void>;
    fingerprints: ReadonlyMap<TableRef, string>;
    generations: ReadonlyMap<TableRef, ReadonlyMap<string, string>>;
  },
): Promise<SecondRound> {
  await ctx.drain(pub, 'publisher');
  const pubValues = new Map<TableRef, DetailCatalogue>();
  for (const r of first) {
    pubValues.set(
      r.table,
      await readDetail(
        pub,
        r.table,
        r.first.map((m) => m.bucket),
      ),
    );
  }
  const b = await waitForBarrier(
    pub,
    sub,
    first.map((r) => r.table),
    ctx.barrierMs,
  );
  if (!b.ok) return { rounds: [], lsn: null, waitedMs: 0, barrierFailure: b.failure };
  await ctx.drain(sub, 'subscriber');
  const rounds: TableRounds[] = [];
  for (const r of first) {
    const t = r.table;
    const buckets = r.first.map((m) => m.bucket);
    const pv = pubValues.get(r.table) as DetailCatalogue;
    const sv = await readDetail(sub, t, buckets);
    // The publisher once more: a write committed there after its read, and applied on the
    // subscriber before the subscriber's read, would otherwise pass for divergence (a row
    // toggled back and forth). Such a write leaves a dirty mark or a new generation here.
    const pAfter = await readDetail(pub, t, buckets);
    const fingerprint = ctx.fingerprints.get(r.table) ?? '';
    const again = new Map(
      r.first.map((m) => [m.bucket, secondLook(m.bucket, fingerprint, ctx.generations.get(r.table), pv, sv, pAfter)] as const),
    );
    rounds.push({ table: t.text, first: r.first, second: again });
  }
  return { rounds, lsn: b.lsn, waitedMs: b.waitedMs };
}
