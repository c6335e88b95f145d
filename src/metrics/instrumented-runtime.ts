import type { ContainerRuntime } from '../runtime/container-runtime.js';
import { RuntimeError } from '../runtime/errors.js';
import type { ContainerLogConfiguration, ContainerSpec, ExecOptions, LogOptions, PullOptions, RegistryAuth, RuntimeEvent, VolumeSpec } from '../runtime/types.js';

/** What an instrumented runtime reports: each call's operation, duration and failure kind. */
export interface RuntimeCallObserver {
  call(operation: string, seconds: number, errorKind?: string): void;
  /** A pull that ended: its duration, the bytes it downloaded (as its progress said), whether it worked. */
  pull(seconds: number, bytes: number, ok: boolean): void;
}

/**
 * A ContainerRuntime that times every call of the one it wraps and tells an observer. It changes
 * nothing else: same results, same errors. The engine does not know it is there.
 */
export class InstrumentedRuntime implements ContainerRuntime {
  constructor(
    private readonly inner: ContainerRuntime,
    private readonly observer: RuntimeCallObserver,
  ) {}

  get name() {
    return this.inner.name;
  }

  get hasBridgeNetwork() {
    return this.inner.hasBridgeNetwork;
  }
  get joinsNetworkNamespaces() {
    return this.inner.joinsNetworkNamespaces;
  }

  get opensStdinWithoutTerminal() {
    return this.inner.opensStdinWithoutTerminal;
  }

  logConfigurationProblem(config: ContainerLogConfiguration) {
    return this.inner.logConfigurationProblem(config);
  }

  logMessagesDropped(): Promise<number> {
    return this.inner.logMessagesDropped();
  }

  private async timed<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    const started = performance.now();
    try {
      const result = await fn();
      this.observer.call(operation, (performance.now() - started) / 1000);
      return result;
    } catch (error) {
      this.observer.call(operation, (performance.now() - started) / 1000, error instanceof RuntimeError ? error.kind : 'internal');
      throw error;
    }
  }

  ping() {
    return this.timed('ping', () => this.inner.ping());
  }

  async pullImage(reference: string, options: PullOptions = {}) {
    let bytes = 0;
    const started = performance.now();
    const onProgress: PullOptions['onProgress'] = (progress) => {
      bytes = progress.bytesDone;
      options.onProgress?.(progress);
    };
    try {
      const image = await this.timed('pull_image', () => this.inner.pullImage(reference, { ...options, onProgress }));
      this.observer.pull((performance.now() - started) / 1000, bytes, true);
      return image;
    } catch (error) {
      this.observer.pull((performance.now() - started) / 1000, bytes, false);
      throw error;
    }
  }

  inspectImage(reference: string) {
    return this.timed('inspect_image', () => this.inner.inspectImage(reference));
  }

  checkImageAccess(reference: string, auth: RegistryAuth | undefined, timeoutMs?: number) {
    return this.timed('check_image_access', () => this.inner.checkImageAccess(reference, auth, timeoutMs));
  }

  removeImage(reference: string) {
    return this.timed('remove_image', () => this.inner.removeImage(reference));
  }

  createVolume(spec: VolumeSpec) {
    return this.timed('create_volume', () => this.inner.createVolume(spec));
  }

  inspectVolume(name: string) {
    return this.timed('inspect_volume', () => this.inner.inspectVolume(name));
  }

  removeVolume(name: string) {
    return this.timed('remove_volume', () => this.inner.removeVolume(name));
  }

  listVolumes(labels: Record<string, string>) {
    return this.timed('list_volumes', () => this.inner.listVolumes(labels));
  }

  createContainer(spec: ContainerSpec) {
    return this.timed('create_container', () => this.inner.createContainer(spec));
  }

  startContainer(id: string) {
    return this.timed('start_container', () => this.inner.startContainer(id));
  }

  stopContainer(id: string, timeoutMs: number) {
    return this.timed('stop_container', () => this.inner.stopContainer(id, timeoutMs));
  }

  removeContainer(id: string) {
    return this.timed('remove_container', () => this.inner.removeContainer(id));
  }

  inspectContainer(idOrName: string) {
    return this.timed('inspect_container', () => this.inner.inspectContainer(idOrName));
  }

  listContainers(labels: Record<string, string>) {
    return this.timed('list_containers', () => this.inner.listContainers(labels));
  }

  exec(id: string, command: string[], options?: ExecOptions) {
    return this.timed('exec', () => this.inner.exec(id, command, options));
  }

  get bridgeGateway() {
    const inner = this.inner;
    return inner.bridgeGateway ? () => this.timed('bridge_gateway', () => inner.bridgeGateway!()) : undefined;
  }

  logs(id: string, options: LogOptions) {
    return this.timed('logs', () => this.inner.logs(id, options));
  }

  stats(id: string) {
    return this.timed('stats', () => this.inner.stats(id));
  }

  events(labels: Record<string, string>, signal: AbortSignal): Promise<AsyncIterable<RuntimeEvent>> {
    return this.timed('subscribe_events', () => this.inner.events(labels, signal));
  }

  close(): void {
    this.inner.close?.();
  }
}
