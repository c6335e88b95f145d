import { spawn } from 'node:child_process';

/** How a program run by runBounded ended, and what it wrote on stdout. */
export interface BoundedRunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
}

/**
 * Runs a program without a shell, gives it `input` on stdin and reads at most `maxBytes` of its
 * stdout; its stderr is never read (a secret plugin or credential helper could print a secret
 * there). Fails, naming the program as `what`, when it cannot be run, takes longer than
 * `timeoutMs` (it is killed) or writes more than `maxBytes`.
 */
export function runBounded(command: string, args: string[], input: string, limits: { what: string; timeoutMs: number; maxBytes: number }): Promise<BoundedRunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'ignore'] });
    const chunks: Buffer[] = [];
    let size = 0;
    let failure: string | undefined;
    const fail = (reason: string) => {
      failure ??= reason;
      child.kill('SIGKILL');
    };
    const timer = setTimeout(() => fail(`${limits.what} did not answer within ${limits.timeoutMs} ms`), limits.timeoutMs);
    child.stdout.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > limits.maxBytes) fail(`${limits.what} answered more than ${limits.maxBytes} bytes`);
      else chunks.push(chunk);
    });
    child.stdin.on('error', () => undefined);
    child.on('error', (error: NodeJS.ErrnoException) => fail(`${limits.what} cannot be run (${error.code ?? 'error'})`));
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (failure) reject(new Error(failure));
      else resolve({ code, signal, stdout: Buffer.concat(chunks).toString('utf8') });
    });
    child.stdin.end(input);
  });
}
