-- syncguard control plane 0007: a recorder writes the run tables only.
--
-- grant_role('recorder') granted INSERT and UPDATE on every table of the schema, plans and
-- approvals included, where only the guard trigger stood between a recorder and a forged plan or
-- decision (a trigger a session under session_replication_role = replica does not fire). From here
-- a recorder is granted writes on verification_run, divergence, divergence_event and table_verified
-- (what record_run, which runs as its caller, writes), and this takes back every direct write on
-- the tables that are written only through the SECURITY DEFINER functions, from every role but the
-- owner, as 0005 did for plans and approvals.
DO $$
DECLARE
  g record;
BEGIN
  FOR g IN
    SELECT DISTINCT c.oid::regclass AS tbl, CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE quote_ident(r.rolname) END AS who
      FROM pg_catalog.pg_class c CROSS JOIN LATERAL aclexplode(c.relacl) x LEFT JOIN pg_catalog.pg_roles r ON r.oid = x.grantee
     WHERE c.oid IN ('syncguard_control.repair_plan'::regclass, 'syncguard_control.plan_approval'::regclass,
                     'syncguard_control.approval_policy'::regclass, 'syncguard_control.plan_claim_event'::regclass,
                     'syncguard_control.deployment'::regclass)
       AND x.grantee <> c.relowner AND x.privilege_type IN ('INSERT', 'UPDATE', 'DELETE', 'TRUNCATE')
  LOOP
    EXECUTE format('REVOKE INSERT, UPDATE, DELETE, TRUNCATE ON %s FROM %s', g.tbl, g.who);
  END LOOP;
END
$$;
