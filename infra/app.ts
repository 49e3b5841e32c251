// The CDK app: `npx cdk synth` / `npx cdk deploy` (cdk.json runs this with tsx). The config file
// comes from `-c config=path`, else SYNCGUARD_DEPLOY_CONFIG, else syncguard.config.json.

import { App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { loadDeployConfig } from './config.js';
import { SyncGuardStack } from './stack.js';

const app = new App();
const path = (app.node.tryGetContext('config') as string | undefined) ?? process.env.SYNCGUARD_DEPLOY_CONFIG ?? 'syncguard.config.json';
const config = loadDeployConfig(path);
const account = process.env.CDK_DEFAULT_ACCOUNT;
const region = process.env.CDK_DEFAULT_REGION;
new SyncGuardStack(app, `${config.name}-stack`, config, {
  ...(account !== undefined && region !== undefined ? { env: { account, region } } : {}),
});
Validations.of(app).addPlugins(new AwsSolutionsChecks(app, { verbose: true }));
