import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { PACKAGE_ROOT } from '../package-root.js';

/** berth's launcher of short-lived programs (Python 3). */
export const LAUNCHER_PATH = join(PACKAGE_ROOT ?? '.', 'libexec', 'berth-launcher');

/** A launcher idle this long ends; the next program starts a new one. */
const IDLE_MS = 30_000;
/** The end of the launcher's own stderr kept for the error of its exit. */
const STDERR_KEPT = 2000;
/** How much longer than a program's own timeout an answer may take before the launcher counts as stuck. */
const ANSWER_GRACE_MS = 10_000;

/**
 * The environment of a program berth runs: `env`, and the agent's PATH with the sbin directories
 * added (ip and iptables live there, and a service's PATH may lack them). Nothing else of the
 * agent's environment: the programs need none of it, it may hold the operator's secrets, and every
 * request to the launcher carries its program's whole environment.
 */
export function withSbinPath(env: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...env, PATH: `${process.env.PATH ?? ''}:/usr/local/sbin:/usr/sbin:/sbin` };
}

export interface LaunchRequest {
  /** A path, or a name looked up in the PATH of `env`. */
  file: string;
  args?: string[];
  /** The program's whole environment. */
  env: NodeJS.ProcessEnv;
  /** Written to the program's stdin, which is then closed. */
  input?: string;
  /** The program is killed (SIGKILL) after this long. */
  timeoutMs: number;
  /** stdout kept (the rest is counted, not kept); 1 MiB unless said. */
  maxOutputBytes?: number;
}

export interface LaunchResult {
  /** Exit code; null when a signal ended the program. */
  code: number | null;
  /** The signal that ended it (e.g. "SIGKILL"), or null. */
  signal: string | null;
  /** Killed because it ran longer than its timeout. */
  timedOut: boolean;
  stdout: string;
  /** Bytes it wrote to stdout, kept or not. */
  stdoutBytes: number;
  /** The last 4,000 bytes it wrote to stderr. */
  stderr: string;
}

interface Answer extends LaunchResult {
  id: number;
  error: string | null;
}

interface Waiting {
  resolve(result: LaunchResult): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout;
}

/**
 * Runs short-lived programs (CNI plugins, iptables) through libexec/berth-launcher, a
 * small Python process started on first use that starts them with posix_spawn and answers when
 * each ends. Node forks to start a program: that copies the agent's page tables, which grow with
 * its heap, and write-protects its pages, each write after that a page fault (7–9 ms of the agent's
 * CPU a program at 100–180 MiB, 4 ms at 44 MiB, on a 2-core VM), and holds the event loop until the
 * program has been exec'd. posix_spawn shares the launcher's memory until the exec: 0.2 ms. The
 * launcher also names network namespaces itself (`networkNamespace`), which spares a network's
 * set-up and teardown the runs of `ip netns`: a program costs the machine 5–8 ms of CPU here.
 *
 * Programs run side by side. A launcher that exits, or stops answering, fails the programs it was
 * running (they may have run) and is replaced by the next call; an idle one ends after 30 s.
 */
export class ProcessLauncher {
  private child: ChildProcessWithoutNullStreams | undefined;
  private readonly waiting = new Map<number, Waiting>();
  private nextId = 1;
  private received = '';
  private idleTimer: NodeJS.Timeout | undefined;

  constructor(private readonly launcherPath: string = LAUNCHER_PATH) {}

  /**
   * Runs a program to its end. Rejects when it could not be started (no such file, not
   * executable) or the launcher failed; a program that fails resolves, with its exit code.
   */
  run(request: LaunchRequest): Promise<LaunchResult> {
    const env = Object.fromEntries(Object.entries(request.env).filter((entry): entry is [string, string] => entry[1] !== undefined));
    return this.send(
      {
        file: request.file,
        args: request.args ?? [],
        env,
        input: request.input ?? '',
        timeoutMs: request.timeoutMs,
        maxOutput: request.maxOutputBytes ?? 1024 * 1024,
      },
      request.timeoutMs,
    );
  }

  /**
   * Names a network namespace under /run/netns, as `ip netns` does, without starting a program:
   * `add` makes a new one with its `lo` up (one already under the name is kept, its `lo` brought
   * up), `attach` names process `pid`'s, `delete` deletes the name (succeeding when there is none).
   * Rejects with what failed.
   */
  async networkNamespace(request: { op: 'add' | 'delete'; name: string } | { op: 'attach'; name: string; pid: number }, timeoutMs: number): Promise<void> {
    await this.send({ netns: request.op, name: request.name, ...(request.op === 'attach' ? { pid: request.pid } : {}) }, timeoutMs);
  }

  /** Sends a request; its answer is awaited for `timeoutMs` and a grace, after which the launcher counts as stuck. */
  private send(body: Record<string, unknown>, timeoutMs: number): Promise<LaunchResult> {
    const child = this.launcher();
    const id = this.nextId++;
    clearTimeout(this.idleTimer);
    return new Promise<LaunchResult>((resolve, reject) => {
      const timer = setTimeout(() => this.fail(child, `did not answer within ${timeoutMs + ANSWER_GRACE_MS} ms`), timeoutMs + ANSWER_GRACE_MS);
      this.waiting.set(id, { resolve, reject, timer });
      child.stdin.write(`${JSON.stringify({ id, ...body })}\n`);
    });
  }

  /**
   * Runs a program that is expected to end with one of the `accepted` exit codes (0 unless said),
   * and returns that code; otherwise rejects with "`what` failed: " and its stderr, or how it ended.
   */
  async runChecked(request: LaunchRequest, what: string, accepted: number[] = [0]): Promise<number> {
    const failed = (why: string) => new Error(`${what} failed: ${why}`);
    const run = await this.run(request).catch((error: Error) => {
      throw failed(error.message);
    });
    if (run.timedOut) throw failed(`it did not finish within ${request.timeoutMs} ms and was killed`);
    if (run.code === null || !accepted.includes(run.code)) throw failed(run.stderr.trim() || (run.signal ? `killed by ${run.signal}` : `exit code ${run.code}`));
    return run.code;
  }

  private launcher(): ChildProcessWithoutNullStreams {
    if (this.child) return this.child;
    const child = spawn('python3', [this.launcherPath], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child = child;
    this.received = '';
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => this.receive(child, chunk));
    // The end of what it wrote to stderr (a Python traceback, say) goes into the error of its exit.
    let stderr = '';
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => (stderr = (stderr + chunk).slice(-STDERR_KEPT)));
    child.stdin.on('error', () => undefined); // its exit says what happened
    child.on('error', (error) => this.fail(child, `cannot be started: ${error.message}`));
    child.on('exit', (code, signal) => this.fail(child, `exited (${signal ?? `code ${code}`})${stderr.trim() ? `: ${stderr.trim()}` : ''}`));
    // Neither the launcher nor its pipes keep the agent's process alive; the requests' timers do.
    child.unref();
    for (const stream of [child.stdin, child.stdout, child.stderr] as unknown as { unref?: () => void }[]) stream.unref?.();
    return child;
  }

  private receive(child: ChildProcessWithoutNullStreams, chunk: string): void {
    if (child !== this.child) return;
    this.received += chunk;
    let newline: number;
    while ((newline = this.received.indexOf('\n')) >= 0) {
      const line = this.received.slice(0, newline);
      this.received = this.received.slice(newline + 1);
      let answer: Answer;
      try {
        answer = JSON.parse(line) as Answer;
      } catch {
        this.fail(child, `answered something that is not JSON: ${line.slice(0, 200)}`);
        return;
      }
      const waiting = this.waiting.get(answer.id);
      if (!waiting) continue;
      this.waiting.delete(answer.id);
      clearTimeout(waiting.timer);
      if (answer.error !== null) waiting.reject(new Error(answer.error));
      else waiting.resolve({ code: answer.code, signal: answer.signal, timedOut: answer.timedOut, stdout: answer.stdout, stdoutBytes: answer.stdoutBytes, stderr: answer.stderr });
    }
    if (this.waiting.size === 0) this.idleTimer = setTimeout(() => this.close(), IDLE_MS).unref();
  }

  /** Ends a launcher that failed: what it was running is failed, and the next call starts another. */
  private fail(child: ChildProcessWithoutNullStreams, why: string): void {
    if (child !== this.child) return;
    this.child = undefined;
    child.kill('SIGKILL');
    const error = new Error(`berth's process launcher (${this.launcherPath}) ${why}`);
    for (const [id, waiting] of this.waiting) {
      clearTimeout(waiting.timer);
      this.waiting.delete(id);
      waiting.reject(error);
    }
  }

  /** Lets the launcher end once it has answered everything; the next call starts another. */
  close(): void {
    clearTimeout(this.idleTimer);
    const child = this.child;
    if (!child || this.waiting.size > 0) return;
    this.child = undefined;
    child.stdin.end();
  }
}
