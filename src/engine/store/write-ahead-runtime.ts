import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import type { ContainerLogConfiguration, ContainerSpec, ExecOptions, LogOptions, PullOptions, RegistryAuth, RuntimeEvent, VolumeSpec } from '../../runtime/types.js';

/**
 * A ContainerRuntime whose calls that change the host (create, start, stop and remove containers,
 * create and remove volumes, remove images) first wait until everything the agent wrote to its
 * state store before the call has reached the disk: the intent is saved before the side effect,
 * even against a power cut, as it was when every commit waited for its own fsync. Reads pass
 * straight through. Same results, same errors otherwise; the engine does not know it is there.
 */
export class WriteAheadRuntime implements ContainerRuntime {
  constructor(
    private readonly inner: ContainerRuntime,
    /** Resolves once the store's writes so far are on the disk (StateStore.durable). */
    private readonly durable: () => Promise<void>,
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

  get bridgeGateway() {
    return this.inner.bridgeGateway?.bind(this.inner);
  }

  private async afterWrites<T>(change: () => Promise<T>): Promise<T> {
    await this.durable();
    return change();
  }

  logConfigurationProblem(config: ContainerLogConfiguration) {
    return this.inner.logConfigurationProblem(config);
  }

  logMessagesDropped() {
    return this.inner.logMessagesDropped();
  }

  ping() {
    return this.inner.ping();
  }

  pullImage(reference: string, options?: PullOptions) {
    return this.inner.pullImage(reference, options);
  }

  inspectImage(reference: string) {
    return this.inner.inspectImage(reference);
  }

  checkImageAccess(reference: string, auth: RegistryAuth | undefined, timeoutMs?: number) {
    return this.inner.checkImageAccess(reference, auth, timeoutMs);
  }

  removeImage(reference: string) {
    return this.afterWrites(() => this.inner.removeImage(reference));
  }

  createVolume(spec: VolumeSpec) {
    return this.afterWrites(() => this.inner.createVolume(spec));
  }

  inspectVolume(name: string) {
    return this.inner.inspectVolume(name);
  }

  removeVolume(name: string) {
    return this.afterWrites(() => this.inner.removeVolume(name));
  }

  listVolumes(labels: Record<string, string>) {
    return this.inner.listVolumes(labels);
  }

  createContainer(spec: ContainerSpec) {
    return this.afterWrites(() => this.inner.createContainer(spec));
  }

  startContainer(id: string) {
    return this.afterWrites(() => this.inner.startContainer(id));
  }

  stopContainer(id: string, timeoutMs: number) {
    return this.afterWrites(() => this.inner.stopContainer(id, timeoutMs));
  }

  removeContainer(id: string) {
    return this.afterWrites(() => this.inner.removeContainer(id));
  }

  inspectContainer(idOrName: string) {
    return this.inner.inspectContainer(idOrName);
  }

  listContainers(labels: Record<string, string>) {
    return this.inner.listContainers(labels);
  }

  exec(id: string, command: string[], options?: ExecOptions) {
    return this.inner.exec(id, command, options);
  }

  logs(id: string, options: LogOptions) {
    return this.inner.logs(id, options);
  }

  stats(id: string) {
    return this.inner.stats(id);
  }

  events(labels: Record<string, string>, signal: AbortSignal): Promise<AsyncIterable<RuntimeEvent>> {
    return this.inner.events(labels, signal);
  }

  close(): void {
    this.inner.close?.();
  }
}
