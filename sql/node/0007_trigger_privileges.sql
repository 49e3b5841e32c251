-- syncguard node schema 0007: privileges for the subscriber's invoker row trigger.
-- That trigger function runs as whoever writes the table (the apply worker runs as the table
-- owner from PG16), so every role may reach the schema and insert dirty marks and local-write
-- records, and nothing else:
-- EXECUTE on syncguard's functions is revoked from PUBLIC (only the generated bucket_of_<id>()
-- functions, which just compute a number, are granted back at registration).
GRANT USAGE ON SCHEMA syncguard TO PUBLIC;
GRANT INSERT ON syncguard.dirty, syncguard.local_write TO PUBLIC;
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA syncguard FROM PUBLIC;
ALTER DEFAULT PRIVILEGES IN SCHEMA syncguard REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;
