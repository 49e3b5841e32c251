// The order of syncguard releases (package.json versions, semver): install refuses to replace the
// current definitions a newer release wrote, so an older CLI or Lambda cannot take a node back.

/** A release as [major, minor, patch], or null when the text is not one (a prerelease counts as its release). */
export function parseRelease(text: string): readonly [number, number, number] | null {
  const m = /^(\d+)\.(\d+)\.(\d+)(?:[-+][0-9A-Za-z.+-]*)?$/.exec(text.trim());
  return m ? [Number(m[1]), Number(m[2]), Number(m[3])] : null;
}

/** Whether release a comes after release b; false when either is not a release. */
export function isNewerRelease(a: string, b: string): boolean {
  const x = parseRelease(a);
  const y = parseRelease(b);
  if (x === null || y === null) return false;
  for (let i = 0; i < 3; i++) {
    const d = (x[i] ?? 0) - (y[i] ?? 0);
    if (d !== 0) return d > 0;
  }
  return false;
}
