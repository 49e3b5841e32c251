// `syncguard approve`: record a decision on a stored plan, against its checksum. The approver is
// the control-plane database login, recorded by the control plane itself; four-eyes is the
// control plane's policy (approval_policy), which --four-eyes can only make stricter.

import type { Command } from 'commander';
import { decideRemotely } from '../functions/commons/remote-approval.js';
import { parseBoolean } from '../functions/core/booleans.js';
import { InputError } from '../functions/core/errors.js';
import type { Client } from '../functions/db/connect.js';
import { endpointOf, refuseNodeAsControl } from '../functions/db/control.js';
import { checkDsn } from '../functions/db/dsn.js';
import { decidePlan } from '../functions/flows/plans.js';
import { type Out, withClients } from './clients.js';
import { positiveInt } from './options.js';

export function approveCommand(program: Command, out: Out): void {
  program
    .command('approve')
    .description('approve (or --reject) a stored repair plan')
    .requiredOption('--plan <id>', 'the plan id', positiveInt('--plan'))
    .option('--control-dsn <url>', 'the control plane (or SYNCGUARD_CONTROL_DSN)')
    .option(
      '--function <name>',
      "decide through a deployment's approval function (name or ARN) instead of the control plane; your AWS identity is the approver",
    )
    .option(
      '--checksum <sha256>',
      'the checksum of the plan you reviewed (shown by syncguard plan and in the notification): the decision is refused if the plan is not that one',
    )
    .option('--reject', 'reject the plan: it can never be applied')
    .option('--comment <text>', 'a comment recorded with the decision')
    .option(
      '--four-eyes',
      "refuse an approval by the role that made the plan (or SYNCGUARD_FOUR_EYES=true); the control plane's policy may require it anyway",
    )
    .action(
      async (o: {
        plan: number;
        controlDsn?: string;
        function?: string;
        checksum?: string;
        reject?: boolean;
        comment?: string;
        fourEyes?: boolean;
      }) => {
        if (o.function !== undefined) {
          if (o.controlDsn !== undefined)
            throw new InputError(
              "--function and --control-dsn are two ways to decide (through the deployment's approval function, or directly in the control-plane database); give one of them",
            );
          // what is signed is the plan's checksum: without the one the approver read, the signature
          // would approve whatever the plan is when the function is asked
          if (!o.reject && o.checksum === undefined)
            throw new InputError(
              `approving through --function needs --checksum <the checksum of the plan you reviewed> (syncguard plan prints it, and so does the notification); nothing was sent`,
            );
          const r = await decideRemotely({
            functionName: o.function,
            planId: o.plan,
            decision: o.reject ? 'rejected' : 'approved',
            ...(o.comment !== undefined ? { comment: o.comment } : {}),
            ...(o.checksum !== undefined ? { checksum: o.checksum } : {}),
          }).catch((err: unknown) => {
            if (err instanceof Error && /Region is missing/i.test(err.message))
              throw new InputError(
                `no AWS region for the approval function ${o.function}: set AWS_REGION (for example AWS_REGION=eu-west-1), or a region in your AWS profile, to the deployment's region, and run approve again`,
                { cause: err },
              );
            throw err;
          });
          out(`plan ${r.planId} ${r.status} by ${r.approver} (through ${o.function}; checksum ${r.checksum})`);
          return;
        }
        const dsn = o.controlDsn ?? process.env.SYNCGUARD_CONTROL_DSN;
        if (dsn === undefined) throw new InputError('no control plane: pass --control-dsn or set SYNCGUARD_CONTROL_DSN');
        await withClients([[checkDsn(dsn, 'control-plane'), 'control-plane database']], async ([c]) => {
          await refuseNodeAsControl(c as Client, endpointOf(dsn));
          const r = await decidePlan(c as Client, {
            planId: o.plan,
            decision: o.reject ? 'rejected' : 'approved',
            ...(o.comment !== undefined ? { comment: o.comment } : {}),
            ...(o.checksum !== undefined ? { checksum: o.checksum } : {}),
            fourEyes: o.fourEyes === true || parseBoolean('SYNCGUARD_FOUR_EYES', process.env.SYNCGUARD_FOUR_EYES, false),
          });
          out(`plan ${r.planId} ${r.decision} by ${r.by} (checksum ${r.checksum})`);
        });
      },
    );
}
