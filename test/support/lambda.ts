// Lambda test helpers: a context object and a capture of what Powertools writes to stdout.

import type { Context } from 'aws-lambda';
import { vi } from 'vitest';

export function context(remainingMs = 30_000): Context {
  return {
    functionName: 'syncguard-drain',
    functionVersion: '$LATEST',
    invokedFunctionArn: 'arn:aws:lambda:eu-west-1:123456789012:function:syncguard-drain',
    memoryLimitInMB: '512',
    awsRequestId: 'req-1',
    logGroupName: '/aws/lambda/syncguard-drain',
    logStreamName: 'stream',
    callbackWaitsForEmptyEventLoop: false,
    getRemainingTimeInMillis: () => remainingMs,
    done: () => {},
    fail: () => {},
    succeed: () => {},
  };
}

/** Captures stdout lines (Powertools writes logs and EMF there). */
export function captureStdout(): { lines: () => string[]; restore: () => void } {
  const chunks: string[] = [];
  const spy = vi.spyOn(process.stdout, 'write').mockImplementation((chunk: string | Uint8Array) => {
    chunks.push(String(chunk));
    return true;
  });
  return {
    lines: () =>
      chunks
        .join('')
        .split('\n')
        .filter((l) => l.trim() !== ''),
    restore: () => spy.mockRestore(),
  };
}
