-- Names: how syncguard writes a table's name in its reports, finds a registration, and names the
-- objects it generates for each registration (its mark, TRUNCATE and bucket functions, its bounds
-- table and its key type).

CREATE OR REPLACE FUNCTION syncguard._name_part(p_name text)
RETURNS text LANGUAGE sql IMMUTABLE STRICT
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT CASE WHEN strpos(p_name, '.') > 0 OR strpos(p_name, '"') > 0
                  THEN '"' || replace(p_name, '"', '""') || '"' ELSE p_name END $function$;

CREATE OR REPLACE FUNCTION syncguard._table_text(p_schema text, p_table text)
RETURNS text LANGUAGE sql IMMUTABLE STRICT
SET search_path TO 'pg_catalog', 'pg_temp'
AS $function$ SELECT syncguard._name_part(p_schema) || '.' || syncguard._name_part(p_table) $function$;

-- How readers name a registered table: a partitioned table whole, any other with ONLY (a
-- registered table never silently includes inheritance children).
CREATE OR REPLACE FUNCTION syncguard._rel(p_schema text, p_table text)
RETURNS text LANGUAGE sql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
  SELECT CASE WHEN (SELECT c.relkind FROM pg_class c WHERE c.oid = to_regclass(format('%I.%I', p_schema, p_table))) = 'p'
              THEN '' ELSE 'ONLY ' END || format('%I.%I', p_schema, p_table)
$function$;

-- This node's registration of a table, by id; raises when unknown.
CREATE OR REPLACE FUNCTION syncguard._reg(p_reg integer)
RETURNS syncguard.registration LANGUAGE plpgsql STABLE
SET search_path TO 'pg_catalog', 'pg_temp' AS $function$
DECLARE
  r syncguard.registration;
BEGIN
  SELECT * INTO r FROM syncguard.registration
   WHERE node_id = syncguard.node_id() AND reg_id = p_reg;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'syncguard registration % does not exist on this node', p_reg
      USING ERRCODE = 'undefined_object';
  END IF;
  RETURN r;
END $function$;

CREATE OR REPLACE FUNCTION syncguard._mark_fn(p_reg integer)
RETURNS text LANGUAGE sql IMMUTABLE
AS $function$ SELECT format('syncguard.%I', 'mark_' || p_reg) $function$;

CREATE OR REPLACE FUNCTION syncguard._truncate_fn(p_reg integer)
RETURNS text LANGUAGE sql IMMUTABLE
AS $function$ SELECT format('syncguard.%I', 'mark_truncate_' || p_reg) $function$;

CREATE OR REPLACE FUNCTION syncguard._bucket_fn(p_reg integer)
RETURNS text LANGUAGE sql IMMUTABLE
AS $function$ SELECT format('syncguard.%I', 'bucket_of_' || p_reg) $function$;

-- Range bounds are key values (e-mail addresses, say), so they must not be readable by every role:
-- they live in an owner-only UNLOGGED table per registration, syncguard.bounds_<id>, with the key
-- type as primary key, and bucket_of_<id>() is a SECURITY DEFINER function that finds a key's
-- bucket through that index (the bounds were compiled into its source before, which pg_proc shows
-- to everyone). UNLOGGED, because a FOR ALL TABLES publication would publish a logged table to
-- subscribers that do not have it and stop their replication; crash recovery empties it, and then
-- bucket_of_<id>() takes the bounds from the registration (slower, and correct) until check_state()
-- fills the table again. Only the owner may execute it (the triggers that call it run as the
-- owner), so it cannot serve as an oracle for the bounds either.
CREATE OR REPLACE FUNCTION syncguard._bounds_table(p_reg integer)
RETURNS text LANGUAGE sql IMMUTABLE
AS $function$ SELECT format('syncguard.%I', 'bounds_' || p_reg) $function$;

-- Names of the objects generated per registration.
CREATE OR REPLACE FUNCTION syncguard._key_type(p_reg integer)
RETURNS text LANGUAGE sql IMMUTABLE
AS $function$ SELECT format('syncguard.%I', 'key_' || p_reg) $function$;
