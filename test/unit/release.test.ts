import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isNewerRelease, parseRelease } from '../../functions/core/release.js';

const release = fc.tuple(fc.nat(30), fc.nat(30), fc.nat(30));
const text = ([a, b, c]: readonly [number, number, number]) => `${a}.${b}.${c}`;

describe('the order of releases', () => {
  it('orders by major, then minor, then patch, numerically', () => {
    expect(isNewerRelease('0.10.0', '0.9.9')).toBe(true);
    expect(isNewerRelease('1.0.0', '0.99.99')).toBe(true);
    expect(isNewerRelease('0.1.1', '0.1.0')).toBe(true);
    expect(isNewerRelease('0.1.0', '0.1.0')).toBe(false);
    expect(isNewerRelease('0.1.0', '0.1.1')).toBe(false);
    expect(isNewerRelease('0.2.0-rc.1', '0.1.9')).toBe(true);
    // a release comes after its prereleases: an rc build may not take a node back from the release
    expect(isNewerRelease('1.2.0', '1.2.0-rc.1')).toBe(true);
    expect(isNewerRelease('1.2.0-rc.1', '1.2.0')).toBe(false);
    expect(isNewerRelease('1.2.0+build.7', '1.2.0')).toBe(false);
  });

  it('is a strict order: never both ways, never a release newer than itself', () => {
    fc.assert(
      fc.property(release, release, (a, b) => {
        expect(isNewerRelease(text(a), text(a))).toBe(false);
        expect(isNewerRelease(text(a), text(b)) && isNewerRelease(text(b), text(a))).toBe(false);
        const same = a.every((v, i) => v === b[i]);
        expect(same || isNewerRelease(text(a), text(b)) || isNewerRelease(text(b), text(a))).toBe(true);
      }),
    );
  });

  it('knows nothing of text that is not a release (no refusal on it)', () => {
    expect(parseRelease('latest')).toBeNull();
    expect(parseRelease('1.2')).toBeNull();
    expect(isNewerRelease('latest', '0.1.0')).toBe(false);
    expect(isNewerRelease('9.9.9', '')).toBe(false);
  });
});
