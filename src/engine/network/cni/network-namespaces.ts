import { access } from 'node:fs/promises';
import { join } from 'node:path';
import type { ProcessLauncher } from '../../process-launcher.js';

/** Where iproute2 keeps named network namespaces (bind mounts of nsfs). */
export const NETNS_DIR = '/run/netns';

/**
 * Named network namespaces, as iproute2 names them (`ip netns add`, `attach`, `delete`: bind
 * mounts under /run/netns), made by berth's launcher without starting `ip`. A task's
 * namespace is made under its name (on a runtime that joins a namespace by its path), or named by
 * bind-mounting the pause container's: either way the name keeps the namespace, its interfaces and
 * its addresses alive whatever its containers do, so CNI DEL always has the namespace to clean up
 * in, until berth deletes the name.
 */
export class NetworkNamespaces {
  constructor(
    private readonly timeoutMs: number,
    private readonly launcher: ProcessLauncher,
  ) {}

  pathOf(name: string): string {
    return join(NETNS_DIR, name);
  }

  async exists(name: string): Promise<boolean> {
    return access(this.pathOf(name)).then(
      () => true,
      () => false,
    );
  }

  /** Names the network namespace of process `pid`; a stale name left by a crash is replaced. */
  async attach(name: string, pid: number): Promise<string> {
    await this.remove(name);
    await this.launcher.networkNamespace({ op: 'attach', name, pid }, this.timeoutMs);
    return this.pathOf(name);
  }

  /**
   * Makes a new namespace under `name`, or keeps the one there: one an ADD cut short by a crash
   * left, which the task's containers may have joined already. Its loopback interface is up, as in
   * the namespaces Docker makes, whatever plugins the network list has.
   */
  async create(name: string): Promise<string> {
    await this.launcher.networkNamespace({ op: 'add', name }, this.timeoutMs);
    return this.pathOf(name);
  }

  /** Deletes the name (the namespace goes once nothing else holds it); succeeds when it is gone. */
  async remove(name: string): Promise<void> {
    if (!(await this.exists(name))) return;
    await this.launcher.networkNamespace({ op: 'delete', name }, this.timeoutMs);
  }
}
