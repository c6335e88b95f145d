import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import { ForwardingRuntime } from '../../runtime/forwarding-runtime.js';
import type { ContainerSpec, VolumeSpec } from '../../runtime/types.js';

/**
 * A ContainerRuntime whose calls that change the host (create, start, stop and remove containers,
 * create and remove volumes, remove images) first wait until everything the agent wrote to its
 * state store before the call has reached the disk: the intent is saved before the side effect,
 * even against a power cut, as it was when every commit waited for its own fsync. Reads pass
 * straight through. Same results, same errors otherwise; the engine does not know it is there.
 */
export class WriteAheadRuntime extends ForwardingRuntime {
  constructor(
    inner: ContainerRuntime,
    /** Resolves once the store's writes so far are on the disk (StateStore.durable). */
    private readonly durable: () => Promise<void>,
  ) {
    super(inner);
  }

  private async afterWrites<T>(change: () => Promise<T>): Promise<T> {
    await this.durable();
    return change();
  }

  override removeImage(reference: string) {
    return this.afterWrites(() => this.inner.removeImage(reference));
  }

  override createVolume(spec: VolumeSpec) {
    return this.afterWrites(() => this.inner.createVolume(spec));
  }

  override removeVolume(name: string) {
    return this.afterWrites(() => this.inner.removeVolume(name));
  }

  override createContainer(spec: ContainerSpec) {
    return this.afterWrites(() => this.inner.createContainer(spec));
  }

  override prepareStart(id: string) {
    return this.afterWrites(() => this.inner.prepareStart(id));
  }

  override startContainer(id: string) {
    return this.afterWrites(() => this.inner.startContainer(id));
  }

  override stopContainer(id: string, timeoutMs: number) {
    return this.afterWrites(() => this.inner.stopContainer(id, timeoutMs));
  }

  override removeContainer(id: string) {
    return this.afterWrites(() => this.inner.removeContainer(id));
  }
}
