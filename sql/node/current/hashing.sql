-- The canonical encoding (docs/design.md "The canonical encoding"): how each column is rendered
-- so that equal data gives equal hashes on PostgreSQL 13-18, whatever the session settings, and the
-- row hash over it. Hash versions 1 and 2 are frozen: a change to what they hash is a new version.

-- The row hash: the first 8 bytes of sha256, as a signed bigint, over bytes (version 2's
-- record_send form) or over the UTF-8 canonical text (version 1). PostgreSQL 18 casts 8 bytes to
-- a bigint directly; before 18 the bytes go through hex and bit(64): the same value, about 0.2 s
-- more per million rows (the golden vectors and the 15 <-> 18 tests prove them equal). The text
-- form is STABLE (convert_to is) and neither form is STRICT, so the planner inlines them: declared
-- STRICT, each would run as a SQL-function call per row, 3.4x slower (measured on 1M rows).
-- The one definition that depends on the server's version, so it is made by a DO block.
DO $row_hash$
BEGIN
  IF pg_catalog.current_setting('server_version_num')::integer >= 180000 THEN
    CREATE OR REPLACE FUNCTION syncguard.row_hash(canonical bytea) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $function$SELECT pg_catalog.int8(pg_catalog.substr(pg_catalog.sha256(canonical), 1, 8))$function$;
    CREATE OR REPLACE FUNCTION syncguard.row_hash(canonical text) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $function$SELECT pg_catalog.int8(pg_catalog.substr(pg_catalog.sha256(pg_catalog.convert_to(canonical, 'UTF8')), 1, 8))$function$;
  ELSE
    CREATE OR REPLACE FUNCTION syncguard.row_hash(canonical bytea) RETURNS bigint
    LANGUAGE sql IMMUTABLE PARALLEL SAFE
    AS $function$ SELECT ('x' || pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(canonical), 1, 8), 'hex'))::pg_catalog.bit(64)::bigint $function$;
    CREATE OR REPLACE FUNCTION syncguard.row_hash(canonical text) RETURNS bigint
    LANGUAGE sql STABLE PARALLEL SAFE
    AS $function$ SELECT ('x' || pg_catalog.encode(pg_catalog.substr(pg_catalog.sha256(pg_catalog.convert_to(canonical, 'UTF8')), 1, 8), 'hex'))::pg_catalog.bit(64)::bigint $function$;
  END IF;
END
$row_hash$;

CREATE OR REPLACE FUNCTION syncguard._hash_expr(r syncguard.registration, p_alias text)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
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
END $function$;

CREATE OR REPLACE FUNCTION syncguard._hash_expr_v1(p_relid oid, p_columns name[], p_alias text)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT format('syncguard.row_hash(ROW(%s)::text)',
                string_agg(syncguard._column_expr(p_relid, c, p_alias), ', ' ORDER BY o))
  FROM unnest(p_columns) WITH ORDINALITY u(c, o)
$function$;

-- The type of a table's column, or an error naming the column that does not exist.
CREATE OR REPLACE FUNCTION syncguard._column_type(p_relid oid, p_column name)
RETURNS oid LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_type oid;
BEGIN
  SELECT a.atttypid INTO v_type FROM pg_attribute a
   WHERE a.attrelid = p_relid AND a.attname = p_column AND a.attnum > 0 AND NOT a.attisdropped;
  IF v_type IS NULL THEN
    RAISE EXCEPTION 'column % does not exist in %', quote_ident(p_column), p_relid::regclass
      USING ERRCODE = 'undefined_column';
  END IF;
  RETURN v_type;
END $function$;

-- One column as it enters the row text: money (and domains or arrays of it) as numeric, because
-- money's output depends on lc_monetary; every other type through its own output function.
CREATE OR REPLACE FUNCTION syncguard._column_expr(p_relid oid, p_column name, p_alias text)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_type oid;
  v_base oid;
  v_elem oid;
BEGIN
  v_type := syncguard._column_type(p_relid, p_column);
  v_base := coalesce((SELECT CASE WHEN t.typtype = 'd' THEN t.typbasetype END FROM pg_type t WHERE t.oid = v_type), v_type);
  v_elem := (SELECT t.typelem FROM pg_type t WHERE t.oid = v_base AND t.typcategory = 'A');
  IF v_base = 'money'::regtype THEN
    RETURN format('%s.%I::pg_catalog.numeric', p_alias, p_column);
  ELSIF v_elem = 'money'::regtype THEN
    RETURN format('%s.%I::pg_catalog.numeric[]', p_alias, p_column);
  END IF;
  RETURN format('%s.%I', p_alias, p_column);
END $function$;

-- One column as it enters the version 2 record.
--   float4/float8:  NaN replaced by the canonical NaN (arithmetic can produce other NaN bits,
--                   and replication in text form would not keep them);
--   binary-safe:    the value as its base type (a domain is cast to it, so the record carries
--                   the built-in type's OID);
--   anything else:  the text of the base type's output function, under the pinned settings.
CREATE OR REPLACE FUNCTION syncguard._column_expr_v2(p_relid oid, p_column name, p_alias text)
RETURNS text LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  v_type oid;
  v_base oid;
  v_col text := format('%s.%I', p_alias, p_column);
  v_out text;
BEGIN
  v_type := syncguard._column_type(p_relid, p_column);
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
END $function$;

-- The type under any stack of domains.
CREATE OR REPLACE FUNCTION syncguard._base_type(p_type oid)
RETURNS oid LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  WITH RECURSIVE d(oid, base) AS (
    SELECT t.oid, t.typbasetype FROM pg_type t WHERE t.oid = p_type
    UNION ALL
    SELECT t.oid, t.typbasetype FROM d JOIN pg_type t ON t.oid = d.base WHERE d.base <> 0)
  SELECT d.oid FROM d WHERE d.base = 0
$function$;

-- Built-in types whose send() output depends only on the value: not on the server version, the
-- CPU or a setting other than client_encoding (pinned). Their OIDs are fixed in PostgreSQL's
-- catalogue. Each was measured against version 1's text in bench/encoding-phase.ts and proved
-- equal across 15 <-> 18 in test/integration/cross-version.test.ts.
CREATE OR REPLACE FUNCTION syncguard._binary_safe(p_type oid)
RETURNS boolean LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT p_type = ANY (ARRAY[
  'bool', 'bytea', 'char', 'name', 'int2', 'int4', 'int8', 'text', 'oid', 'json',
  'float4', 'float8', 'money', 'macaddr', 'macaddr8', 'inet', 'cidr', 'bpchar', 'varchar',
  'date', 'time', 'timetz', 'timestamp', 'timestamptz', 'interval', 'bit', 'varbit',
  'numeric', 'uuid', 'jsonb']::regtype[]::oid[]) $function$;

-- The collation name of each column (NULL for types without collation), for key comparisons.
CREATE OR REPLACE FUNCTION syncguard._collations(p_relid oid, p_columns name[])
RETURNS text[] LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT array_agg((SELECT co.collname::text FROM pg_collation co WHERE co.oid = a.attcollation) ORDER BY u.o)
    FROM unnest(p_columns) WITH ORDINALITY u(c, o)
    LEFT JOIN pg_attribute a ON a.attrelid = p_relid AND a.attname = u.c AND a.attnum > 0 AND NOT a.attisdropped
$function$;

-- The SET clause every generated function that renders values carries.
CREATE OR REPLACE FUNCTION syncguard._pinned_settings()
RETURNS text LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $function$ SELECT 'SET timezone = ''UTC'' SET datestyle = ''ISO, YMD'' SET intervalstyle = ''postgres'' '
          || 'SET extra_float_digits = 1 SET bytea_output = ''hex'' SET lc_monetary = ''C'' '
          || 'SET client_encoding = ''UTF8'' SET max_parallel_workers_per_gather = 0 '
          || 'SET search_path = pg_catalog, pg_temp' $function$;

-- Hashed columns of a table whose type is a domain (at any depth) over character or bit, or over
-- an array of them: version 2 reads them back truncated. [{column, type, base}], base as declared
-- by the innermost domain (e.g. character(3)).
CREATE OR REPLACE FUNCTION syncguard._v2_truncated(p_relid oid, p_columns name[])
RETURNS jsonb LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  WITH RECURSIVE cols AS (
    SELECT a.attname, a.atttypid, a.atttypmod FROM pg_attribute a
     WHERE a.attrelid = p_relid AND a.attname = ANY(p_columns) AND a.attnum > 0 AND NOT a.attisdropped
  ), d(attname, oid, base, typmod) AS (
    SELECT c.attname, t.oid, t.typbasetype, t.typtypmod FROM cols c JOIN pg_type t ON t.oid = c.atttypid WHERE t.typtype = 'd'
    UNION ALL
    SELECT d.attname, t.oid, t.typbasetype, t.typtypmod FROM d JOIN pg_type t ON t.oid = d.base WHERE t.typtype = 'd'
  )
  SELECT coalesce(jsonb_agg(jsonb_build_object('column', c.attname, 'type', format_type(c.atttypid, c.atttypmod),
                                               'base', format_type(d.base, d.typmod)) ORDER BY c.attname), '[]')
    FROM cols c JOIN d ON d.attname = c.attname
   WHERE d.base IN ('bpchar'::regtype, 'bit'::regtype, '_bpchar'::regtype, '_bit'::regtype)
$function$;

-- For registration (the owner): the columns of schema.table among p_columns that version 2 would
-- truncate; '[]' when none or when the table does not exist.
CREATE OR REPLACE FUNCTION syncguard.v2_truncated_columns(p_schema text, p_table text, p_columns text[])
RETURNS jsonb LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT coalesce(syncguard._v2_truncated(to_regclass(format('%I.%I', p_schema, p_table)), p_columns::name[]), '[]')
$function$;
