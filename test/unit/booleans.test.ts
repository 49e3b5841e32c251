// Issue 17 item 19: one way to read a yes/no setting, for every environment and config boolean.
// Before: SYNCGUARD_FOUR_EYES=true (as docs/repair.md documents) did not turn four-eyes on for the
// CLI (only 1 did), and the Lambdas refused 1, yes and on.

import { describe, expect, it } from 'vitest';
import { loadRepairConfig } from '../../functions/commons/config.js';
import { parseDeployConfig } from '../../infra/config.js';

const repairEnv = (four: string | undefined) => ({
  SYNCGUARD_PAIRS: JSON.stringify({ p: { publisherSecretId: 'a', subscriberSecretId: 'b' } }),
  SYNCGUARD_CONTROL_SECRET_ID: 'c',
  ...(four === undefined ? {} : { SYNCGUARD_FOUR_EYES: four }),
});

describe('boolean settings', () => {
  it('reads true/false, 1/0, yes/no, on/off in any case, the same for the Lambdas and the deploy config', () => {
    for (const v of ['true', 'TRUE', 'True', '1', 'yes', 'Yes', 'on', 'ON', ' true ']) {
      expect(loadRepairConfig(repairEnv(v)).fourEyes, v).toBe(true);
    }
    for (const v of ['false', 'FALSE', '0', 'no', 'NO', 'off', 'Off']) expect(loadRepairConfig(repairEnv(v)).fourEyes, v).toBe(false);
    expect(loadRepairConfig(repairEnv(undefined)).fourEyes).toBe(false);
    expect(loadRepairConfig(repairEnv('')).fourEyes).toBe(false);
  });

  it('refuses anything else, naming the setting and what is accepted', () => {
    for (const v of ['maybe', 'y', 'enabled', '2', 'tru']) {
      expect(() => loadRepairConfig(repairEnv(v)), v).toThrow(
        `SYNCGUARD_FOUR_EYES must be true or false (also accepted: 1/0, yes/no, on/off, in any case), got ${JSON.stringify(v)}`,
      );
    }
  });

  it('reads the deploy config booleans the same way', async () => {
    const { readFileSync } = await import('node:fs');
    const base = JSON.parse(readFileSync('syncguard.config.example.json', 'utf8'));
    const withApproval = (fourEyes: unknown, xray: unknown = false) =>
      parseDeployConfig({ ...base, approval: { ...base.approval, fourEyes }, xray });
    expect(withApproval('yes').approval.fourEyes).toBe(true);
    expect(withApproval('OFF').approval.fourEyes).toBe(false);
    expect(withApproval(true, 'on').xray).toBe(true);
    expect(() => withApproval('maybe')).toThrow(/must be true or false \(also accepted: 1\/0, yes\/no, on\/off, in any case\)/);
  });
});
