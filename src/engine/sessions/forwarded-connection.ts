import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { PACKAGE_ROOT } from '../../package-root.js';
import { FailedPreconditionError } from '../errors.js';
import { SessionLifetime } from './session-lifetime.js';
import { mergeOutputs, writeWithBackpressure } from './session-streams.js';

/** berth's relay (a Perl script, like the log writer): one TCP connection between its stdin/stdout and a port. */
export const PORT_RELAY_PATH = join(PACKAGE_ROOT ?? '.', 'libexec', 'berth-port-relay');
/** How long the relay may take to connect (its own connect timeout is 10 s). */
const CONNECT_TIMEOUT_MS = 15_000;
/** What of the relay's stderr is kept for an error message. */
const MAX_REASON = 1024;

/**
 * One TCP connection to a port at 127.0.0.1 inside a network namespace: berth's relay runs in the
 * namespace (`nsenter --net`), so nothing is published and every network mode is reached alike.
 * The bytes go through the relay's stdin and stdout, with the pipes' backpressure.
 */
export class ForwardedConnection {
  private readonly lifetime: SessionLifetime;
  private writeClosed = false;

  private constructor(
    private readonly relay: ChildProcessWithoutNullStreams,
    idleTimeoutMs: number,
    release: () => void,
  ) {
    this.lifetime = new SessionLifetime(idleTimeoutMs, release, () => this.close());
    relay.stdin.on('error', () => undefined);
    relay.once('close', () => this.lifetime.end());
  }

  /**
   * Connects to `port` in the network namespace at `namespacePath`; fails with
   * FailedPreconditionError saying why when nothing answers there.
   */
  static async open(namespacePath: string, port: number, idleTimeoutMs: number, release: () => void, relayPath = PORT_RELAY_PATH): Promise<ForwardedConnection> {
    const relay = spawn('nsenter', [`--net=${namespacePath}`, '--', 'perl', relayPath, String(port)], { stdio: 'pipe' });
    const status = await new Promise<{ connected: true } | { connected: false; reason: string }>((resolve) => {
      let reason = '';
      const lines = createInterface({ input: relay.stderr });
      const timer = setTimeout(() => finish({ connected: false, reason: `no connection within ${CONNECT_TIMEOUT_MS / 1000} s` }), CONNECT_TIMEOUT_MS);
      const finish = (result: { connected: true } | { connected: false; reason: string }) => {
        clearTimeout(timer);
        lines.removeAllListeners('line');
        relay.removeListener('close', onClose);
        relay.removeListener('error', onError);
        resolve(result);
      };
      const onClose = () => finish({ connected: false, reason: reason.trim() || 'the relay ended without connecting' });
      const onError = (error: Error) => finish({ connected: false, reason: `cannot start the relay: ${error.message}` });
      lines.on('line', (line) => {
        if (line === 'connected') finish({ connected: true });
        else if (reason.length < MAX_REASON) reason += `${line.replace(/^error: /, '').slice(0, MAX_REASON)}\n`;
      });
      relay.once('close', onClose);
      relay.once('error', onError);
    });
    if (!status.connected) {
      relay.kill('SIGKILL');
      release();
      throw new FailedPreconditionError(`cannot forward to port ${port}: ${status.reason}`);
    }
    // Its stderr has said all it says; whatever else comes is not kept.
    relay.stderr.resume();
    return new ForwardedConnection(relay, idleTimeoutMs, release);
  }

  /** What the container's side sends, as it comes; ends when it has closed its side. */
  async *received(): AsyncGenerator<Buffer> {
    for await (const piece of mergeOutputs([{ stream: 'stdout', from: this.relay.stdout }])) {
      this.lifetime.touch();
      yield piece.data;
    }
  }

  /** Sends bytes to the container's side; resolves when they are accepted. */
  async send(data: Buffer): Promise<void> {
    this.lifetime.touch();
    if (this.writeClosed || this.relay.exitCode !== null) return;
    await writeWithBackpressure(this.relay.stdin, data);
  }

  /** Half-closes the connection towards the container's side. */
  closeWrite(): void {
    if (this.writeClosed) return;
    this.writeClosed = true;
    this.relay.stdin.end();
  }

  /** Resolves when the connection has closed both ways (the relay has ended). */
  get finished(): Promise<void> {
    if (this.relay.exitCode !== null || this.relay.signalCode !== null) return Promise.resolve();
    return new Promise((resolve) => this.relay.once('close', () => resolve()));
  }

  get idleExpired(): boolean {
    return this.lifetime.idleExpired;
  }

  /** Ends the connection at once (both ways). */
  close(): void {
    if (this.relay.exitCode === null && this.relay.signalCode === null) this.relay.kill('SIGKILL');
    this.lifetime.end();
  }
}
