-- syncguard control plane 0003: repair plans and their approvals (docs/repair.md).
--
-- A plan is the reviewed list of subscriber changes for one bucket, each with its precondition.
-- Its checksum covers everything that would be applied; an approval is recorded against that
-- checksum, so a plan edited after approval (or an approval of another version) never applies.
-- A plan is applied at most once; its outcome is kept.

CREATE TABLE syncguard_control.repair_plan (
  plan_id        bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  pair           text NOT NULL,
  table_name     text NOT NULL,
  bucket         text NOT NULL,
  fingerprint    text NOT NULL,
  divergence_id  bigint REFERENCES syncguard_control.divergence,
  created_by     text NOT NULL,
  created_at     timestamptz NOT NULL DEFAULT now(),
  expires_at     timestamptz NOT NULL,
  row_count      integer NOT NULL,
  checksum       text NOT NULL,
  body           jsonb NOT NULL,          -- {changes: [...], sql: "..."}
  state          text NOT NULL DEFAULT 'proposed'
                 CHECK (state IN ('proposed', 'approved', 'rejected', 'applying', 'applied')),
  applied_by     text,
  applied_at     timestamptz,
  outcome        jsonb
);
CREATE INDEX repair_plan_pair ON syncguard_control.repair_plan (pair, table_name, bucket);

CREATE TABLE syncguard_control.plan_approval (
  approval_id  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  plan_id      bigint NOT NULL REFERENCES syncguard_control.repair_plan,
  checksum     text NOT NULL,
  decision     text NOT NULL CHECK (decision IN ('approved', 'rejected')),
  decided_by   text NOT NULL,
  decided_at   timestamptz NOT NULL DEFAULT now(),
  comment      text
);
-- One decision per plan: a rejected plan stays rejected, an approved one cannot be approved twice.
CREATE UNIQUE INDEX plan_approval_once ON syncguard_control.plan_approval (plan_id);
