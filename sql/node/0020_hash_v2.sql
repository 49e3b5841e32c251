-- syncguard node schema 0020: hash_version 2, the binary row encoding (docs/hashing.md).
-- Version 1 renders each row as text (ROW(...)::text), which is 65-90 % of a sweep's cost
-- (docs/performance.md). Version 2 hashes the row's binary form instead:
--   sha256(record_send(ROW(c1', ..., cn'))), first 8 bytes as a signed big-endian bigint,
-- where ci' is the column as its base type when that type's binary send() output is the same on
-- every PostgreSQL 13-18, CPU and session (the list in _binary_safe below), with float NaN made
-- canonical, and else the text of the type's output function (arrays, enums, composites, ranges,
-- xml, geometric types, extension types: their binary forms carry per-database OIDs or
-- representation details that equal data need not share).
-- record_send() is PostgreSQL's documented binary record format: the column count, then per
-- column its type OID (a built-in, fixed OID here), its length (-1 for NULL) and its bytes.
-- Text types are sent in the client encoding, so every function that hashes now pins
-- client_encoding = UTF8, and max_parallel_workers_per_gather = 0 because a parallel worker
-- always sends in the database encoding.
-- Version 1 stays as it was. A registration carries its version; both sides of a pair always
-- hold the same one (it is in the fingerprint), and upgrading one is re-registering it
-- (syncguard register --table T --refresh --hash-version 2), after which both sides re-sweep.

ALTER TABLE syncguard.registration
  ADD CONSTRAINT registration_hash_version CHECK (hash_version IN (1, 2));

-- The row hash over bytes. PostgreSQL 18 casts 8 bytes to a bigint directly; before 18 the bytes
-- go through hex and bit(64), the same value at about 0.2 s more per million rows. IMMUTABLE is
-- right here (no convert_to), and not STRICT, so the planner inlines it.
-- On 18, row_hash(text) of version 1 takes the same shortcut: the same values, tested by the
-- golden vectors and the 15 <-> 18 tests.
DO $$
BEGIN
  IF current_setting('server_version_num')::integer >= 180000 THEN
    CREATE FUNCTION syncguard.row_hash(canonical bytea) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS 'SELECT pg_catalog.int8(pg_catalog.substr(pg_catalog.sha256(canonical), 1, 8))';
    CREATE OR REPLACE FUNCTION syncguard.row_hash(canonical text) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS 'SELECT pg_catalog.int8(pg_catalog.substr(pg_catalog.sha256(pg_catalog.convert_to(canonical, ''UTF8'')), 1, 8))';
  ELSE
    CREATE FUNCTION syncguard.row_hash(canonical bytea) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $f$ SELECT ('x' || pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(canonical), 1, 8), 'hex'))::pg_catalog.bit(64)::bigint $f$;
  END IF;
END
$$;

-- The type under any stack of domains.
CREATE FUNCTION syncguard._base_type(p_type oid) RETURNS oid
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp
AS $$
  WITH RECURSIVE d(oid, base) AS (
    SELECT t.oid, t.typbasetype FROM pg_type t WHERE t.oid = p_type
    UNION ALL
    SELECT t.oid, t.typbasetype FROM d JOIN pg_type t ON t.oid = d.base WHERE d.base <> 0)
  SELECT d.oid FROM d WHERE d.base = 0
$$;

-- Built-in types whose send() output depends only on the value: not on the server version, the
-- CPU or a setting other than client_encoding (pinned). Their OIDs are fixed in PostgreSQL's
-- catalogue. Each was measured against version 1's text in bench/encoding-phase.ts and proved
-- equal across 15 <-> 18 in test/integration/cross-version.test.ts.
CREATE FUNCTION syncguard._binary_safe(p_type oid) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path = pg_catalog, pg_temp
AS $$ SELECT p_type = ANY (ARRAY[
  'bool', 'bytea', 'char', 'name', 'int2', 'int4', 'int8', 'text', 'oid', 'json',
  'float4', 'float8', 'money', 'macaddr', 'macaddr8', 'inet', 'cidr', 'bpchar', 'varchar',
  'date', 'time', 'timetz', 'timestamp', 'timestamptz', 'interval', 'bit', 'varbit',
  'numeric', 'uuid', 'jsonb']::regtype[]::oid[]) $$;

-- One column as it enters the version 2 record.
--   float4/float8:  NaN replaced by the canonical NaN (arithmetic can produce other NaN bits,
--                   and replication in text form would not keep them);
--   binary-safe:    the value as its base type (a domain is cast to it, so the record carries
--                   the built-in type's OID);
--   anything else:  the text of the base type's output function, under the pinned settings.
CREATE FUNCTION syncguard._column_expr_v2(p_relid oid, p_column name, p_alias text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_type oid;
  v_base oid;
  v_col text := format('%s.%I', p_alias, p_column);
  v_out text;
BEGIN
  SELECT a.atttypid INTO v_type FROM pg_attribute a
   WHERE a.attrelid = p_relid AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF v_type IS NULL THEN
    RAISE EXCEPTION 'column % does not exist in %', quote_ident(p_column), p_relid::regclass
      USING ERRCODE = 'undefined_column';
  END IF;
  v_base := syncguard._base_type(v_type);
  IF v_base IN ('float4'::regtype, 'float8'::regtype) THEN
    RETURN format('CASE WHEN %1$s::%2$s OPERATOR(pg_catalog.=) ''NaN''::%2$s THEN ''NaN''::%2$s ELSE %1$s::%2$s END',
                  v_col, v_base::regtype);
  ELSIF syncguard._binary_safe(v_base) THEN
    RETURN CASE WHEN v_base = v_type THEN v_col ELSE format('%s::%s', v_col, v_base::regtype) END;
  END IF;
  SELECT format('%I.%I', n.nspname, p.proname) INTO v_out
    FROM pg_type t JOIN pg_proc p ON p.oid = t.typoutput JOIN pg_namespace n ON n.oid = p.pronamespace
   WHERE t.oid = v_base;
  RETURN format('pg_catalog.textin(%s(%s%s))', v_out, v_col,
                CASE WHEN v_base = v_type THEN '' ELSE format('::%s', v_base::regtype) END);
END
$$;

-- The row hash expression of a registration over a row alias, by its hash_version.
--   1: row_hash(ROW(c1, ..., cn)::text)                 (0002)
--   2: row_hash(record_send(ROW(c1', ..., cn')))        (above)
-- Callers that need the canonical form itself strip the outer syncguard.row_hash( ... ).
ALTER FUNCTION syncguard._hash_expr(oid, name[], text) RENAME TO _hash_expr_v1;

CREATE FUNCTION syncguard._hash_expr(r syncguard.registration, p_alias text) RETURNS text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  CASE r.hash_version
    WHEN 1 THEN
      RETURN syncguard._hash_expr_v1(r.relid, r.columns, p_alias);
    WHEN 2 THEN
      RETURN format('syncguard.row_hash(pg_catalog.record_send(ROW(%s)))',
                    (SELECT string_agg(syncguard._column_expr_v2(r.relid, c, p_alias), ', ' ORDER BY o)
                       FROM unnest(r.columns) WITH ORDINALITY u(c, o)));
    ELSE
      RAISE EXCEPTION 'hash_version % of %.% is not known to this syncguard schema (1 or 2)',
        r.hash_version, quote_ident(r.schema_name), quote_ident(r.table_name)
        USING ERRCODE = 'invalid_parameter_value';
  END CASE;
END
$$;

-- Every function that built a row hash from (relid, columns) now passes the registration, so the
-- version decides. They are redefined from their current definitions with only that call changed
-- (as 0017 did): compute, sweep, probe, inspect and repair readers, and the keyless bucket rule.
-- canonical_rows() returns the canonical form as text: version 2's bytes as \x hex.
DO $$
DECLARE
  v_fn record;
  v_def text;
  v_count integer := 0;
BEGIN
  FOR v_fn IN
    SELECT p.oid FROM pg_proc p
     WHERE p.pronamespace = 'syncguard'::regnamespace AND p.prosrc ~ '_hash_expr\((\w+)\.relid, \1\.columns, '
  LOOP
    v_def := regexp_replace(pg_get_functiondef(v_fn.oid), 'syncguard\._hash_expr\((\w+)\.relid, \1\.columns, ',
                            'syncguard._hash_expr(\1, ', 'g');
    v_def := replace(v_def, '''SELECT sg_b, sg_k, sg_c, syncguard.row_hash(sg_c) FROM (''',
                            '''SELECT sg_b, sg_k, sg_c::text, syncguard.row_hash(sg_c) FROM (''');
    EXECUTE v_def;
    v_count := v_count + 1;
  END LOOP;
  IF v_count < 6 THEN
    RAISE EXCEPTION 'migration 0020 rewrote % functions, expected at least 6', v_count;
  END IF;
  IF EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = 'syncguard'::regnamespace
                AND p.prosrc ~ '_hash_expr\([^)]*relid') THEN
    RAISE EXCEPTION 'migration 0020: a syncguard function still builds a row hash from (relid, columns)';
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_proc p WHERE p.oid = 'syncguard.canonical_rows(integer, bigint[])'::regprocedure
                    AND strpos(p.prosrc, 'sg_c::text') > 0) THEN
    RAISE EXCEPTION 'migration 0020 did not rewrite canonical_rows()';
  END IF;
END
$$;

-- Every function that renders values (it pins lc_monetary) now also pins the client encoding and
-- keeps the work in its own backend.
DO $$
DECLARE
  v_fn regprocedure;
BEGIN
  FOR v_fn IN
    SELECT p.oid FROM pg_proc p
     WHERE p.pronamespace = 'syncguard'::regnamespace AND p.proconfig @> ARRAY['lc_monetary=C']
  LOOP
    EXECUTE format('ALTER FUNCTION %s SET client_encoding = ''UTF8''', v_fn);
    EXECUTE format('ALTER FUNCTION %s SET max_parallel_workers_per_gather = 0', v_fn);
  END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION syncguard._pinned_settings() RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT 'SET timezone = ''UTC'' SET datestyle = ''ISO, YMD'' SET intervalstyle = ''postgres'' '
          || 'SET extra_float_digits = 1 SET bytea_output = ''hex'' SET lc_monetary = ''C'' '
          || 'SET client_encoding = ''UTF8'' SET max_parallel_workers_per_gather = 0 '
          || 'SET search_path = pg_catalog, pg_temp' $$;

REVOKE ALL ON FUNCTION syncguard._base_type(oid), syncguard._binary_safe(oid),
  syncguard._column_expr_v2(oid, name, text), syncguard._hash_expr(syncguard.registration, text) FROM PUBLIC;
