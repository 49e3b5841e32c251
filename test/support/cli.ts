import { run } from '../../cli/main.js';

/** Runs the CLI in-process with captured output; returns its exit code and lines. */
export async function cli(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(
    ['node', 'syncguard', ...args],
    (l) => out.push(l),
    (l) => err.push(l),
  );
  return { code, out, err };
}
