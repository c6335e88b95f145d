import type { SessionProcess, TerminalSize } from '../../runtime/types.js';
import { SessionLifetime } from './session-lifetime.js';
import { mergeOutputs, writeWithBackpressure, type SessionOutput } from './session-streams.js';

/**
 * A process started in a container for a client who holds its standard streams (an interactive
 * exec), as the server serves it: its output as it comes, its input with backpressure, terminal
 * resizes and signals, and its exit code.
 */
export class ExecSession {
  private readonly lifetime: SessionLifetime;
  private inputClosed = false;

  constructor(
    private readonly process: SessionProcess,
    idleTimeoutMs: number,
    release: () => void,
  ) {
    this.lifetime = new SessionLifetime(idleTimeoutMs, release, () => void this.close());
    void process.exited.then(
      () => undefined,
      () => undefined,
    );
  }

  /** Whether the process reads what `write` gives it. */
  get acceptsInput(): boolean {
    return this.process.input !== undefined;
  }

  /** stdout and stderr as they come (only stdout with a terminal); ends after the process has exited and its output is read. */
  async *output(): AsyncGenerator<SessionOutput> {
    const sources = [{ stream: 'stdout' as const, from: this.process.output }, ...(this.process.errors ? [{ stream: 'stderr' as const, from: this.process.errors }] : [])];
    for await (const piece of mergeOutputs(sources)) {
      this.lifetime.touch();
      yield piece;
    }
  }

  /** Gives bytes to the process's standard input; resolves when they are accepted. */
  async write(data: Buffer): Promise<void> {
    this.lifetime.touch();
    if (!this.process.input || this.inputClosed) return;
    await writeWithBackpressure(this.process.input, data);
  }

  /** The process reads end-of-file once what was written is read. */
  closeInput(): void {
    if (this.inputClosed) return;
    this.inputClosed = true;
    this.process.input?.end();
  }

  resize(size: TerminalSize): Promise<void> {
    this.lifetime.touch();
    return this.process.resize(size);
  }

  signal(signal: NodeJS.Signals): Promise<void> {
    this.lifetime.touch();
    return this.process.signal(signal);
  }

  /** The exit code, once the process has exited. */
  get exitCode(): Promise<number> {
    return this.process.exited;
  }

  /** Whether the session ended because nothing passed either way for the idle timeout. */
  get idleExpired(): boolean {
    return this.lifetime.idleExpired;
  }

  /** Ends the session: a process still running is killed with what it started. */
  async close(): Promise<void> {
    try {
      await this.process.close();
    } finally {
      this.lifetime.end();
    }
  }
}
