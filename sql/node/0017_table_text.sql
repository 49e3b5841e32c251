-- syncguard node schema 0017: table names that hold a dot or a quote.
-- Reports name a table as `schema.table`. A part that holds a '.' or a '"' could not be told
-- apart in that form, so such a part is written quoted, as PostgreSQL writes it ("a.b", "say ""hi""").
-- Every other name reads as before (public.orders, Sales.Order Items), so reports, stored
-- divergences and the TypeScript side (functions/core/identifiers.ts, tableText/tableFromText,
-- which follow the same rule) stay compatible.

CREATE FUNCTION syncguard._name_part(p_name text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
AS $$ SELECT CASE WHEN strpos(p_name, '.') > 0 OR strpos(p_name, '"') > 0
                  THEN '"' || replace(p_name, '"', '""') || '"' ELSE p_name END $$;

CREATE FUNCTION syncguard._table_text(p_schema text, p_table text) RETURNS text
LANGUAGE sql IMMUTABLE STRICT SET search_path = pg_catalog, pg_temp
AS $$ SELECT syncguard._name_part(p_schema) || '.' || syncguard._name_part(p_table) $$;

REVOKE ALL ON FUNCTION syncguard._name_part(text), syncguard._table_text(text, text) FROM PUBLIC;

-- The functions that name a table in their output (status, parity_info, sweep_batch, health,
-- verify_buckets, local_writes and their helpers, as last defined in 0010 and 0011) wrote
-- format('%s.%s', r.schema_name, r.table_name). Each is redefined here from its current
-- definition with that expression replaced by _table_text, and nothing else changed; writing
-- them out again would copy several hundred lines whose only change is one expression.
DO $$
DECLARE
  v_fn record;
  v_def text;
  v_count integer := 0;
BEGIN
  FOR v_fn IN
    SELECT p.oid, p.oid::regprocedure AS name FROM pg_proc p
     WHERE p.pronamespace = 'syncguard'::regnamespace
       AND strpos(p.prosrc, 'format(''%s.%s'', r.schema_name, r.table_name)') > 0
  LOOP
    v_def := replace(pg_get_functiondef(v_fn.oid),
                     'format(''%s.%s'', r.schema_name, r.table_name)',
                     'syncguard._table_text(r.schema_name, r.table_name)');
    EXECUTE v_def;
    v_count := v_count + 1;
  END LOOP;
  IF v_count = 0 THEN
    RAISE EXCEPTION 'migration 0017 found no function to rewrite';
  END IF;
  IF EXISTS (SELECT 1 FROM pg_proc p WHERE p.pronamespace = 'syncguard'::regnamespace
                AND p.prosrc ~ '''%s\.%s''') THEN
    RAISE EXCEPTION 'migration 0017: a syncguard function still joins a table name with format(''%%s.%%s'')';
  END IF;
END
$$;
