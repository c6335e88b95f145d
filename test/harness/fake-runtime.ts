import { PassThrough } from 'node:stream';
import type { ContainerRuntime } from '../../src/runtime/container-runtime.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import type {
  ContainerAttachment,
  ContainerInfo,
  ContainerSpec,
  ContainerStatsSample,
  ExecResult,
  ImageInfo,
  LogLine,
  PullOptions,
  RegistryAuth,
  RuntimeEvent,
  RuntimeVersion,
  SessionProcess,
  SessionProcessOptions,
  TerminalSize,
  VolumeInfo,
  VolumeSpec,
} from '../../src/runtime/types.js';

/**
 * An in-memory ContainerRuntime for unit tests of engine rules. Containers do nothing by
 * themselves: a test ends one with `exit(name, code)`. Every call is recorded in `calls`.
 */
export class FakeRuntime implements ContainerRuntime {
  readonly hasBridgeNetwork = true;
  joinsNetworkNamespaces = false;
  opensStdinWithoutTerminal = true;
  logConfigurationProblem(): undefined {
    return undefined;
  }
  logMessagesDropped(): Promise<number> {
    return Promise.resolve(0);
  }
  readonly name = 'docker' as const;
  readonly calls: string[] = [];
  readonly containers = new Map<string, ContainerInfo & { spec: ContainerSpec; startPrepared?: boolean }>();
  /** Images the registry has; pulls of others fail with "not-found". */
  readonly registry = new Set<string>();
  readonly local = new Set<string>();
  /** Images the registry serves only to this password. */
  readonly privateImages = new Map<string, string>();
  /** The registry cannot be reached: pulls and access checks fail with "unavailable". */
  registryDown = false;
  /** Pulls of these images wait until `releasePull` is called. */
  readonly heldPulls = new Map<string, () => void>();
  /** Containers that exit at once with this code when started. */
  readonly exitOnStart = new Map<string, number>();
  /** Starts of these containers fail with this message (the runtime answering otherwise). */
  readonly failingStarts = new Map<string, string>();
  private listeners: ((event: RuntimeEvent) => void)[] = [];
  private nextId = 1;

  private emit(event: RuntimeEvent): void {
    for (const listener of this.listeners) listener(event);
  }

  private byName(name: string) {
    for (const c of this.containers.values()) if (c.name === name || c.id === name) return c;
    return undefined;
  }

  async ping(): Promise<RuntimeVersion> {
    return { name: 'docker', version: 'fake', apiVersion: '1' };
  }

  /** Called when a pull begins. */
  onPull: ((reference: string) => void) | undefined;

  async pullImage(reference: string, options: PullOptions = {}): Promise<ImageInfo> {
    this.calls.push(`pull ${reference}`);
    this.onPull?.(reference);
    if (this.heldPulls.has(reference)) {
      await new Promise<void>((resolve, reject) => {
        this.heldPulls.set(reference, resolve);
        options.signal?.addEventListener('abort', () => reject(new RuntimeError('internal', 'pull', 'aborted')), { once: true });
      });
    }
    this.askRegistry(reference, options.auth, 'pull');
    this.local.add(reference);
    return { id: `sha256:${reference}`, references: [reference], sizeBytes: 1 };
  }

  private askRegistry(reference: string, auth: RegistryAuth | undefined, operation: string): void {
    if (this.registryDown) throw new RuntimeError('unavailable', `${operation} image "${reference}"`, 'connection refused');
    const password = this.privateImages.get(reference);
    if (password !== undefined && auth?.password !== password) throw new RuntimeError('unauthorized', `${operation} image "${reference}"`, 'authentication required');
    if (!this.registry.has(reference)) throw new RuntimeError('not-found', `${operation} image "${reference}"`, 'manifest unknown');
  }

  async checkImageAccess(reference: string, auth: RegistryAuth | undefined): Promise<void> {
    this.calls.push(`check ${reference}`);
    this.askRegistry(reference, auth, 'check access to');
  }

  releasePull(reference: string): void {
    const release = this.heldPulls.get(reference);
    this.heldPulls.delete(reference);
    release?.();
  }

  async inspectImage(reference: string): Promise<ImageInfo> {
    if (!this.local.has(reference)) throw new RuntimeError('not-found', 'inspect image', 'no such image');
    return { id: `sha256:${reference}`, references: [reference], sizeBytes: 1 };
  }

  /** Called when an image is removed. */
  onRemoveImage: ((reference: string) => void) | undefined;

  async removeImage(reference: string): Promise<void> {
    this.calls.push(`remove image ${reference}`);
    this.local.delete(reference);
    this.onRemoveImage?.(reference);
  }

  /** Containers (by definition name) whose create succeeds but whose answer never comes back. */
  readonly lostCreateAnswers = new Set<string>();

  /** Volumes by name. */
  readonly volumes = new Map<string, VolumeSpec>();

  async createVolume(spec: VolumeSpec): Promise<void> {
    this.calls.push(`create volume ${spec.name}`);
    if (!this.volumes.has(spec.name)) this.volumes.set(spec.name, spec);
  }

  async inspectVolume(name: string): Promise<VolumeInfo> {
    const volume = this.volumes.get(name);
    if (!volume) throw new RuntimeError('not-found', 'inspect volume', name);
    return { name, driver: volume.driver, labels: volume.labels };
  }

  async removeVolume(name: string): Promise<void> {
    this.calls.push(`remove volume ${name}`);
    this.volumes.delete(name);
  }

  async listVolumes(labels: Record<string, string>): Promise<VolumeInfo[]> {
    return [...this.volumes.values()].filter((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value)).map((v) => ({ name: v.name, driver: v.driver, labels: v.labels }));
  }

  async createContainer(spec: ContainerSpec): Promise<string> {
    const name = spec.labels['berth.container-name'] ?? '';
    this.calls.push(`create ${name}`);
    if (this.byName(spec.name)) throw new RuntimeError('already-exists', 'create', 'name in use');
    const id = `c${this.nextId++}`;
    this.containers.set(id, { id, name: spec.name, image: spec.image, labels: spec.labels, state: 'created', oomKilled: false, portBindings: [], spec });
    if (this.lostCreateAnswers.has(name)) await new Promise(() => undefined);
    return id;
  }

  /** Adds a container that was not created through this runtime's caller (e.g. by an earlier agent). */
  addContainer(name: string, labels: Record<string, string>, state: 'created' | 'running' = 'running'): string {
    const id = `c${this.nextId++}`;
    const spec = { name, image: 'registry.test/app:1', env: {}, labels, cpuShares: 0, memoryBytes: 0, memoryReservationBytes: 0, network: 'none', ports: [] } satisfies ContainerSpec;
    this.containers.set(id, { id, name, image: spec.image, labels, state, oomKilled: false, portBindings: [], spec, startedAt: state === 'running' ? new Date() : undefined });
    return id;
  }

  async prepareStart(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (!c) throw new RuntimeError('not-found', 'prepare start', id);
    this.calls.push(`prepare ${c.labels['berth.container-name']}`);
    c.startPrepared = true;
  }

  async startContainer(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (!c) throw new RuntimeError('not-found', 'start', id);
    this.calls.push(`start ${c.labels['berth.container-name']}`);
    const failure = this.failingStarts.get(c.labels['berth.container-name'] ?? '');
    if (failure !== undefined) throw new RuntimeError('internal', `start container ${id}`, failure);
    c.state = 'running';
    c.startedAt = new Date();
    c.pid = 10_000 + Number(id.slice(1));
    this.emit({ type: 'start', containerId: id, time: new Date() });
    const code = this.exitOnStart.get(c.labels['berth.container-name'] ?? '');
    if (code !== undefined) this.exitContainer(c, code);
  }

  /** Makes a running container exit without any event, as if the event stream had missed it. */
  exitSilently(containerName: string, code: number): void {
    const c = [...this.containers.values()].find((x) => x.labels['berth.container-name'] === containerName && x.state === 'running');
    if (!c) throw new Error(`no running container "${containerName}"`);
    Object.assign(c, { state: 'exited', exitCode: code, finishedAt: new Date() });
  }

  /** Makes a running container exit with `code`, as if its process ended. */
  exit(containerName: string, code: number): void {
    const c = [...this.containers.values()].find((x) => x.labels['berth.container-name'] === containerName && x.state === 'running');
    if (!c) throw new Error(`no running container "${containerName}"`);
    this.exitContainer(c, code);
  }

  /** Kills a running container for its memory: reports the kill before its exit, or after it as Docker can. */
  oomKill(containerName: string, order: 'oom first' | 'exit first'): void {
    const c = [...this.containers.values()].find((x) => x.labels['berth.container-name'] === containerName && x.state === 'running');
    if (!c) throw new Error(`no running container "${containerName}"`);
    const reportKill = () => {
      c.oomKilled = true;
      this.emit({ type: 'oom', containerId: c.id, time: new Date() });
    };
    if (order === 'oom first') reportKill();
    this.exitContainer(c, 137);
    if (order === 'exit first') reportKill();
  }

  private exitContainer(c: ContainerInfo, code: number): void {
    c.state = 'exited';
    c.pid = undefined;
    c.exitCode = code;
    c.finishedAt = new Date();
    this.emit({ type: 'exit', containerId: c.id, exitCode: code, time: new Date() });
  }

  async stopContainer(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (!c) throw new RuntimeError('not-found', 'stop', id);
    this.calls.push(`stop ${c.labels['berth.container-name']}`);
    if (c.state === 'running') this.exitContainer(c, 143);
    else if (c.startPrepared) {
      // As containerd: deleting the created, never started process reports its exit.
      c.startPrepared = false;
      this.emit({ type: 'exit', containerId: id, exitCode: 137, time: new Date() });
    }
  }

  async removeContainer(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (c) this.calls.push(`remove ${c.labels['berth.container-name']}`);
    this.containers.delete(id);
  }

  async inspectContainer(idOrName: string): Promise<ContainerInfo> {
    const c = this.byName(idOrName);
    if (!c) throw new RuntimeError('not-found', 'inspect', idOrName);
    return { ...c };
  }

  async listContainers(labels: Record<string, string>): Promise<ContainerInfo[]> {
    return [...this.containers.values()].filter((c) => Object.entries(labels).every(([k, v]) => c.labels[k] === v));
  }

  /** What exec answers; a test replaces it to drive health checks. */
  execResult: (id: string, command: string[]) => ExecResult | Promise<ExecResult> = () => ({ exitCode: 0, output: Buffer.alloc(0) });

  async exec(id: string, command: string[]): Promise<ExecResult> {
    this.calls.push(`exec ${this.containers.get(id)?.labels['berth.container-name']}`);
    return this.execResult(id, command);
  }

  /** The sessions opened, each with what it was given. */
  readonly sessions: { command: string[]; options: SessionProcessOptions; resizes: TerminalSize[]; signals: string[]; closed: boolean }[] = [];

  /**
   * An interactive exec whose process echoes its input to its output and exits 0 when its input
   * ends (or 137 when the session is closed first).
   */
  async openSession(id: string, command: string[], options: SessionProcessOptions): Promise<SessionProcess> {
    this.calls.push(`session ${this.containers.get(id)?.labels['berth.container-name']}`);
    const record = { command, options, resizes: [] as TerminalSize[], signals: [] as string[], closed: false };
    this.sessions.push(record);
    const output = new PassThrough();
    // Without stdin, the process waits until the session is closed.
    const input = options.stdin || options.tty ? new PassThrough() : undefined;
    input?.pipe(output);
    const exited = new Promise<number>((resolve) => {
      output.once('end', () => resolve(record.closed ? 137 : 0));
    });
    return {
      output,
      input,
      exited,
      resize: async (size) => void record.resizes.push(size),
      signal: async (signal) => void record.signals.push(signal),
      close: async () => {
        if (record.closed) return;
        record.closed = true;
        if (input) input.end();
        else output.end();
      },
    };
  }

  async endLeftoverExecs(): Promise<number> {
    return 0;
  }

  /** An attachment that reads nothing and whose input goes nowhere; it ends when closed. */
  async attach(id: string, options: { stdin: boolean }): Promise<ContainerAttachment> {
    this.calls.push(`attach ${this.containers.get(id)?.labels['berth.container-name']}`);
    const output = new PassThrough();
    return {
      output,
      input: options.stdin ? new PassThrough().resume() : undefined,
      exited: new Promise<number>(() => undefined),
      resize: async () => undefined,
      close: async () => void output.end(),
    };
  }

  async logs(): Promise<AsyncIterable<LogLine>> {
    throw new RuntimeError('invalid', 'logs', 'the fake runtime keeps no output');
  }

  async stats(): Promise<ContainerStatsSample> {
    throw new RuntimeError('invalid', 'stats', 'the fake runtime has no resource use');
  }

  async events(_labels: Record<string, string>, signal: AbortSignal): Promise<AsyncIterable<RuntimeEvent>> {
    const queue: RuntimeEvent[] = [];
    let wake: (() => void) | undefined;
    const listener = (event: RuntimeEvent) => {
      queue.push(event);
      wake?.();
    };
    this.listeners.push(listener);
    signal.addEventListener('abort', () => {
      this.listeners = this.listeners.filter((l) => l !== listener);
      wake?.();
    });
    return (async function* () {
      while (!signal.aborted) {
        const event = queue.shift();
        if (event) {
          yield event;
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    })();
  }
}
