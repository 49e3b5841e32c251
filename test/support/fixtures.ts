// The awkward-types table: 36 column types whose text renderings depend on settings, version or
// encoding details. The subscriber copy has its columns in reverse order, an extra column and a
// dropped column, as real subscribers drift.

export const TYPE_SETUP = `
  CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
  CREATE DOMAIN positive_int AS integer CHECK (VALUE > 0);
`;

/** [column, type] in publisher order; `id` is the key. */
export const TYPE_COLUMNS: ReadonlyArray<readonly [string, string]> = [
  ['id', 'integer'],
  ['c_smallint', 'smallint'],
  ['c_bigint', 'bigint'],
  ['c_numeric', 'numeric'],
  ['c_numeric_scaled', 'numeric(12,4)'],
  ['c_real', 'real'],
  ['c_double', 'double precision'],
  ['c_bool', 'boolean'],
  ['c_text', 'text'],
  ['c_varchar', 'varchar(40)'],
  ['c_char', 'char(6)'],
  ['c_bytea', 'bytea'],
  ['c_date', 'date'],
  ['c_time', 'time'],
  ['c_timetz', 'timetz'],
  ['c_timestamp', 'timestamp'],
  ['c_timestamptz', 'timestamptz'],
  ['c_interval', 'interval'],
  ['c_json', 'json'],
  ['c_jsonb', 'jsonb'],
  ['c_uuid', 'uuid'],
  ['c_int_array', 'integer[]'],
  ['c_text_array', 'text[]'],
  ['c_enum', 'mood'],
  ['c_domain', 'positive_int'],
  ['c_xml', 'xml'],
  ['c_inet', 'inet'],
  ['c_cidr', 'cidr'],
  ['c_macaddr', 'macaddr'],
  ['c_money', 'money'],
  ['c_point', 'point'],
  ['c_int4range', 'int4range'],
  ['c_tsvector', 'tsvector'],
  ['c_bit', 'bit(8)'],
  ['c_varbit', 'varbit'],
  ['c_toast', 'text'],
];

export function typesTableDdl(table: string, side: 'publisher' | 'subscriber'): string {
  const cols = side === 'publisher' ? TYPE_COLUMNS : [...TYPE_COLUMNS].reverse();
  const defs = cols.map(([n, t]) => (n === 'id' ? `${n} ${t} PRIMARY KEY` : `${n} ${t}`));
  if (side === 'subscriber') defs.splice(3, 0, 'sub_only text DEFAULT $$subscriber$$', 'to_drop integer');
  const ddl = `CREATE TABLE ${table} (${defs.join(', ')});`;
  return side === 'subscriber' ? `${ddl} ALTER TABLE ${table} DROP COLUMN to_drop;` : ddl;
}

/**
 * INSERT of n rows with edge cases (NaN, ±Infinity, -0, NULLs, '' , unicode, a TOASTed value) over
 * rows 1..n. Every 7th row is mostly NULL.
 */
export function typesInsert(table: string, n: number): string {
  return `
  INSERT INTO ${table} (${TYPE_COLUMNS.map(([c]) => c).join(', ')})
  SELECT i,
    (i % 300 - 150)::smallint,
    (i::bigint * 9007199254740993) % 9223372036854775807,
    CASE i % 5 WHEN 0 THEN 'NaN'::numeric WHEN 1 THEN 1.50 WHEN 2 THEN 1.5 ELSE (i / 7.0)::numeric END,
    (i * 1.2345)::numeric(12,4),
    CASE i % 6 WHEN 0 THEN 'NaN'::real WHEN 1 THEN 'Infinity'::real WHEN 2 THEN '-0'::real ELSE (i / 3.0)::real END,
    CASE i % 6 WHEN 0 THEN '-Infinity'::float8 WHEN 1 THEN 0.1 + 0.2 WHEN 2 THEN 1e-300 ELSE i / 7.0 END,
    i % 2 = 0,
    CASE i % 4 WHEN 0 THEN '' WHEN 1 THEN 'ünïcødé ✓ ' || i WHEN 2 THEN E'tab\\there "quoted" (paren), comma' ELSE 'plain ' || i END,
    'v' || i,
    left('c' || i, 6),
    CASE WHEN i % 3 = 0 THEN ''::bytea ELSE decode(md5(i::text), 'hex') END,
    date '2000-02-29' + i,
    time '13:14:15.123456' + i * interval '1 minute',
    timetz '10:00:00+05:30' + i * interval '1 second',
    timestamp '1999-12-31 23:59:59.999999' + i * interval '1 hour',
    timestamptz '2024-03-10 01:59:59+00' + i * interval '17 minutes',
    make_interval(years => i % 3, months => i % 13, days => i, secs => i * 1.5),
    ('{"b": ' || i || ', "a": [1, 2.50, "x"], "a": null}')::json,
    ('{"b": ' || i || ', "a": [1, 2.50, "x"], "nested": {"k": "v"}}')::jsonb,
    md5(i::text)::uuid,
    ARRAY[i, NULL, -i],
    ARRAY['a,b', NULL, 'NULL', 'q"uote'],
    (ARRAY['sad', 'ok', 'happy']::mood[])[1 + i % 3],
    1 + i,
    ('<?xml version="1.0"?><r a="' || i || '">text &amp; more</r>')::xml,
    ('10.' || (i % 256) || '.0.1/' || (8 + i % 25))::inet,
    '192.168.0.0/16'::cidr,
    ('08:00:2b:01:02:' || lpad(to_hex(i % 256), 2, '0'))::macaddr,
    (i * 1.25)::numeric::money,
    point(i / 3.0, -i),
    int4range(i, i + 10),
    to_tsvector('simple', 'the quick brown fox ' || i),
    (i % 256)::bit(8),
    (i % 64)::bit(6)::varbit,
    CASE WHEN i % 50 = 1 THEN (SELECT string_agg(md5((i * 1000 + g)::text), '') FROM generate_series(1, 4000) g) ELSE 'short ' || i END
  FROM generate_series(1, ${n}) i;
  UPDATE ${table} SET ${TYPE_COLUMNS.filter(([c]) => c !== 'id')
    .map(([c]) => `${c} = NULL`)
    .join(', ')} WHERE id % 7 = 0;`;
}
