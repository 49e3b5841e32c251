-- syncguard node schema 0001: tables and node identity.
--
-- Durable configuration (migrations, registrations) lives in LOGGED tables keyed by node_id, so a
-- FOR ALL TABLES publication that copies them to a subscriber can never collide with, or overwrite,
-- the subscriber's own rows. Derived state (catalogue, dirty marks, sweep cursors) lives in UNLOGGED
-- tables: they write no WAL (cheap triggers), are never published, and are rebuilt by a sweep when
-- crash recovery or a failover empties them.

CREATE SCHEMA IF NOT EXISTS syncguard;
REVOKE ALL ON SCHEMA syncguard FROM PUBLIC;

-- node_id() is generated once per installation with a random value. Function bodies are not
-- replicated, so a publisher and its subscriber always differ, unless one was cloned from the other
-- (physical copy, pg_createsubscriber); pair commands detect that and call reidentify().
DO $install$
BEGIN
  IF to_regprocedure('syncguard.node_id()') IS NULL THEN
    EXECUTE format(
      'CREATE FUNCTION syncguard.node_id() RETURNS uuid LANGUAGE sql IMMUTABLE PARALLEL SAFE AS %L',
      format('SELECT %L::uuid', gen_random_uuid()));
  END IF;
END
$install$;

CREATE TABLE syncguard.migration (
  node_id    uuid NOT NULL DEFAULT syncguard.node_id(),
  version    integer NOT NULL,
  name       text NOT NULL,
  applied_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, version)
);

CREATE SEQUENCE syncguard.registration_id_seq AS integer;

CREATE TABLE syncguard.registration (
  node_id      uuid NOT NULL DEFAULT syncguard.node_id(),
  reg_id       integer NOT NULL DEFAULT nextval('syncguard.registration_id_seq'),
  relid        oid NOT NULL,
  schema_name  name NOT NULL,
  table_name   name NOT NULL,
  node_role    text NOT NULL CHECK (node_role IN ('publisher', 'subscriber')),
  key_columns  name[] NOT NULL,
  key_types    text[] NOT NULL,
  scheme       text NOT NULL CHECK (scheme IN ('int', 'range', 'hash')),
  bucket_width bigint,            -- int: keys per bucket
  bucket_count integer,           -- range: bounds + 1; hash: modulus
  bounds       jsonb,             -- range: lower bound of buckets 1..n, each an array of key texts
  columns      name[] NOT NULL,   -- hashed columns, sorted by name
  column_types text[] NOT NULL,
  publications text[] NOT NULL DEFAULT '{}',
  row_filter   text,              -- publisher only: the publication row filter, from the catalogue
  hash_version integer NOT NULL,
  fingerprint  text NOT NULL,
  registered_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (node_id, reg_id),
  UNIQUE (node_id, schema_name, table_name),
  CHECK ((scheme = 'int') = (bucket_width IS NOT NULL)),
  CHECK ((scheme = 'int') = (bucket_count IS NULL))
);
ALTER SEQUENCE syncguard.registration_id_seq OWNED BY syncguard.registration.reg_id;

-- The catalogue: one row per known bucket. row_count IS NULL means "claimed, never computed".
CREATE UNLOGGED TABLE syncguard.bucket (
  reg_id      integer NOT NULL,
  bucket      bigint NOT NULL,
  row_count   bigint,
  hash_sum    numeric,
  computed_at timestamptz,
  PRIMARY KEY (reg_id, bucket)
);

-- Dirty marks: one per (bucket, writing transaction). A drainer deletes only marks its snapshot
-- sees as committed, so a mark of a transaction still in flight survives and forces a recompute.
CREATE UNLOGGED TABLE syncguard.dirty (
  reg_id integer NOT NULL,
  bucket bigint NOT NULL,
  xid    xid8 NOT NULL,
  marked_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (reg_id, bucket, xid)
);

-- Writes to a monitored table on a subscriber that did not come from replication (the apply
-- worker runs with session_replication_role = replica; other sessions do not). The usual cause
-- of drift, so verification reports them. One row per (bucket, transaction).
CREATE UNLOGGED TABLE syncguard.local_write (
  reg_id           integer NOT NULL,
  bucket           bigint NOT NULL,
  xid              xid8 NOT NULL,
  written_at       timestamptz NOT NULL DEFAULT now(),
  role             name NOT NULL,
  application_name text NOT NULL,
  PRIMARY KEY (reg_id, bucket, xid)
);

-- Sweep cursor per registration; a missing row means "sweep from the start". The first pass makes
-- the catalogue complete; later passes (periodic or requested) catch changes that bypassed the
-- triggers. first_finished_at stays set across passes.
CREATE UNLOGGED TABLE syncguard.sweep (
  reg_id            integer PRIMARY KEY,
  next_bucket       bigint NOT NULL,
  pass              integer NOT NULL DEFAULT 1,
  started_at        timestamptz NOT NULL DEFAULT now(),
  finished_at       timestamptz,
  first_finished_at timestamptz
);

-- A row that only vanishes when the unlogged tables were emptied (crash recovery, promotion).
CREATE UNLOGGED TABLE syncguard.sentinel (
  id         boolean PRIMARY KEY DEFAULT true CHECK (id),
  created_at timestamptz NOT NULL DEFAULT now()
);
INSERT INTO syncguard.sentinel DEFAULT VALUES;
