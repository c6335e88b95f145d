import type { Logger } from 'pino';
import { CniError } from './cni/cni-error.js';
import type { CniInvoker, CniRuntimeConf } from './cni/cni-invoker.js';
import { parseCniResult, taskAddresses } from './cni/cni-result.js';
import { networkConfigListJson, parseNetworkConfigList, type NetworkConfigList } from './cni/network-config.js';
import type { NetworkNamespaces } from './cni/network-namespaces.js';
import { crashPoint } from '../crash-points.js';
import type { CniAttachmentRecord } from '../store/records.js';
import type { TaskDefinition } from '../model/task-definition.js';
import type { TaskNetworkStatus } from '../model/task-snapshot.js';

/** Where CNI attachments are kept, so a restarted agent can delete what a task was given. */
export interface CniAttachmentStore {
  saveCniAttachment(attachment: CniAttachmentRecord): void;
  loadCniAttachments(): CniAttachmentRecord[];
  deleteCniAttachment(key: Pick<CniAttachmentRecord, 'network' | 'containerId' | 'ifName'>): void;
  /** Resolves once the writes so far are on the disk. */
  durable(): Promise<void>;
}

/** A task's place on its CNI network, as clients see it. */
export interface TaskNetworkSettings {
  agentId: string;
  list: NetworkConfigList;
  ifName: string;
}

export type NetworkSetUp = { ok: true; status: TaskNetworkStatus } | { ok: false; reason: string };

/** A host port mapping of the task, as portmap's `portMappings` capability wants it. */
export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostIP?: string;
}

/**
 * Sets up and tears down the network namespaces of tasks in CNI-networked modes. A namespace
 * belongs to the task's pause container and is given a name (so DEL can always enter it); the
 * attachment is saved before ADD runs and forgotten only after DEL succeeded, so no address is
 * ever leaked, whatever crash comes in between.
 */
export class TaskNetworking {
  /** Attachments not yet deleted, by task id. */
  private readonly attachments = new Map<string, CniAttachmentRecord>();

  constructor(
    private readonly settings: TaskNetworkSettings,
    private readonly invoker: CniInvoker,
    private readonly namespaces: NetworkNamespaces,
    private readonly store: CniAttachmentStore,
    private readonly log: Logger,
  ) {
    for (const a of store.loadCniAttachments()) this.attachments.set(a.taskId, a);
  }

  /** The name of a task's namespace (under /run/netns) and the CNI container id of its attachment. */
  namespaceName(taskId: string): string {
    return `berth-${this.settings.agentId}-${taskId}`;
  }

  /** Path of a task's namespace, once set up: what its containers join. */
  namespacePath(taskId: string): string {
    return this.namespaces.pathOf(this.namespaceName(taskId));
  }

  /** What a restored task has: nothing, an ADD cut short, or a network that was set up. */
  restoredState(taskId: string): { kind: 'none' } | { kind: 'pending' } | { kind: 'ready'; status: TaskNetworkStatus } {
    const a = this.attachments.get(taskId);
    if (!a) return { kind: 'none' };
    if (a.result === undefined) return { kind: 'pending' };
    return { kind: 'ready', status: this.statusOf(a) };
  }

  hasAttachment(taskId: string): boolean {
    return this.attachments.has(taskId);
  }

  /**
   * Names the namespace of the pause container (process `pid`) and runs ADD in it. An attachment
   * left half-done by a crash is deleted first. On failure the attachment stays, for `tearDown`.
   */
  async setUp(task: TaskDefinition, pid: number, portMappings: CniPortMapping[]): Promise<NetworkSetUp> {
    const name = this.namespaceName(task.id);
    const leftover = this.attachments.get(task.id);
    try {
      if (leftover) {
        this.log.info({ taskId: task.id }, 'deleting a network attachment whose ADD did not finish, before adding it again');
        await this.tearDown(task.id);
      }
      const { list, ifName } = this.settings;
      const record: CniAttachmentRecord = {
        network: list.name,
        containerId: name,
        ifName,
        taskId: task.id,
        netns: this.namespaces.pathOf(name),
        config: networkConfigListJson(list),
        args: { IgnoreUnknown: '1', BERTH_AGENT_ID: this.settings.agentId, BERTH_TASK_ID: task.id, BERTH_FAMILY: task.family },
        capabilityArgs: portMappings.length > 0 ? { portMappings } : {},
      };
      this.store.saveCniAttachment(record);
      this.attachments.set(task.id, record);
      // The attachment is on the disk before any plugin runs.
      await this.store.durable();
      await this.namespaces.attach(name, pid);
      crashPoint('before-network-add');
      const result = await this.invoker.add(list, this.runtimeConf(record, record.netns)).catch((error: unknown) => {
        if (error instanceof CniError) {
          record.addFailure = { command: error.command, plugin: error.plugin, msg: error.msg };
          this.store.saveCniAttachment(record);
        }
        throw error;
      });
      crashPoint('after-network-add');
      record.result = result;
      const status = this.statusOf(record);
      this.store.saveCniAttachment(record);
      return { ok: true, status };
    } catch (error) {
      return { ok: false, reason: `cannot set up the task's network: ${error instanceof Error ? error.message : String(error)}` };
    }
  }

  /** CHECK of a set-up attachment (after a restart of the agent): throws when the network is broken. */
  async check(taskId: string): Promise<void> {
    const a = this.attachments.get(taskId);
    if (!a || a.result === undefined) return;
    const list = parseNetworkConfigList(a.config, `the saved network of task "${taskId}"`);
    await this.invoker.check(list, this.runtimeConf(a, a.netns), a.result);
  }

  /**
   * DEL with the configuration and arguments ADD was given, then deletes the namespace's name.
   * Succeeds when there is nothing to delete; DEL is given no namespace when it is already gone.
   */
  async tearDown(taskId: string): Promise<void> {
    const name = this.namespaceName(taskId);
    const a = this.attachments.get(taskId);
    // What ADD left (its result, its failure) is on the disk before DEL runs.
    await this.store.durable();
    // ADD that failed its VERSION check ran no plugin: there is nothing to delete.
    if (a && a.addFailure?.command !== 'VERSION') {
      const list = parseNetworkConfigList(a.config, `the saved network of task "${taskId}"`);
      const netns = (await this.namespaces.exists(name)) ? a.netns : '';
      await this.invoker.del(list, this.runtimeConf(a, netns), a.result).catch((error: unknown) => {
        // A plugin that fails DEL exactly as it failed ADD rejects its configuration whatever the
        // command (an invalid range, say): it allocated nothing, and DEL will never succeed. Every
        // other plugin's DEL ran and succeeded, so nothing is held any more.
        const failure = a.addFailure;
        if (failure && error instanceof CniError && error.plugin === failure.plugin && error.msg === failure.msg) {
          this.log.info({ taskId, plugin: failure.plugin }, 'DEL failed as ADD did; the attachment holds nothing');
          return;
        }
        throw error;
      });
      crashPoint('after-network-del');
    }
    await this.namespaces.remove(name);
    if (a) {
      this.store.deleteCniAttachment(a);
      this.attachments.delete(taskId);
    }
  }

  /**
   * Deletes the attachments (and namespace names) of tasks the agent no longer has: a failed DEL
   * whose task was forgotten since. The attachment is saved before a namespace is named, so every
   * name berth made is found this way. Failures are logged; the next start tries again.
   */
  async releaseStrays(knownTaskIds: ReadonlySet<string>): Promise<void> {
    const strays = [...this.attachments.keys()].filter((id) => !knownTaskIds.has(id));
    for (const taskId of strays) {
      try {
        await this.tearDown(taskId);
        this.log.info({ taskId }, 'deleted the network of a task the agent no longer has');
      } catch (error) {
        this.log.warn({ err: error, taskId }, 'could not delete the network of a task the agent no longer has');
      }
    }
  }

  private runtimeConf(a: CniAttachmentRecord, netns: string): CniRuntimeConf {
    return { containerId: a.containerId, netns, ifName: a.ifName, args: a.args, capabilityArgs: a.capabilityArgs };
  }

  private statusOf(a: CniAttachmentRecord): TaskNetworkStatus {
    const addresses = taskAddresses(parseCniResult(a.result));
    return { network: a.network, ifName: a.ifName, ...addresses };
  }
}
