// Issue 17 item 24: DSNs in every form pg/libpq accepts (URL, socket URL, key=value), named and redacted.

import { describe, expect, it } from 'vitest';
import { endpointOf } from '../../functions/db/control.js';
import { checkDsn, redactDsn, redactSecrets, secretsOf } from '../../functions/db/dsn.js';

describe('DSN forms (item 24)', () => {
  it('accepts a socket URL with an empty host and names it by its socket directory', () => {
    const dsn = checkDsn('postgres://u:s3cret@/app?host=/var/run/pg', 'publisher');
    expect(new URL(dsn).searchParams.get('host')).toBe('/var/run/pg');
    expect(endpointOf('postgres://u:s3cret@/app?host=/var/run/pg')).toBe('/var/run/pg:5432/app');
    expect(redactDsn('postgres://u:s3cret@/app?host=/var/run/pg')).not.toContain('s3cret');
    expect(secretsOf('postgres://u:s3cret@/app?host=/var/run/pg')).toContain('s3cret');
  });

  it('accepts key=value pairs, quoted values included, and turns them into a URL pg reads alike', () => {
    const dsn = checkDsn("host=db.example port=6543 dbname=app user=me password='it\\'s x y' sslmode=disable", 'subscriber');
    const u = new URL(dsn);
    expect([u.hostname, u.port, u.pathname, decodeURIComponent(u.username)]).toEqual(['db.example', '6543', '/app', 'me']);
    expect(u.searchParams.get('sslmode')).toBe('disable');
    expect(decodeURIComponent(u.password)).toBe("it's x y");
    expect(endpointOf('host=/tmp/sock port=5433 dbname=app')).toBe('/tmp/sock:5433/app');
  });

  it('never shows a key=value password, raw, unquoted or percent-encoded', () => {
    const given = "host=h dbname=d user=u password='p@ss w%rd'";
    const secrets = secretsOf(given);
    const normalized = checkDsn(given, 'publisher');
    for (const text of [given, normalized, `could not connect: password p@ss w%rd refused`]) {
      expect(redactSecrets(text, secrets)).not.toMatch(/p@ss|w%rd|p%40ss/);
    }
    expect(redactDsn(given)).not.toMatch(/p@ss|p%40ss/);
  });

  it('still refuses what is neither a URL nor key=value pairs, saying both forms', () => {
    expect(() => checkDsn('just some words', 'publisher')).toThrow(/neither a URL nor key=value pairs/);
    expect(() => checkDsn('mysql://h/d', 'publisher')).toThrow(/scheme mysql/);
  });
});
