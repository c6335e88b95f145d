import type { ContainerRuntime } from './container-runtime.js';
import type { ContainerLogConfiguration, ContainerSpec, ExecOptions, LogOptions, PullOptions, RegistryAuth, RuntimeEvent, SessionProcessOptions, VolumeSpec } from './types.js';

/**
 * A ContainerRuntime that hands every call to the one it wraps, unchanged: the base of the
 * wrappers that add one thing (timing, waiting for the state store) by overriding the calls that
 * thing concerns, so a member added to the contract reaches them all in one place.
 */
export class ForwardingRuntime implements ContainerRuntime {
  constructor(protected readonly inner: ContainerRuntime) {}

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

  get bridgeGateway(): (() => Promise<string | undefined>) | undefined {
    return this.inner.bridgeGateway?.bind(this.inner);
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
    return this.inner.removeImage(reference);
  }

  createVolume(spec: VolumeSpec) {
    return this.inner.createVolume(spec);
  }

  inspectVolume(name: string) {
    return this.inner.inspectVolume(name);
  }

  removeVolume(name: string) {
    return this.inner.removeVolume(name);
  }

  listVolumes(labels: Record<string, string>) {
    return this.inner.listVolumes(labels);
  }

  createContainer(spec: ContainerSpec) {
    return this.inner.createContainer(spec);
  }

  prepareStart(id: string) {
    return this.inner.prepareStart(id);
  }

  startContainer(id: string) {
    return this.inner.startContainer(id);
  }

  stopContainer(id: string, timeoutMs: number) {
    return this.inner.stopContainer(id, timeoutMs);
  }

  removeContainer(id: string) {
    return this.inner.removeContainer(id);
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

  openSession(id: string, command: string[], options: SessionProcessOptions) {
    return this.inner.openSession(id, command, options);
  }

  attach(id: string, options: { stdin: boolean }) {
    return this.inner.attach(id, options);
  }

  endLeftoverExecs(labels: Record<string, string>) {
    return this.inner.endLeftoverExecs(labels);
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
