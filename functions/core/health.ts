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

/** The fix every node problem of a changed registration ends with (node 0011-0025 _problems). */
const NODE_FIX = /; re-register it: syncguard unregister --table (.+), then syncguard register --table \1$/;

/**
 * A node's problem with advice that works on the table as it is now. The node's texts are fixed
 * by its applied migrations (_problems, 0025) and two of them mislead: a renamed table was to be
 * registered again under its old name (which then does not exist, or is another table), and a
 * dropped one registered again at all (register refuses a table that does not exist). A disabled
 * trigger's "so all changes are not tracked" means none is. Any other text is kept as it is.
 */
export function currentAdvice(problem: string): string {
  const fix = NODE_FIX.exec(problem);
  if (fix !== null) {
    const [suffix, old] = fix as unknown as [string, string];
    const head = problem.slice(0, problem.length - suffix.length);
    const renamed = /^the registered table is now named (.+) \(renamed\), and (.+) (does not exist|is another table)$/.exec(head);
    if (renamed !== null && renamed[2] === old) {
      const now = renamed[1] as string;
      const other = renamed[3] === 'is another table' ? `, and ${old} is now another table` : '';
      return `the registered table ${old} was renamed to ${now}${other}; register it under its new name: syncguard unregister --table ${old}, then syncguard register --table ${now}`;
    }
    if (head === 'the table was dropped on this node')
      return `the table was dropped on this node; its registration is left over: remove it with syncguard unregister --table ${old}`;
  }
  return problem.replace(
    /^(trigger \S+ is disabled, not ENABLE ALWAYS), so all changes are not tracked \(/,
    '$1, so it tracks no changes at all, neither local writes nor replicated changes (',
  );
}

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
    for (const p of h.problems) out.push(`${label}: ${currentAdvice(p)}`);
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
