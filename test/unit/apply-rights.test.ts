// core/apply-rights.ts: can a subscription's owner apply syncguard's writes, and the fix when not.

import { describe, expect, it } from 'vitest';
import { type ApplyFacts, type ApplyTable, applyCheckText, applyRoleSetup, checkApplyRights } from '../../functions/core/apply-rights.js';

const table = (t: Partial<ApplyTable> = {}): ApplyTable => ({
  table: 'probe',
  owner: 'sg_owner',
  canSetRole: false,
  select: false,
  insert: false,
  update: false,
  delete: false,
  ownerSelect: true,
  ownerInsert: true,
  ownerUpdate: true,
  ownerDelete: true,
  rls: false,
  ...t,
});
const facts = (f: Partial<ApplyFacts> = {}): ApplyFacts => ({
  subscription: 'accsub',
  major: 18,
  owner: 'subowner',
  ownerSuper: false,
  ownerBypassRls: false,
  runAsOwner: false,
  installer: 'sg_owner',
  applyRole: 'syncguard_apply_app',
  applyRoleExists: false,
  tables: [table()],
  ...f,
});

describe('checkApplyRights', () => {
  it('C1: never prints a grant on registration, node_state or migration (FOR ALL TABLES)', () => {
    for (const runAsOwner of [false, true]) {
      const c = checkApplyRights(
        facts({ runAsOwner, tables: [table(), table({ table: 'registration' }), table({ table: 'node_state' })] }),
      );
      expect(c.ok).toBe(false);
      if (c.ok) continue;
      expect([...c.fix, ...(c.alternative ?? [])].join(' ')).not.toMatch(/registration|node_state|migration|GRANT "?sg_owner/);
      expect(c.fix.join(' ')).toMatch(/ALTER SUBSCRIPTION "accsub" OWNER TO/);
    }
  });

  it('C1: on 16+ offers run_as_owner = true with probe privileges beside the SET ROLE grant', () => {
    const c = checkApplyRights(facts({ applyRoleExists: true, tables: [table({ owner: 'syncguard_apply_app' })] }));
    expect(c.ok === false && c.alternative).toEqual([
      'ALTER SUBSCRIPTION "accsub" SET (run_as_owner = true)',
      'GRANT SELECT, INSERT, DELETE ON syncguard.probe TO "subowner"',
    ]);
  });

  it('M7: the owner that revoked its own rights, and row-level security, block apply', () => {
    const set = table({ owner: 'syncguard_apply_app', canSetRole: true });
    expect(checkApplyRights(facts({ tables: [set] }))).toEqual({ ok: true });
    expect(checkApplyRights(facts({ tables: [{ ...set, ownerInsert: false }] })).ok).toBe(false);
    expect(checkApplyRights(facts({ tables: [{ ...set, rls: true }] })).ok).toBe(false);
    const priv = table({ select: true, insert: true, delete: true, rls: true });
    expect(checkApplyRights(facts({ runAsOwner: true, tables: [priv] })).ok).toBe(false);
    expect(checkApplyRights(facts({ runAsOwner: true, ownerBypassRls: true, tables: [priv] }))).toEqual({ ok: true });
  });

  it('passes a superuser owner, and a subscription that carries no syncguard table', () => {
    expect(checkApplyRights(facts({ ownerSuper: true }))).toEqual({ ok: true });
    expect(checkApplyRights(facts({ tables: [] }))).toEqual({ ok: true });
  });

  it('16+ with run_as_owner off: needs SET ROLE to each table owner, and never grants the installer', () => {
    expect(checkApplyRights(facts({ tables: [table({ canSetRole: true })] }))).toEqual({ ok: true });
    // privileges do not help: the worker switches to the owner
    const c = checkApplyRights(facts({ tables: [table({ select: true, insert: true, update: true, delete: true })] }));
    expect(c.ok).toBe(false);
    if (c.ok) return;
    expect(c.reason).toBe(
      "subscription accsub (owner subowner) applies as each table's owner (run_as_owner = false), and subowner may not SET ROLE to sg_owner, the owner of syncguard.probe",
    );
    expect(c.fix).toEqual([
      'CREATE ROLE "syncguard_apply_app" NOLOGIN NOINHERIT',
      'GRANT "syncguard_apply_app" TO "sg_owner" WITH INHERIT TRUE, SET TRUE',
      'syncguard install --dsn <subscriber DSN> (as sg_owner: it gives syncguard.probe to syncguard_apply_app)',
      'GRANT "syncguard_apply_app" TO "subowner" WITH SET TRUE, INHERIT FALSE',
    ]);
    expect(c.fix.join(' ')).not.toMatch(/GRANT "sg_owner"/);
    expect(applyCheckText(c)).toContain('nothing of syncguard is sent to it');
    // the role exists but the tables are still the installer's: no CREATE ROLE
    const exists = checkApplyRights(facts({ applyRoleExists: true }));
    expect(exists.ok === false && exists.fix[0]).toBe('GRANT "syncguard_apply_app" TO "sg_owner" WITH INHERIT TRUE, SET TRUE');
  });

  it("16+ with run_as_owner off and syncguard.probe already the dedicated role's: one grant", () => {
    const c = checkApplyRights(
      facts({
        applyRoleExists: true,
        tables: [table({ owner: 'syncguard_apply_app' })],
      }),
    );
    expect(c.ok === false && c.fix).toEqual(['GRANT "syncguard_apply_app" TO "subowner" WITH SET TRUE, INHERIT FALSE']);
  });

  it('run_as_owner on, and PostgreSQL 15: SELECT, INSERT and DELETE on syncguard.probe', () => {
    for (const f of [{ runAsOwner: true }, { major: 15 }]) {
      expect(checkApplyRights(facts({ ...f, tables: [table({ select: true, insert: true, delete: true })] }))).toEqual({ ok: true });
      // a replicated DELETE needs SELECT as well
      expect(checkApplyRights(facts({ ...f, tables: [table({ insert: true, delete: true })] })).ok).toBe(false);
      // SET ROLE does not help: the worker writes as the subscription's owner
      const c = checkApplyRights(facts({ ...f, tables: [table({ canSetRole: true, insert: true })] }));
      expect(c.ok === false && c.fix).toEqual(['GRANT SELECT, INSERT, DELETE ON syncguard.probe TO "subowner"']);
    }
    const c15 = checkApplyRights(facts({ major: 15 }));
    expect(c15.ok === false && c15.reason).toBe(
      'subscription accsub (owner subowner) applies as its owner (PostgreSQL 15), and subowner lacks SELECT, INSERT, DELETE on syncguard.probe',
    );
  });

  it('quotes role names', () => {
    const c = checkApplyRights(facts({ major: 15, owner: 'Sub "Owner"' }));
    expect(c.ok === false && c.fix).toEqual(['GRANT SELECT, INSERT, DELETE ON syncguard.probe TO "Sub ""Owner"""']);
  });

  it('says what an administrator runs so that install can give the tables to their role (PostgreSQL 15 has no WITH SET)', () => {
    expect(applyRoleSetup('syncguard_apply_app', 'sg_owner', false, 15)).toEqual([
      'CREATE ROLE "syncguard_apply_app" NOLOGIN NOINHERIT',
      'GRANT "syncguard_apply_app" TO "sg_owner"',
    ]);
    expect(applyRoleSetup('syncguard_apply_app', 'sg_owner', true, 16)).toEqual([
      'GRANT "syncguard_apply_app" TO "sg_owner" WITH INHERIT TRUE, SET TRUE',
    ]);
  });
});
