// Starts the PostgreSQL 18 publisher and subscriber servers shared by the integration test files
// (each file makes its own databases on them) and stops and removes them after the run, whether
// the tests passed or not.

import type { TestProject } from 'vitest/node';
import { type ClusterInfo, startCluster, sweepStaleDataDirs } from '../../dev/cluster.js';

declare module 'vitest' {
  export interface ProvidedContext {
    publisherCluster: ClusterInfo;
    subscriberCluster: ClusterInfo;
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  sweepStaleDataDirs();
  const publisher = await startCluster('publisher', 18);
  const subscriber = await startCluster('subscriber', 18).catch(async (err) => {
    await publisher.stop();
    throw err;
  });
  const info = (c: ClusterInfo): ClusterInfo => ({ name: c.name, host: c.host, port: c.port, majorVersion: c.majorVersion });
  project.provide('publisherCluster', info(publisher));
  project.provide('subscriberCluster', info(subscriber));
  return async () => {
    await Promise.all([publisher.stop(), subscriber.stop()]);
  };
}
