import { randomBytes } from 'node:crypto';
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
import type { SubnetMasquerade } from './subnet-masquerade.js';
import { WarmNamespacePool, type WarmNamespaceMaker } from './warm-pool.js';

/** The task id of a warm namespace's attachment, which no task has yet (no task id is empty). */
const WARM = '';

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
  /**
   * The list for a task that maps no host port, when it differs from `list`: berth's default
   * network leaves portmap out then, as it would do nothing.
   */
  listWithoutPorts?: NetworkConfigList;
  ifName: string;
  /** Namespaces kept ready with ADD done, for tasks that join one by its path and map no host port (0: none). */
  warmPoolSize?: number;
  /** berth's own masquerading of the network's subnet (its default network), in place before any ADD. */
  masquerade?: SubnetMasquerade;
}

export type NetworkSetUp = { ok: true; status: TaskNetworkStatus } | { ok: false; reason: string };

/**
 * Containers that hold warm namespaces, on a runtime whose containers can only join another
 * container's namespace: the pool's namespaces are then theirs, named after them.
 */
export interface WarmHolders {
  /** Creates and starts a holder named `name`: its runtime id and the process whose namespace to name. */
  create(name: string): Promise<{ runtimeId: string; pid: number }>;
  /** Removes the holder named `name`; succeeds when there is none. */
  remove(name: string): Promise<void>;
}

/** A warm holder a task took: it is the task's pause container now, its network set up. */
export interface TakenHolder {
  runtimeId: string;
  runtimeName: string;
  status: TaskNetworkStatus;
}

/** A host port mapping of the task, as portmap's `portMappings` capability wants it. */
export interface CniPortMapping {
  hostPort: number;
  containerPort: number;
  protocol: 'tcp' | 'udp';
  hostIP?: string;
}

/**
 * Sets up and tears down the network namespaces of tasks in CNI-networked modes. A task's namespace
 * is made under its name, or (where its containers can only join another container's) is the pause
 * container's, given a name; either way DEL can always enter it. The attachment is saved before
 * the namespace is made or named and before ADD runs, and forgotten only after DEL succeeded, so no
 * address and no namespace is ever leaked, whatever crash comes in between.
 */
export class TaskNetworking implements WarmNamespaceMaker {
  /** Attachments not yet deleted, by task id. */
  private readonly attachments = new Map<string, CniAttachmentRecord>();
  /** Warm namespaces an earlier run of the agent left (no task has them): deleted at start. */
  private readonly leftoverWarm: CniAttachmentRecord[] = [];
  private readonly pool: WarmNamespacePool;
  private holders: WarmHolders | undefined;
  /** Names of the warm holders this run made or found, until they are taken or deleted. */
  private readonly holderNames = new Set<string>();

  constructor(
    private readonly settings: TaskNetworkSettings,
    private readonly invoker: CniInvoker,
    private readonly namespaces: NetworkNamespaces,
    private readonly store: CniAttachmentStore,
    private readonly log: Logger,
  ) {
    for (const a of store.loadCniAttachments()) {
      if (a.taskId === WARM) {
        this.leftoverWarm.push(a);
        if (a.holder) this.holderNames.add(a.containerId);
      } else this.attachments.set(a.taskId, a);
    }
    this.pool = new WarmNamespacePool(settings.warmPoolSize ?? 0, this, log);
  }

  /** The name of a task's namespace (under /run/netns) and the CNI container id of its attachment. */
  namespaceName(taskId: string): string {
    return `berth-${this.settings.agentId}-${taskId}`;
  }

  /**
   * Path of a task's namespace: what its containers join. Settled once `setUp` was called (a warm
   * namespace the task was given has a name of its own).
   */
  namespacePath(taskId: string): string {
    return this.attachments.get(taskId)?.netns ?? this.namespaces.pathOf(this.namespaceName(taskId));
  }

  /**
   * Warm namespaces are held by containers these make (Docker); without, they are made by name
   * (containerd). Call before `releaseStrays`, which deletes the holders an earlier run left.
   */
  useWarmHolders(holders: WarmHolders): void {
    this.holders = holders;
  }

  /** Whether a container of this name is a warm holder: the pool's, not an orphan. */
  isWarmHolder(runtimeName: string): boolean {
    return this.holderNames.has(runtimeName);
  }

  /**
   * A ready warm holder found not running (killed from outside the agent) is no use to a task: it
   * leaves the pool and is deleted with its namespace; the pool makes another.
   */
  dropDeadWarmHolder(runtimeName: string): void {
    const dead = this.pool.discard((a) => a.containerId === runtimeName);
    if (!dead) return;
    this.log.warn({ namespace: runtimeName }, 'a warm pause container is not running; deleting it');
    void this.release(dead).catch((error: unknown) => this.log.warn({ err: error, namespace: runtimeName }, 'could not delete a warm network namespace'));
  }

  /**
   * A ready warm holder, given to the task with its namespace and network (saved under its id):
   * the task's pause container, running, whose network is set up. Undefined when none is ready or
   * the attachment could not be saved (the holder is then deleted).
   */
  takeWarmHolder(taskId: string): TakenHolder | undefined {
    if (!this.holders) return undefined;
    const warm = this.pool.take(taskId);
    if (!warm) return undefined;
    const runtimeId = warm.holder?.runtimeId as string;
    try {
      const status = this.adopt(warm, taskId);
      this.holderNames.delete(warm.containerId);
      return { runtimeId, runtimeName: warm.containerId, status };
    } catch (error) {
      this.attachments.delete(taskId);
      warm.taskId = WARM;
      this.log.warn({ err: error, namespace: warm.containerId }, 'could not give a task a warm pause container; deleting it');
      void this.release(warm).catch((releaseError: unknown) => this.log.warn({ err: releaseError, namespace: warm.containerId }, 'could not delete a warm network namespace'));
      return undefined;
    }
  }

  /** Starts keeping warm namespaces ready (when the pool has a size); call after `releaseStrays`. */
  startWarmPool(): void {
    this.pool.start();
  }

  /** Stops making warm namespaces and deletes the ready ones. */
  async stop(): Promise<void> {
    await this.pool.stop();
  }

  /** Warm namespaces ready now. */
  get warmAvailable(): number {
    return this.pool.available;
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
   * Makes the task's namespace, or names the pause container's (process `holderPid`), and runs ADD
   * in it; a task that makes its own and maps no host port is given a warm one if one is ready.
   * The namespace (`namespacePath`) is settled before this returns; `namespaceMade` is called once
   * it exists, before ADD. An attachment left half-done by a crash is deleted first. On failure the
   * attachment stays, for `tearDown`.
   */
  async setUp(task: TaskDefinition, holderPid: number | undefined, portMappings: CniPortMapping[], namespaceMade?: () => void): Promise<NetworkSetUp> {
    const leftover = this.attachments.get(task.id);
    const warm = !leftover && holderPid === undefined && portMappings.length === 0 ? this.pool.take(task.id) : undefined;
    if (warm) {
      try {
        return { ok: true, status: this.adopt(warm, task.id) };
      } catch (error) {
        // The task has the attachment now: its teardown deletes it.
        return { ok: false, reason: `cannot set up the task's network: ${error instanceof Error ? error.message : String(error)}` };
      }
    }
    // Warm namespaces are made again once the launch ended (launchEnded).
    this.pool.launchBegan(task.id);
    try {
      const name = this.namespaceName(task.id);
      // Named for the task before anything is awaited: its containers join it by this path.
      const record = this.newRecord(name, task.id, { BERTH_TASK_ID: task.id, BERTH_FAMILY: task.family }, portMappings.length > 0 ? { portMappings } : {});
      if (leftover) {
        this.log.info({ taskId: task.id }, 'deleting a network attachment whose ADD did not finish, before adding it again');
        // A namespace berth made is kept: containers may have joined it already.
        await this.release(leftover, { keepNamespace: holderPid === undefined && leftover.containerId === name });
        this.attachments.delete(task.id);
      }
      this.attachments.set(task.id, record);
      await this.add(record, holderPid, namespaceMade);
      return { ok: true, status: this.statusOf(record) };
    } catch (error) {
      return { ok: false, reason: `cannot set up the task's network: ${error instanceof Error ? error.message : String(error)}` };
    }
  }

  /**
   * The launch of a task whose network was set up (or taken warm) ended: it runs, or it stopped.
   * Until then the pool makes no warm namespace, which would take the CPU the launch needs.
   */
  launchEnded(taskId: string): void {
    this.pool.launchEnded(taskId);
  }

  /**
   * A namespace with ADD done and no task: made by name, or held by a new holder container of the
   * same name. The attachment is saved before the holder or the namespace exists.
   */
  async makeWarm(): Promise<CniAttachmentRecord> {
    const holders = this.holders;
    const record = this.newRecord(`berth-${this.settings.agentId}-warm-${randomBytes(6).toString('hex')}`, WARM, {}, {});
    try {
      if (holders) {
        record.holder = {};
        this.holderNames.add(record.containerId);
        this.store.saveCniAttachment(record);
        await this.store.durable();
        const { runtimeId, pid } = await holders.create(record.containerId);
        record.holder.runtimeId = runtimeId;
        await this.add(record, pid);
      } else {
        await this.add(record, undefined);
      }
      return record;
    } catch (error) {
      await this.release(record).catch((releaseError: unknown) => this.log.warn({ err: releaseError, namespace: record.containerId }, 'could not delete a warm namespace whose ADD failed'));
      throw error;
    }
  }

  /** A warm namespace becomes the task's: saved under its id (DEL is given what ADD was). */
  private adopt(warm: CniAttachmentRecord, taskId: string): TaskNetworkStatus {
    warm.taskId = taskId;
    this.attachments.set(taskId, warm);
    this.store.saveCniAttachment(warm);
    this.log.debug({ taskId, namespace: warm.containerId }, 'gave the task a warm network namespace');
    return this.statusOf(warm);
  }

  /** The list an attachment's ADD runs: the one without port mapping when it has no host port and there is one. */
  private listFor(a: Pick<CniAttachmentRecord, 'capabilityArgs'>): NetworkConfigList {
    const { list, listWithoutPorts } = this.settings;
    return a.capabilityArgs.portMappings === undefined && listWithoutPorts ? listWithoutPorts : list;
  }

  private newRecord(name: string, taskId: string, args: Record<string, string>, capabilityArgs: Record<string, unknown>): CniAttachmentRecord {
    const { ifName } = this.settings;
    const list = this.listFor({ capabilityArgs });
    return {
      network: list.name,
      containerId: name,
      ifName,
      taskId,
      netns: this.namespaces.pathOf(name),
      config: networkConfigListJson(list),
      args: { IgnoreUnknown: '1', BERTH_AGENT_ID: this.settings.agentId, ...args },
      capabilityArgs,
    };
  }

  /**
   * Saves the attachment, makes or names its namespace and runs ADD of the list it was saved with
   * in it. The attachment is on the disk before the namespace exists and before any plugin runs; on
   * failure it stays, saying what failed.
   */
  private async add(record: CniAttachmentRecord, holderPid: number | undefined, namespaceMade?: () => void): Promise<void> {
    this.store.saveCniAttachment(record);
    await this.store.durable();
    if (holderPid === undefined) await this.namespaces.create(record.containerId);
    else await this.namespaces.attach(record.containerId, holderPid);
    namespaceMade?.();
    crashPoint('before-network-add');
    await this.settings.masquerade?.ensure();
    const result = await this.invoker.add(this.listFor(record), this.runtimeConf(record, record.netns)).catch((error: unknown) => {
      if (error instanceof CniError) {
        record.addFailure = { command: error.command, plugin: error.plugin, msg: error.msg };
        this.store.saveCniAttachment(record);
      }
      throw error;
    });
    crashPoint('after-network-add');
    record.result = result;
    this.store.saveCniAttachment(record);
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
    const a = this.attachments.get(taskId);
    if (!a) {
      await this.namespaces.remove(this.namespaceName(taskId));
      return;
    }
    await this.release(a);
    this.attachments.delete(taskId);
  }

  /**
   * DEL of an attachment with the configuration and arguments ADD was given, then its namespace's
   * name goes (unless kept) and the attachment is forgotten. DEL is given no namespace when it is
   * already gone.
   */
  async release(a: CniAttachmentRecord, options: { keepNamespace?: boolean } = {}): Promise<void> {
    const name = a.containerId;
    // What ADD left (its result, its failure) is on the disk before DEL runs.
    await this.store.durable();
    // ADD that failed its VERSION check ran no plugin: there is nothing to delete.
    if (a.addFailure?.command !== 'VERSION') {
      const list = parseNetworkConfigList(a.config, `the saved network of namespace "${name}"`);
      const netns = (await this.namespaces.exists(name)) ? a.netns : '';
      await this.invoker.del(list, this.runtimeConf(a, netns), a.result).catch((error: unknown) => {
        // A plugin that fails DEL exactly as it failed ADD rejects its configuration whatever the
        // command (an invalid range, say): it allocated nothing, and DEL will never succeed. Every
        // other plugin's DEL ran and succeeded, so nothing is held any more.
        const failure = a.addFailure;
        if (failure && error instanceof CniError && error.plugin === failure.plugin && error.msg === failure.msg) {
          this.log.info({ namespace: name, plugin: failure.plugin }, 'DEL failed as ADD did; the attachment holds nothing');
          return;
        }
        throw error;
      });
      crashPoint('after-network-del');
    }
    if (!options.keepNamespace) await this.namespaces.remove(name);
    // A warm holder no task took goes with its namespace; a task's pause container is the task's.
    if (a.holder && a.taskId === WARM) {
      if (!this.holders) throw new Error(`the warm pause container "${name}" cannot be deleted on this runtime`);
      await this.holders.remove(name);
      this.holderNames.delete(name);
    }
    this.store.deleteCniAttachment(a);
  }

  /**
   * Deletes the attachments (and namespace names) of tasks the agent no longer has (a failed DEL
   * whose task was forgotten since), and the warm namespaces an earlier run left. The attachment
   * is saved before a namespace is made or named, so every name berth made is found this way.
   * Failures are logged; the next start tries again.
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
    for (const warm of this.leftoverWarm.splice(0)) {
      await this.release(warm).catch((error: unknown) => this.log.warn({ err: error, namespace: warm.containerId }, 'could not delete a warm network namespace an earlier run left'));
    }
    // The tasks that kept their network across the restart reach out through the masquerading.
    if (this.settings.masquerade && [...this.attachments.values()].some((a) => a.result !== undefined)) {
      await this.settings.masquerade.ensure().catch((error: unknown) => this.log.warn({ err: error }, 'the running tasks of the network may not reach beyond the host'));
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
