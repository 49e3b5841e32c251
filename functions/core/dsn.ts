// DSN forms syncguard accepts, as libpq does: a URL (postgres:// or postgresql://, also with an
// empty host and ?host=/socket/dir), or a key=value string (host=... dbname=... user=...). Each is
// turned into one URL form that both WHATWG URL and pg read the same way, so naming, redaction
// and connecting need only one parser.

import { InputError } from './errors.js';

/** Stands in for an empty URL host (a socket URL); pg takes the host from ?host= over it. */
const PLACEHOLDER_HOST = 'localhost';

/** libpq's key=value syntax: key = value, value bare or 'single quoted' with \' and \\ escapes. */
function parseKeyValueDsn(dsn: string, label: string): Map<string, string> {
  const pairs = new Map<string, string>();
  const re = /\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?:'((?:[^'\\]|\\.)*)'|([^\s']*))/y;
  let at = 0;
  while (at < dsn.length) {
    if (/^\s*$/.test(dsn.slice(at))) break;
    re.lastIndex = at;
    const m = re.exec(dsn);
    if (m === null) {
      throw new InputError(
        `the ${label} DSN is neither a URL nor key=value pairs (at character ${at + 1}); expected postgres://user:password@host:port/database or host=... port=... dbname=... user=...`,
      );
    }
    const key = (m[1] as string).toLowerCase();
    const value = m[2] !== undefined ? m[2].replace(/\\(.)/g, '$1') : (m[3] as string);
    pairs.set(key, value);
    at = re.lastIndex;
  }
  if (pairs.size === 0) throw new InputError(`the ${label} DSN is empty`);
  return pairs;
}

function keyValueToUrl(pairs: Map<string, string>): string {
  const user = pairs.get('user') ?? '';
  const password = pairs.get('password') ?? '';
  const host = pairs.get('host') ?? pairs.get('hostaddr') ?? '';
  const port = pairs.get('port') ?? '';
  const db = pairs.get('dbname') ?? '';
  const auth =
    user === '' && password === '' ? '' : `${encodeURIComponent(user)}${password === '' ? '' : `:${encodeURIComponent(password)}`}@`;
  const query = new URLSearchParams();
  const socket = host.startsWith('/');
  if (socket) query.set('host', host);
  for (const [k, v] of pairs) if (!['user', 'password', 'host', 'hostaddr', 'port', 'dbname'].includes(k)) query.set(k, v);
  const hostPart = socket || host === '' ? PLACEHOLDER_HOST : host.includes(':') ? `[${host}]` : host;
  const q = query.toString();
  return `postgres://${auth}${hostPart}${port === '' ? '' : `:${port}`}/${encodeURIComponent(db)}${q === '' ? '' : `?${q}`}`;
}

/**
 * The DSN as a URL both WHATWG URL and pg read alike: key=value pairs become one, an empty host
 * (postgres://u:p@/db?host=/dir) gets a placeholder that pg ignores for ?host=. Refuses what is neither.
 */
export function normalizeDsn(dsn: string, label: string): string {
  const s = dsn.trim();
  const scheme = /^([A-Za-z][A-Za-z0-9+.-]*):\/\//.exec(s);
  if (scheme === null) return keyValueToUrl(parseKeyValueDsn(s, label));
  const proto = (scheme[1] as string).toLowerCase();
  if (proto !== 'postgres' && proto !== 'postgresql') {
    throw new InputError(`the ${label} DSN has scheme ${scheme[1]}; expected postgres:// or postgresql://, or key=value pairs`);
  }
  const rest = s.slice(scheme[0].length);
  const at = rest.search(/[/?]/);
  const authority = at < 0 ? rest : rest.slice(0, at);
  const hostPart = authority.slice(authority.lastIndexOf('@') + 1);
  const withHost = hostPart === '' ? `${scheme[0]}${authority}${PLACEHOLDER_HOST}${at < 0 ? '' : rest.slice(at)}` : s;
  try {
    new URL(withHost);
  } catch {
    throw new InputError(
      `the ${label} DSN is not a valid URL; expected postgres://user:password@host:port/database (percent-encode special characters in the password), or key=value pairs`,
    );
  }
  return withHost;
}

/** host:port/database of a normalized DSN, without credentials: a socket directory given by ?host= wins. */
export function endpointOfDsn(dsn: string): string {
  try {
    const u = new URL(dsn);
    const host = u.searchParams.get('host') ?? u.hostname;
    return `${host}:${u.searchParams.get('port') ?? (u.port || '5432')}${decodeURIComponent(u.pathname)}`;
  } catch {
    return '<unparseable DSN>';
  }
}
