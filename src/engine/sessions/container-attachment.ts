import type { ContainerAttachment, TerminalSize } from '../../runtime/types.js';
import { SessionLifetime } from './session-lifetime.js';
import { mergeOutputs, writeWithBackpressure, type SessionOutput } from './session-streams.js';

/**
 * A client attached to a running container's own streams, as the server serves it: the output
 * from the moment of attaching, the input for the one client that writes, and the exit code.
 */
export class AttachedClient {
  private readonly lifetime: SessionLifetime;

  constructor(
    private readonly attachment: ContainerAttachment,
    idleTimeoutMs: number,
    /** Gives back the slot (and the container's input, for the writer). */
    release: () => void,
  ) {
    this.lifetime = new SessionLifetime(idleTimeoutMs, release, () => void this.close());
  }

  get writes(): boolean {
    return this.attachment.input !== undefined;
  }

  /** The container's output as it comes; ends when its process exits or the client detaches. */
  async *output(): AsyncGenerator<SessionOutput> {
    const sources = [{ stream: 'stdout' as const, from: this.attachment.output }, ...(this.attachment.errors ? [{ stream: 'stderr' as const, from: this.attachment.errors }] : [])];
    for await (const piece of mergeOutputs(sources)) {
      this.lifetime.touch();
      yield piece;
    }
  }

  async write(data: Buffer): Promise<void> {
    this.lifetime.touch();
    if (this.attachment.input) await writeWithBackpressure(this.attachment.input, data);
  }

  resize(size: TerminalSize): Promise<void> {
    this.lifetime.touch();
    return this.attachment.resize(size);
  }

  /** The container's exit code, once its process has exited. */
  get exitCode(): Promise<number> {
    return this.attachment.exited;
  }

  get idleExpired(): boolean {
    return this.lifetime.idleExpired;
  }

  /** Detaches; the container runs on. */
  async close(): Promise<void> {
    try {
      await this.attachment.close();
    } finally {
      this.lifetime.end();
    }
  }
}
