// The consistency decision (pure): turning compared buckets into a verdict that never cries wolf
// while replication is only behind, and never calls a diverged pair clean (docs/verification.md "A verdict
// that does not cry wolf", "The probe").
//   - A bucket a probe found different is diverged: both sides computed it at one replication
//     position (the probe's), so no second look is needed.
//   - Where probes cannot reach (the fallback), a mismatch in one round is a candidate. It is
//     confirmed only when the next round, after a
//     fresh barrier, finds it again, clean on both sides, with the publisher's value unchanged
//     (an in-flight change would have moved it).
//   - No barrier (subscription disabled, tables not ready, apply errors rising, timeout) means no
//     data verdict at all: incomplete, with the reason.
//   - Coverage below the minimum in any table, candidates left unconfirmed, or a skipped bucket
//     that holds a local write, is incomplete, never "in sync".

import { type BucketValue, type DetailCatalogue, EMPTY, type Mismatch, sameValue } from './compare.js';

export type Status = 'in_sync' | 'diverged' | 'incomplete';

/** One table's mismatches in the two rounds of a verification. */
export interface TableRounds {
  readonly table: string;
  readonly first: readonly Mismatch[];
  /** Second round, only for the first round's candidates; absent when a bucket was skipped then. */
  readonly second: ReadonlyMap<string, { readonly publisher: BucketValue; readonly subscriber: BucketValue; readonly clean: boolean }>;
}

export interface Confirmed extends Mismatch {
  readonly table: string;
  readonly how: 'probe' | 'two_rounds';
  /** A probe's: the publisher position it holds at. */
  readonly lsn?: string;
}

export interface Confirmation {
  readonly confirmed: readonly Confirmed[];
  /** Mismatched once but not confirmed: still moving, skipped in round two, or equal by then. */
  readonly candidates: readonly (Mismatch & { readonly table: string; readonly why: string })[];
}

/** Two-round confirmation of the fallback's candidates, plus the divergences probes confirmed. */
export function confirm(tables: readonly TableRounds[], probed: readonly Confirmed[] = []): Confirmation {
  const confirmed: Confirmed[] = [...probed];
  const candidates: (Mismatch & { table: string; why: string })[] = [];
  for (const t of tables) {
    for (const m of t.first) {
      const again = t.second.get(m.bucket);
      if (again === undefined || !again.clean) {
        candidates.push({ ...m, table: t.table, why: 'not clean on both sides in the second round' });
      } else if (sameValue(again.publisher, again.subscriber)) {
      } else if (!sameValue(again.publisher, m.publisher)) {
        candidates.push({ ...m, table: t.table, why: 'the publisher bucket changed between the rounds' });
      } else {
        confirmed.push({ table: t.table, bucket: m.bucket, publisher: again.publisher, subscriber: again.subscriber, how: 'two_rounds' });
      }
    }
  }
  return { confirmed, candidates };
}

export interface VerdictInput {
  /** Set when no replication barrier could be established: the reason. */
  readonly barrierFailure?: string;
  /** Coverage of each compared table: the minimum applies per table, so one table's skipped
   * buckets never hide behind the others' coverage. */
  readonly tableCoverage: readonly { readonly table: string; readonly coveragePct: number }[];
  readonly minCoveragePct: number;
  /** Tables whose skipped buckets hold something that may be drift (a local write): why. */
  readonly blocked: readonly string[];
  /** Buckets left out of the comparison, named with their reasons (said when coverage is short). */
  readonly leftOut?: readonly string[];
  readonly confirmation: Confirmation;
  /** Schema drift that is divergence by itself (a column dropped on the subscriber only), as reasons. */
  readonly schemaDrift?: readonly string[];
  /** Tables that could not be compared at all (fingerprint mismatch, missing on a side). */
  readonly uncomparableTables: readonly string[];
}

export interface Verdict {
  readonly status: Status;
  readonly reasons: readonly string[];
}

export function decide(v: VerdictInput): Verdict {
  const drift = v.schemaDrift ?? [];
  // a column dropped on the subscriber is divergence whatever replication is doing
  if (v.barrierFailure !== undefined && drift.length === 0)
    return { status: 'incomplete', reasons: [`no replication barrier: ${v.barrierFailure}`] };
  if (v.barrierFailure !== undefined) return { status: 'diverged', reasons: [...drift] };
  if (v.confirmation.confirmed.length > 0 || drift.length > 0) {
    const reasons: string[] = [...drift];
    const probed = v.confirmation.confirmed.filter((c) => c.how === 'probe').length;
    const rounds = v.confirmation.confirmed.length - probed;
    const s = (n: number) => (n === 1 ? ' differs' : 's differ');
    if (probed > 0) reasons.push(`${probed} bucket${s(probed)} at the replication position of a probe`);
    if (rounds > 0) reasons.push(`${rounds} bucket${s(rounds)} in two rounds with the publisher unchanged`);
    return { status: 'diverged', reasons };
  }
  const reasons: string[] = [];
  if (v.uncomparableTables.length > 0) reasons.push(`tables not compared: ${v.uncomparableTables.join(', ')}`);
  if (v.confirmation.candidates.length > 0) reasons.push(`${v.confirmation.candidates.length} candidate mismatches not confirmed yet`);
  reasons.push(...v.blocked);
  let short = false;
  for (const t of v.tableCoverage) {
    if (t.coveragePct < v.minCoveragePct) {
      short = true;
      reasons.push(
        `${t.table}: coverage ${(Math.floor(t.coveragePct * 100) / 100).toFixed(2)} % is below the minimum ${v.minCoveragePct} %`,
      );
    }
  }
  if (short) reasons.push(...(v.leftOut ?? []));
  return reasons.length > 0 ? { status: 'incomplete', reasons } : { status: 'in_sync', reasons: [] };
}

/**
 * A candidate bucket in round two. It counts as clean only when all three reads (publisher,
 * subscriber, publisher again) come from swept catalogues of the same registration, none has it
 * dirty or uncomputed, and the publisher's generation is the one of round one in both of its
 * reads: a recompute in between, by any drainer, means the bucket changed, even if its value
 * came back.
 */
export function secondLook(
  bucket: string,
  fingerprint: string,
  gen1: ReadonlyMap<string, string> | undefined,
  pv: DetailCatalogue,
  sv: DetailCatalogue,
  pAfter: DetailCatalogue,
): { publisher: BucketValue; subscriber: BucketValue; clean: boolean } {
  const sides = [pv, sv, pAfter];
  const a = pv.buckets.get(bucket);
  const b = sv.buckets.get(bucket);
  const a2 = pAfter.buckets.get(bucket);
  const g = gen1?.get(bucket);
  const clean =
    sides.every((x) => x.swept && x.fingerprint === fingerprint && !x.dirty.has(bucket)) &&
    a !== null &&
    b !== null &&
    a2 !== null &&
    pv.generations.get(bucket) === g &&
    pAfter.generations.get(bucket) === g &&
    sameValue(a2 ?? EMPTY, a ?? EMPTY);
  return { publisher: a ?? EMPTY, subscriber: b ?? EMPTY, clean };
}
