// Whether a registered table can be compared at all (pure). Each node reports, per registration,
// what makes its catalogue untrustworthy (syncguard.health(): the table dropped or replaced,
// triggers missing or demoted, key or hashed columns changed, recorded faults). This module adds
// what only a look at both nodes shows: a table registered on one side only, a registration made
// for the other role (a cloned node), and columns added on both sides since registration, which
// are not hashed. Every reason says what to do.

export interface NodeHealth {
  readonly table: string;
  readonly regId: number;
  readonly role: 'publisher' | 'subscriber';
  readonly problems: readonly string[];
  /** Plain columns when the table was registered (null for registrations older than schema 11). */
  readonly columnsAtRegistration: readonly string[] | null;
  readonly columnsNow: readonly string[];
}

const reregister = (table: string) => `re-register it: syncguard register --table ${table} --refresh`;

/** Why a table cannot be compared; empty when it can. */
export function tableProblems(table: string, pub: NodeHealth | undefined, sub: NodeHealth | undefined): string[] {
  if (pub === undefined || sub === undefined) {
    const side = pub === undefined ? 'publisher' : 'subscriber';
    return [`registered on the ${side === 'publisher' ? 'subscriber' : 'publisher'} only, not on the ${side}; ${reregister(table)}`];
  }
  const out: string[] = [];
  for (const [label, h, expected] of [
    ['publisher', pub, 'publisher'],
    ['subscriber', sub, 'subscriber'],
  ] as const) {
    if (h.role !== expected) {
      out.push(
        `${label}: the registration was made for a ${h.role} (a node cloned from its peer keeps its peer's registrations); ${reregister(table)}`,
      );
    }
    for (const p of h.problems) out.push(`${label}: ${p}`);
  }
  const added = addedOnBothSides(pub, sub);
  if (added.length > 0) {
    out.push(`columns added on both sides since registration are not hashed: ${added.join(', ')}; to compare them, ${reregister(table)}`);
  }
  return out;
}

/** Columns present now on both sides that neither side had at registration. */
function addedOnBothSides(pub: NodeHealth, sub: NodeHealth): string[] {
  if (pub.columnsAtRegistration === null || sub.columnsAtRegistration === null) return [];
  const before = new Set([...pub.columnsAtRegistration, ...sub.columnsAtRegistration]);
  const onSub = new Set(sub.columnsNow);
  return pub.columnsNow.filter((c) => !before.has(c) && onSub.has(c));
}

/**
 * Columns the publisher still has that were dropped on the subscriber only: the subscriber can no
 * longer hold the publisher's data, which is drift (diverged), not a registration to redo.
 * Empty when none.
 */
export function droppedOnSubscriberOnly(pub: NodeHealth | undefined, sub: NodeHealth | undefined): string[] {
  // a table dropped or replaced on a side is a registration problem of its own
  if (pub === undefined || sub === undefined || sub.columnsNow.length === 0 || pub.columnsNow.length === 0) return [];
  const had = new Set([...(pub.columnsAtRegistration ?? []), ...(sub.columnsAtRegistration ?? [])]);
  const onSub = new Set(sub.columnsNow);
  return pub.columnsNow.filter((c) => had.has(c) && !onSub.has(c));
}
