// DSNs: checked and normalized (core/dsn.ts), redacted for messages, and as handed to the driver.

import { normalizeDsn } from '../core/dsn.js';
import { InputError } from '../core/errors.js';

/** A DSN without its password (user info, `password=` query parameter), safe to print. */
export function redactDsn(dsn: string): string {
  try {
    const u = new URL(normalizeDsn(dsn, 'database'));
    if (u.password !== '') u.password = '***';
    for (const k of [...u.searchParams.keys()]) if (/^password$/i.test(k)) u.searchParams.set(k, '***');
    return u.toString();
  } catch {
    return '<unparseable DSN>';
  }
}

/**
 * The secrets a DSN carries, in every form a user may write one: the URL password (raw and
 * percent-decoded), a `password` query parameter, or `password=` in a key/value string.
 */
export function secretsOf(dsn: string): string[] {
  const found: string[] = [];
  try {
    const u = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(dsn.trim()) ? normalizeDsn(dsn, 'database') : dsn);
    if (u.password !== '') found.push(u.password, decodeURIComponent(u.password));
    for (const [k, v] of u.searchParams) if (/^password$/i.test(k) && v !== '') found.push(v, encodeURIComponent(v));
  } catch {
    // not a URL: look for key/value pairs below
  }
  for (const m of dsn.matchAll(/password\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s&]+))/gi)) {
    const raw = m[1] ?? m[2];
    if (raw === undefined || raw === '') continue;
    // as written, unescaped (key=value quoting), and percent-encoded / -decoded (as a normalized URL shows it)
    const plain = m[1] !== undefined ? raw.replace(/\\(.)/g, '$1') : raw;
    found.push(raw, plain, encodeURIComponent(plain));
    try {
      found.push(decodeURIComponent(raw));
    } catch {
      // not percent-encoded
    }
  }
  return [...new Set(found)].filter((x) => x.length > 0);
}

/** Replaces every occurrence of each secret in a text by ***. */
export function redactSecrets(text: string, secrets: readonly string[]): string {
  let out = text;
  for (const s of [...secrets].sort((a, b) => b.length - a.length)) out = out.split(s).join('***');
  return out;
}

/**
 * A DSN in any form libpq accepts that syncguard can name and redact (a URL, a socket URL with an
 * empty host and ?host=/dir, or key=value pairs), returned as one URL form (core/dsn.ts).
 */
export function checkDsn(dsn: string | undefined, label: string): string {
  if (dsn === undefined || dsn.trim() === '') throw new InputError(`no ${label} DSN given`);
  return normalizeDsn(dsn, label);
}

/**
 * The DSN as handed to pg. pg 8 treats sslmode prefer, require and verify-ca as verify-full (the
 * server's certificate must be valid for its host name; prefer does not fall back to plain text)
 * and prints an 8-line SECURITY WARNING saying so; syncguard hands pg verify-full, which pg reads
 * the same way without the warning, and says in a failed connection's one-line error what the
 * mode meant.
 */
export function forDriver(dsn: string): { connectionString: string; sslNote: string } {
  const u = new URL(dsn);
  const mode = u.searchParams.get('sslmode');
  if (mode !== 'prefer' && mode !== 'require' && mode !== 'verify-ca') return { connectionString: dsn, sslNote: '' };
  u.searchParams.set('sslmode', 'verify-full');
  return {
    connectionString: u.toString(),
    sslNote: ` (sslmode=${mode} here means verify-full, as in the pg driver: TLS is required and the server's certificate must be valid for its host name; use sslmode=no-verify to encrypt without checking the certificate, sslrootcert=FILE for a private CA, or sslmode=disable for no TLS)`,
  };
}
