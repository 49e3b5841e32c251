// The order of syncguard releases (package.json versions, semver): install refuses to replace the
// current definitions a newer release wrote, so an older CLI or Lambda cannot take a node back.

/** A release as [major, minor, patch, 1 for a release or 0 for a prerelease of it], or null when the text is not one (build metadata after + is ignored). */
export function parseRelease(text: string): readonly [number, number, number, number] | null {
  const m = /^(\d+)\.(\d+)\.(\d+)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?$/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3]), m[4] === undefined ? 1 : 0] : null;
}

/**
 * Whether release a comes after release b (a release after its prereleases, which are not ordered
 * among themselves); false when either is not a release.
 */
export function isNewerRelease(a: string, b: string): boolean {
  const x = parseRelease(a);
  const y = parseRelease(b);
  if (x === null || y === null) return false;
  for (let i = 0; i < 4; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return false;
}
