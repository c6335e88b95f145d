// Longer than most files on purpose: the engine's face to the server (admission, the task table,
// watches, agent info, restore after a restart); runtime synchronization is in runtime-sync.ts and
// each task's life in tasks/.

import type { Logger } from 'pino';
import type { TaskCgroups } from '../runtime/task-cgroups.js';
import type { ContainerRuntime } from '../runtime/container-runtime.js';
import type { ContainerInfo } from '../runtime/types.js';
import { ContainerAccess } from './container-access.js';
import { ContainerActions } from './tasks/container-actions.js';
import type { SecretResolver } from './tasks/container-environment.js';
import { crashPoint } from './crash-points.js';
import type { EngineSettings } from './engine-settings.js';
import {
  AlreadyExistsError,
  InvalidArgumentError,
  LimitExceededError,
  NotFoundError,
  PermissionDeniedError,
  ResourceExhaustedError,
  StoreUnavailableError,
  UnavailableError,
  type FieldViolation,
} from './errors.js';
import type { HostResourceManager } from './resources/host-resources.js';
import { canonicalImage, type ImageManager } from './images/image-manager.js';
import { byteLength } from './admission/request-limits.js';
import { ResourceQueue } from './resources/resource-queue.js';
import type { EventLog, EventWatcher } from './events/event-log.js';
import { LABELS } from './tasks/labels.js';
import { ManagedTask } from './tasks/managed-task.js';
import { mayTakeWarmPause, PAUSE_CONTAINER, WarmPauseContainers } from './tasks/pause-container.js';
import { RuntimeSync } from './runtime-sync.js';
import type { RuntimeAvailability, RuntimeMonitor } from './runtime-monitor.js';
import type { TaskStatus } from './model/status.js';
import type { StateStore } from './store/state-store.js';
import type { TaskRecord } from './store/records.js';
import { sameDefinition, type TaskDefinition } from './model/task-definition.js';
import type { TaskResources, TaskSnapshot } from './model/task-snapshot.js';
import { validateTaskDefinition, type TaskDefinitionInput } from './admission/task-validation.js';
import { checkTaskAllowed } from './admission/security-policy.js';
import { checkRuntimeSupports } from './admission/runtime-support.js';
import type { TaskNetworking } from './network/task-network.js';
import type { TaskMetadataUris } from './network/metadata-uris.js';

/** Task networking through CNI, for the engine. */
export interface EngineNetwork {
  networking: TaskNetworking;
  /** Image of the container that holds a CNI-networked task's namespace. */
  pauseImage: string;
  /** The task metadata endpoint, when the agent serves one: its URI goes into each container's environment. */
  metadata?: TaskMetadataUris;
}

/** What the server needs to know of the state store: whether writes work, and when that changes. */
export interface StoreHealth {
  readonly writable: boolean;
  readonly failureReason: string | undefined;
  on(event: 'change', listener: (writable: boolean) => void): unknown;
  off(event: 'change', listener: (writable: boolean) => void): unknown;
}

export interface ListTasksFilter {
  statuses?: TaskStatus[];
  family?: string;
}

export interface WatchRequest {
  fromSequence: number;
  includeSnapshot: boolean;
  taskIds: string[];
}

export interface Watch {
  snapshot?: { sequence: number; tasks: TaskSnapshot[] };
  watcher: EventWatcher;
}

/** What the first synchronization with the runtime after the agent started found and did. */
export interface RecoveryReport {
  /** Tasks taken over from the state store. */
  tasks: number;
  /** From the engine's start to every restored task resumed. */
  durationMs: number;
}

/** What the engine works with; the composition root builds each. */
export interface TaskEngineDeps {
  runtime: ContainerRuntime;
  monitor: RuntimeMonitor;
  events: EventLog;
  store: StateStore;
  settings: EngineSettings;
  resources: HostResourceManager;
  images: ImageManager;
  network: EngineNetwork;
  /** The cgroups of tasks with task-level cpu or memory. */
  taskCgroups: TaskCgroups;
  /** Resolves the containers' secrets and environment files (the agent's secret providers). */
  secrets: SecretResolver;
  log: Logger;
}

export interface AgentInfo {
  agentId: string;
  runtimeName: string;
  runtime: RuntimeAvailability;
  capacity: TaskResources & { dynamicPortRange: { first: number; last: number } };
  consumed: TaskResources;
  free: TaskResources & { dynamicTcpPorts: number; dynamicUdpPorts: number };
  queuedTaskIds: string[];
  latestSequence: number;
  oldestSequence: number;
}

/**
 * Owns the managed tasks. RunTask admits a task and returns at once; every task is driven by its
 * own ManagedTask, so one slow task never holds up another. Runtime events are routed to the task
 * that owns the container.
 */
export class TaskEngine {
  private readonly tasks = new Map<string, ManagedTask>();
  /** The WatchEvents streams' watchers (closed ones are dropped at the next watch). */
  private readonly clientWatchers = new Set<EventWatcher>();
  /** Cleaned-up tasks whose removal could not be saved yet. */
  private readonly forgetLater = new Set<ManagedTask>();
  private readonly onStoreChange = (writable: boolean) => {
    if (writable && !this.shutdown.signal.aborted) this.storeRecovered();
    else if (!writable) this.log.error({ reason: this.store.failureReason }, 'the state store cannot be written: new work is refused, running containers keep running');
  };
  private readonly byRuntimeId = new Map<string, ManagedTask>();
  private readonly actions: ContainerActions;
  /** Exec, logs and stats of a task's containers, for the server and the metadata endpoint. */
  readonly containers: ContainerAccess;
  private readonly queue: ResourceQueue;
  private readonly sync: RuntimeSync;
  private readonly shutdown = new AbortController();
  private startedAt = 0;
  private restoredCount = 0;
  private recoveryDone!: (report: RecoveryReport) => void;
  /**
   * Resolves once the tasks taken over from the state store have been compared with the runtime
   * and resumed. While the runtime is down this waits for it.
   */
  readonly recovery: Promise<RecoveryReport> = new Promise((resolve) => {
    this.recoveryDone = resolve;
  });
  private readonly runtime: ContainerRuntime;
  private readonly monitor: RuntimeMonitor;
  private readonly events: EventLog;
  private readonly store: StateStore;
  private readonly settings: EngineSettings;
  private readonly resources: HostResourceManager;
  private readonly images: ImageManager;
  private readonly network: EngineNetwork;
  private readonly log: Logger;

  constructor(deps: TaskEngineDeps) {
    ({
      runtime: this.runtime,
      monitor: this.monitor,
      events: this.events,
      store: this.store,
      settings: this.settings,
      resources: this.resources,
      images: this.images,
      network: this.network,
      log: this.log,
    } = deps);
    this.actions = new ContainerActions(this.runtime, this.images, this.settings, deps.taskCgroups, deps.secrets);
    this.containers = new ContainerAccess(this.runtime, this.monitor, (taskId) => this.tasks.get(taskId)?.accessTargets(), this.settings.limits, this.settings.sessionIdleTimeoutMs);
    this.queue = new ResourceQueue(this.resources);
    this.sync = new RuntimeSync({
      runtime: this.runtime,
      monitor: this.monitor,
      settings: this.settings,
      log: this.log,
      taskCgroups: deps.taskCgroups,
      tasks: () => this.tasks.values(),
      ownerOf: (runtimeId) => this.byRuntimeId.get(runtimeId),
      spare: (container) => this.isWarmPause(container),
      metadata: this.network.metadata,
      afterPass: () => this.resumeRestoredTasks(),
      orphanRemoved: (container) => this.recordOrphanRemoved(container),
    });
  }

  /**
   * Takes over the tasks in the state store, checks the runtime once and starts following its
   * events; the first synchronization with the runtime then resumes the restored tasks (see
   * `recovery`). Never fails on a runtime that is down.
   */
  async start(): Promise<void> {
    this.startedAt = performance.now();
    this.store.on('change', this.onStoreChange);
    await this.monitor.start();
    // Sessions and commands whose agent died with them have no one to end them but this one.
    void this.runtime.endLeftoverExecs({ [LABELS.agentId]: this.settings.agentId }).then(
      (ended) => {
        if (ended > 0) this.log.info({ ended }, 'ended exec processes an earlier agent left running');
      },
      (error: unknown) => this.log.warn({ error: String(error) }, 'cannot look for exec processes an earlier agent left running'),
    );
    this.restoreTasks();
    const networking = this.network.networking;
    // Where containers join a namespace by its path, warm namespaces are made by name; elsewhere a
    // pause container holds each, which a task then takes as its own.
    if (!this.runtime.joinsNetworkNamespaces) {
      networking.useWarmHolders(new WarmPauseContainers(this.runtime, this.images, this.settings, this.network.pauseImage, this.shutdown.signal));
    }
    void networking.releaseStrays(new Set(this.tasks.keys())).then(() => {
      if (!this.shutdown.signal.aborted) networking.startWarmPool();
    });
    this.sync.start();
    this.images.startCleanup();
  }

  /** Stops following the runtime; containers keep running. */
  async stop(): Promise<void> {
    this.shutdown.abort();
    this.store.off('change', this.onStoreChange);
    this.monitor.stop();
    this.images.stop();
    for (const task of this.tasks.values()) task.dispose();
    await this.sync.stop();
    await this.network.networking.stop();
  }

  runTask(input: TaskDefinitionInput): { task: TaskSnapshot; created: boolean } {
    const definition = validateTaskDefinition(input, this.settings.limits);
    checkRuntimeSupports(definition, this.runtime);
    this.requireWritableStore();
    checkTaskAllowed(definition, this.settings.security);
    const existing = this.tasks.get(definition.id);
    if (existing) {
      if (!sameDefinition(existing.definition, definition)) {
        throw new AlreadyExistsError('task', definition.id, 'with a different definition');
      }
      return { task: existing.snapshot(), created: false };
    }
    const availability = this.monitor.availability;
    if (!availability.available) throw new UnavailableError(availability.reason);
    const task = this.createTask(definition);
    const problems = this.resources.neverFits(task.needs);
    if (problems.length > 0) throw new ResourceExhaustedError(definition.id, problems);
    // Saved before RunTask answers: a task the client was told about survives a crash. It enters
    // the engine only once its record committed: a failed write leaves nothing behind.
    try {
      this.store.transaction(() => {
        for (const image of this.imagesOf(definition)) this.images.use(definition.id, image);
        task.begin();
      });
    } catch (error) {
      task.dispose();
      this.images.release(definition.id);
      throw error;
    }
    this.tasks.set(definition.id, task);
    crashPoint('task-saved');
    this.log.info({ taskId: definition.id, family: definition.family, revision: definition.revision }, 'task admitted');
    this.queue.enqueue(task);
    return { task: task.snapshot(), created: true };
  }

  /**
   * Whether CNI provides the task's network: always in mode task, and in mode bridge on a runtime
   * without a bridge of its own (containerd), where a bridge network is what the CNI list gives.
   */
  private usesCni(definition: TaskDefinition): boolean {
    return definition.networkMode === 'task' || (definition.networkMode === 'bridge' && !this.runtime.hasBridgeNetwork);
  }

  /**
   * Whether a pause container holds a CNI-networked task's namespaces. The network namespace alone
   * berth makes itself, on a runtime whose containers join one by its path (containerd, as its CRI
   * does); a pause container holds it where they can only join another container's (Docker), and
   * holds the process and IPC namespaces of a task whose containers share them. A task restored
   * with a pause container keeps it.
   */
  private usesPause(definition: TaskDefinition, restored?: TaskRecord): boolean {
    if (restored) return restored.containers.some((c) => c.name === PAUSE_CONTAINER);
    return !this.runtime.joinsNetworkNamespaces || definition.pidMode === 'task' || definition.ipcMode === 'task';
  }

  /** Images a task uses, its pause container's included. */
  private imagesOf(definition: TaskDefinition, restored?: TaskRecord): string[] {
    const images = definition.containers.map((c) => canonicalImage(c.image));
    return this.usesCni(definition) && this.usesPause(definition, restored) ? [canonicalImage(this.network.pauseImage), ...images] : images;
  }

  private createTask(definition: TaskDefinition, restored?: TaskRecord): ManagedTask {
    const pause = this.usesPause(definition, restored);
    const cni = this.usesCni(definition)
      ? { networking: this.network.networking, pauseImage: pause ? this.network.pauseImage : undefined, mayTakeWarmPause: pause && !restored && mayTakeWarmPause(definition) }
      : undefined;
    return new ManagedTask(definition, {
      cni,
      metadata: this.network.metadata,
      agentId: this.settings.agentId,
      actions: this.actions,
      events: this.events,
      store: this.store,
      logger: this.log,
      taskCleanupWaitMs: this.settings.taskCleanupWaitMs,
      pullProgressIntervalMs: this.settings.pullProgressIntervalMs,
      runtime: this.runtime,
      restartBackoff: this.settings.restartBackoff,
      onContainerCreated: (owner, runtimeId) => this.byRuntimeId.set(runtimeId, owner),
      onStopped: (owner) => {
        this.resources.release(owner.id);
        void this.queue.wake();
      },
      onCleanedUp: (owner) => this.forget(owner),
    });
  }

  /**
   * Takes over every task of the state store (ECS synchronizeState, first half): statuses as last
   * saved, host resources held again exactly as before, tasks that had none queued again in their
   * order of admission. The tasks wait until the first synchronization with the runtime.
   */
  private restoreTasks(): void {
    const reservations = this.store.loadReservations();
    const queued: ManagedTask[] = [];
    const disallowed: [ManagedTask, string][] = [];
    for (const record of this.store.loadTasks()) {
      const task = this.createTask(record.definition, record);
      task.restore(record);
      const refusal = record.state.desiredStatus === 'STOPPED' ? undefined : this.refusal(record.definition);
      if (refusal) disallowed.push([task, refusal]);
      this.tasks.set(task.id, task);
      for (const c of record.containers) if (c.runtimeId) this.byRuntimeId.set(c.runtimeId, task);
      for (const image of this.imagesOf(record.definition, record)) this.images.use(task.id, image, { restored: true });
      const held = reservations.get(task.id);
      reservations.delete(task.id);
      if (record.state.knownStatus === 'STOPPED') {
        if (held) this.store.deleteReservation(task.id);
      } else if (held) {
        this.resources.restore(task.id, held);
        task.grant(held);
      } else {
        queued.push(task);
      }
    }
    // Reservations of tasks that are gone.
    for (const taskId of reservations.keys()) this.store.deleteReservation(taskId);
    for (const task of queued) this.queue.enqueue(task);
    // The config may have changed since the task was admitted: what it no longer allows stops.
    for (const [task, reason] of disallowed) {
      this.log.warn({ taskId: task.id, reason }, 'a restored task is not allowed by the current config; stopping it');
      task.stop(reason);
    }
    this.restoredCount = this.tasks.size;
    if (this.restoredCount > 0) this.log.info({ tasks: this.restoredCount, holdingResources: this.tasks.size - queued.length }, 'restored tasks from the state store');
  }

  /** Why the current security settings refuse a definition, or undefined when they allow it. */
  private refusal(definition: TaskDefinition): string | undefined {
    try {
      checkTaskAllowed(definition, this.settings.security);
      return undefined;
    } catch (error) {
      if (error instanceof PermissionDeniedError) return `no longer allowed on this agent: ${error.message}`;
      throw error;
    }
  }

  stopTask(id: string, reason: string): TaskSnapshot {
    const limit = this.settings.limits.reasonBytes;
    if (byteLength(reason) > limit) throw new InvalidArgumentError([{ field: 'reason', description: `must be at most ${limit} bytes (limit limits.reasonBytes)` }], 'invalid stop request');
    const task = this.get(id);
    this.requireWritableStore();
    task.stop(reason || 'stopped by request');
    void this.queue.wake();
    return task.snapshot();
  }

  /** The task, or undefined when the engine does not have it (no NotFoundError). */
  findTask(id: string): TaskSnapshot | undefined {
    return this.tasks.get(id)?.snapshot();
  }

  getTask(id: string): TaskSnapshot {
    return this.get(id).snapshot();
  }

  listTasks(filter: ListTasksFilter = {}): TaskSnapshot[] {
    const statuses = filter.statuses && filter.statuses.length > 0 ? new Set(filter.statuses) : undefined;
    return [...this.tasks.values()].map((t) => t.snapshot()).filter((t) => (!statuses || statuses.has(t.knownStatus)) && (!filter.family || t.definition.family === filter.family));
  }

  /**
   * Opens a watcher on the event log. With a snapshot, the snapshot and the watcher's start are
   * taken at the same instant, so the first event delivered is the one right after the snapshot.
   */
  watch(request: WatchRequest): Watch {
    const problems: FieldViolation[] = [];
    if (request.includeSnapshot && request.fromSequence !== 0) problems.push({ field: 'from_sequence', description: 'must be 0 when include_snapshot is set' });
    if (request.taskIds.length > this.settings.limits.watchTaskIds) {
      problems.push({ field: 'task_ids', description: `must list at most ${this.settings.limits.watchTaskIds} task ids (limit limits.watchTaskIds)` });
    }
    if (problems.length > 0) throw new InvalidArgumentError(problems, 'invalid watch request');
    // Only the clients' watchers count (the agent's own, e.g. the metrics', do not).
    for (const open of this.clientWatchers) if (open.isClosed) this.clientWatchers.delete(open);
    if (this.clientWatchers.size >= this.settings.limits.watchers) {
      throw new LimitExceededError('limits.watchers', this.settings.limits.watchers, 'too many WatchEvents streams are open on this agent');
    }
    const watch = this.openWatch(request);
    this.clientWatchers.add(watch.watcher);
    return watch;
  }

  private openWatch(request: WatchRequest): Watch {
    const taskIds = request.taskIds.length > 0 ? new Set(request.taskIds) : undefined;
    if (!request.includeSnapshot) return { watcher: this.events.watch(request.fromSequence, taskIds) };
    const sequence = this.events.latestSequence();
    const tasks = [...this.tasks.values()].filter((t) => !taskIds || taskIds.has(t.id)).map((t) => t.snapshot());
    return { snapshot: { sequence, tasks }, watcher: this.events.watch(sequence + 1, taskIds) };
  }

  /**
   * Resolves once everything the engine has written so far is on the disk: an answer or a
   * snapshot that shows the agent's state waits for it, so that a power cut cannot take back
   * what a client was told.
   */
  durable(): Promise<void> {
    return this.store.durable();
  }

  agentInfo(): AgentInfo {
    return {
      agentId: this.settings.agentId,
      runtimeName: this.runtime.name,
      runtime: this.monitor.availability,
      capacity: {
        cpuUnits: this.resources.capacity.cpuUnits,
        memoryMib: this.resources.capacity.memoryMib,
        tcpPorts: this.resources.capacity.reservedTcpPorts,
        udpPorts: this.resources.capacity.reservedUdpPorts,
        gpuIds: this.resources.capacity.gpuIds,
        dynamicPortRange: this.resources.capacity.dynamicPortRange,
      },
      consumed: this.resources.consumed(),
      free: this.resources.free(),
      queuedTaskIds: this.queue.ids(),
      latestSequence: this.events.latestSequence(),
      oldestSequence: this.events.oldestSequence(),
    };
  }

  /** Whether the state store takes writes (the agent serves only while it does), and its changes. */
  get storeHealth(): StoreHealth {
    return this.store;
  }

  /** Work that must be saved before it is done is refused while the store takes no writes. */
  private requireWritableStore(): void {
    if (!this.store.writable) throw new StoreUnavailableError(this.store.failureReason ?? 'writes fail');
  }

  /**
   * The store takes writes again: every task saves what changed meanwhile and carries on, tasks
   * that were to be forgotten are, and the resource queue is served.
   */
  private storeRecovered(): void {
    this.log.info('the state store takes writes again; resuming');
    for (const task of this.tasks.values()) task.resave();
    for (const task of [...this.forgetLater]) this.forget(task);
    void this.queue.wake();
  }

  private get(id: string): ManagedTask {
    const task = this.tasks.get(id);
    if (!task) throw new NotFoundError('task', id);
    return task;
  }

  private forget(task: ManagedTask): void {
    if (this.shutdown.signal.aborted) return;
    try {
      this.store.transaction(() => {
        this.store.deleteTask(task.id);
        this.events.append(task.id, { type: 'removed' });
      });
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      // Kept until the store takes writes again: a task forgotten in memory only would come back.
      this.forgetLater.add(task);
      return;
    }
    this.forgetLater.delete(task);
    this.tasks.delete(task.id);
    this.images.release(task.id);
    for (const [runtimeId, owner] of this.byRuntimeId) if (owner === task) this.byRuntimeId.delete(runtimeId);
  }

  private recordOrphanRemoved(container: ContainerInfo): void {
    if (this.shutdown.signal.aborted || !this.store.writable) return;
    this.events.append(container.labels[LABELS.taskId] ?? '', {
      type: 'orphan-removed',
      runtimeId: container.id,
      runtimeName: container.name,
      containerName: container.labels[LABELS.containerName] ?? '',
    });
  }

  /** Whether a container no task owns is a warm pause container of the pool; one not running leaves the pool. */
  private isWarmPause(container: ContainerInfo): boolean {
    const networking = this.network.networking;
    if (!networking.isWarmHolder(container.name)) return false;
    if (container.state !== 'running') networking.dropDeadWarmHolder(container.name);
    return true;
  }

  /**
   * Compares every task's containers with the runtime now (see RuntimeSync); also runs after every
   * subscription to the runtime's events and at every relist.
   */
  synchronize(): Promise<void> {
    return this.sync.synchronize();
  }

  /** Synchronization passes completed, and the duration of the last one. */
  get syncStats(): { readonly count: number; readonly lastDurationMs: number } {
    return this.sync.passStats;
  }

  private resumeRestoredTasks(): void {
    if (this.restoredCount < 0) return;
    for (const task of this.tasks.values()) task.resume();
    const report: RecoveryReport = { tasks: this.restoredCount, durationMs: Math.round(performance.now() - this.startedAt) };
    this.restoredCount = -1;
    if (report.tasks > 0) this.log.info(report, 'recovered every task from the state store');
    this.recoveryDone(report);
  }
}
