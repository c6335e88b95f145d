import type { ContainerRuntime } from '../runtime/container-runtime.js';
import { ForwardingRuntime } from '../runtime/forwarding-runtime.js';
import { RuntimeError } from '../runtime/errors.js';
import type { ContainerSpec, ExecOptions, LogOptions, PullOptions, RegistryAuth, RuntimeEvent, SessionProcessOptions, VolumeSpec } from '../runtime/types.js';

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
export class InstrumentedRuntime extends ForwardingRuntime {
  constructor(
    inner: ContainerRuntime,
    private readonly observer: RuntimeCallObserver,
  ) {
    super(inner);
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

  override ping() {
    return this.timed('ping', () => this.inner.ping());
  }

  override async pullImage(reference: string, options: PullOptions = {}) {
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

  override inspectImage(reference: string) {
    return this.timed('inspect_image', () => this.inner.inspectImage(reference));
  }

  override checkImageAccess(reference: string, auth: RegistryAuth | undefined, timeoutMs?: number) {
    return this.timed('check_image_access', () => this.inner.checkImageAccess(reference, auth, timeoutMs));
  }

  override removeImage(reference: string) {
    return this.timed('remove_image', () => this.inner.removeImage(reference));
  }

  override createVolume(spec: VolumeSpec) {
    return this.timed('create_volume', () => this.inner.createVolume(spec));
  }

  override inspectVolume(name: string) {
    return this.timed('inspect_volume', () => this.inner.inspectVolume(name));
  }

  override removeVolume(name: string) {
    return this.timed('remove_volume', () => this.inner.removeVolume(name));
  }

  override listVolumes(labels: Record<string, string>) {
    return this.timed('list_volumes', () => this.inner.listVolumes(labels));
  }

  override createContainer(spec: ContainerSpec) {
    return this.timed('create_container', () => this.inner.createContainer(spec));
  }

  override prepareStart(id: string) {
    return this.timed('prepare_start', () => this.inner.prepareStart(id));
  }

  override startContainer(id: string) {
    return this.timed('start_container', () => this.inner.startContainer(id));
  }

  override stopContainer(id: string, timeoutMs: number) {
    return this.timed('stop_container', () => this.inner.stopContainer(id, timeoutMs));
  }

  override removeContainer(id: string) {
    return this.timed('remove_container', () => this.inner.removeContainer(id));
  }

  override inspectContainer(idOrName: string) {
    return this.timed('inspect_container', () => this.inner.inspectContainer(idOrName));
  }

  override listContainers(labels: Record<string, string>) {
    return this.timed('list_containers', () => this.inner.listContainers(labels));
  }

  override exec(id: string, command: string[], options?: ExecOptions) {
    return this.timed('exec', () => this.inner.exec(id, command, options));
  }

  override openSession(id: string, command: string[], options: SessionProcessOptions) {
    return this.timed('open_session', () => this.inner.openSession(id, command, options));
  }

  override attach(id: string, options: { stdin: boolean }) {
    return this.timed('attach', () => this.inner.attach(id, options));
  }

  override endLeftoverExecs(labels: Record<string, string>) {
    return this.timed('end_leftover_execs', () => this.inner.endLeftoverExecs(labels));
  }

  override get bridgeGateway() {
    const inner = this.inner;
    return inner.bridgeGateway ? () => this.timed('bridge_gateway', () => inner.bridgeGateway!()) : undefined;
  }

  override logs(id: string, options: LogOptions) {
    return this.timed('logs', () => this.inner.logs(id, options));
  }

  override stats(id: string) {
    return this.timed('stats', () => this.inner.stats(id));
  }

  override events(labels: Record<string, string>, signal: AbortSignal): Promise<AsyncIterable<RuntimeEvent>> {
    return this.timed('subscribe_events', () => this.inner.events(labels, signal));
  }
}
