-- syncguard node schema 0012: each role gets exactly what it needs.
--   PUBLIC      may use the schema and nothing in it: no table, no function. The triggers run as
--               the owner (SECURITY DEFINER), so writers need nothing.
--   a drainer   (grant_drain) may call the drain functions and status(), nothing else: they run as
--               the owner (SECURITY DEFINER), so the role needs no table privileges at all.
--   a verifier  (grant_verify) may also read the catalogue through the verify functions.
--   the owner   installs, registers and unregisters.
-- PostgreSQL grants EXECUTE on every new function to PUBLIC, and that default cannot be removed
-- per schema, so _grants() revokes explicitly; the installer runs it after every migration.
--
-- Functions that read user tables pin row_security = off: a table whose row-level security would
-- hide rows from the drainer makes the drain fail (and verification report it) instead of hashing
-- a subset of the rows on each side.

CREATE FUNCTION syncguard.schema_version() RETURNS integer
LANGUAGE sql STABLE SECURITY DEFINER SET search_path = pg_catalog, pg_temp
AS $$ SELECT max(version) FROM syncguard.migration WHERE node_id = syncguard.node_id() $$;

ALTER FUNCTION syncguard.check_state() SECURITY DEFINER;
ALTER FUNCTION syncguard.request_full_sweep() SECURITY DEFINER;
ALTER FUNCTION syncguard.maybe_full_sweep(interval) SECURITY DEFINER;
ALTER FUNCTION syncguard.drain_batch(integer) SECURITY DEFINER;
ALTER FUNCTION syncguard.sweep_batch(integer) SECURITY DEFINER;
ALTER FUNCTION syncguard.status() SECURITY DEFINER;
ALTER FUNCTION syncguard.verify_ranges(bigint) SECURITY DEFINER;
ALTER FUNCTION syncguard.verify_buckets(text, text, bigint, bigint[], bigint[]) SECURITY DEFINER;
ALTER FUNCTION syncguard.local_writes(integer) SECURITY DEFINER;
ALTER FUNCTION syncguard.parity_info() SECURITY DEFINER;
ALTER FUNCTION syncguard.verify_live(text, text, bigint[]) SECURITY DEFINER;
ALTER FUNCTION syncguard.health() SECURITY DEFINER;

ALTER FUNCTION syncguard.compute_buckets(integer, bigint[]) SET row_security = off;
ALTER FUNCTION syncguard.compute_all(integer) SET row_security = off;
ALTER FUNCTION syncguard.canonical_rows(integer, bigint[]) SET row_security = off;
ALTER FUNCTION syncguard.recompute(integer, bigint[]) SET row_security = off;
ALTER FUNCTION syncguard.sweep_step(integer, integer) SET row_security = off;
ALTER FUNCTION syncguard.sample_bounds(text, text, name[], bigint) SET row_security = off;
ALTER FUNCTION syncguard.row_count(text, text) SET row_security = off;
ALTER FUNCTION syncguard.parity_info() SET row_security = off;
ALTER FUNCTION syncguard._sweep_progress(syncguard.registration) SET row_security = off;

CREATE FUNCTION syncguard._grants() RETURNS void
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
  REVOKE ALL ON ALL TABLES IN SCHEMA syncguard FROM PUBLIC;
  REVOKE ALL ON ALL SEQUENCES IN SCHEMA syncguard FROM PUBLIC;
  REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA syncguard FROM PUBLIC;
  GRANT USAGE ON SCHEMA syncguard TO PUBLIC;
END
$$;

-- The functions each kind of role needs, as signatures.
CREATE FUNCTION syncguard._role_functions(p_kind text) RETURNS text[]
LANGUAGE sql IMMUTABLE
AS $$
  SELECT ARRAY['syncguard.schema_version()', 'syncguard.check_state()', 'syncguard.request_full_sweep()',
               'syncguard.maybe_full_sweep(interval)', 'syncguard.drain_batch(integer)', 'syncguard.sweep_batch(integer)',
               'syncguard.status()']
      || CASE WHEN p_kind = 'verify' THEN
           ARRAY['syncguard.verify_ranges(bigint)', 'syncguard.verify_buckets(text, text, bigint, bigint[], bigint[])',
                 'syncguard.local_writes(integer)', 'syncguard.parity_info()', 'syncguard.verify_live(text, text, bigint[])',
                 'syncguard.health()']
         ELSE '{}' END
$$;

-- Grants a role what a drainer (p_kind 'drain') or a verifier ('verify', which also drains
-- briefly before it reads) needs, and nothing more. Returns the functions granted.
CREATE FUNCTION syncguard.grant_role(p_role name, p_kind text) RETURNS text[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp
AS $$
DECLARE
  v_fn text;
BEGIN
  IF p_kind NOT IN ('drain', 'verify') THEN
    RAISE EXCEPTION 'role kind must be drain or verify, got %', p_kind USING ERRCODE = 'invalid_parameter_value';
  END IF;
  FOREACH v_fn IN ARRAY syncguard._role_functions(p_kind) LOOP
    EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO %I', v_fn, p_role);
  END LOOP;
  RETURN syncguard._role_functions(p_kind);
END
$$;

SELECT syncguard._grants();
