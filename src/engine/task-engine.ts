import type { Logger } from 'pino';
import type { ContainerRuntime } from '../runtime/container-runtime.js';
import { isRuntimeError } from '../runtime/errors.js';
import type { RuntimeEvent } from '../runtime/types.js';
import { ContainerActions } from './container-actions.js';
import type { EngineSettings } from './engine-settings.js';
import { AlreadyExistsError, NotFoundError, ResourceExhaustedError, UnavailableError } from './errors.js';
import type { HostResourceManager } from './host-resources.js';
import type { ImageManager } from './image-manager.js';
import { ResourceQueue } from './resource-queue.js';
import type { EventLog, EventWatcher } from './event-log.js';
import { LABELS } from './labels.js';
import { ManagedTask } from './managed-task.js';
import type { RuntimeAvailability, RuntimeMonitor } from './runtime-monitor.js';
import type { TaskStatus } from './status.js';
import { sameDefinition } from './task-definition.js';
import type { TaskResources, TaskSnapshot } from './task-snapshot.js';
import { validateTaskDefinition, type TaskDefinitionInput } from './task-validation.js';

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
  private readonly byRuntimeId = new Map<string, ManagedTask>();
  private readonly actions: ContainerActions;
  private readonly queue: ResourceQueue;
  private readonly shutdown = new AbortController();
  private eventLoop: Promise<void> | undefined;
  private relistTimer: NodeJS.Timeout | undefined;

  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly monitor: RuntimeMonitor,
    private readonly events: EventLog,
    private readonly settings: EngineSettings,
    private readonly resources: HostResourceManager,
    private readonly images: ImageManager,
    private readonly log: Logger,
  ) {
    this.actions = new ContainerActions(runtime, images, settings);
    this.queue = new ResourceQueue(resources);
  }

  /** Checks the runtime once and starts following its events; never fails on a runtime that is down. */
  async start(): Promise<void> {
    await this.monitor.start();
    this.eventLoop = this.followRuntimeEvents(this.shutdown.signal);
    this.images.startCleanup();
    this.scheduleRelist();
  }

  /** Stops following the runtime; containers keep running. */
  async stop(): Promise<void> {
    this.shutdown.abort();
    this.monitor.stop();
    this.images.stop();
    clearTimeout(this.relistTimer);
    for (const task of this.tasks.values()) task.dispose();
    await this.eventLoop;
  }

  runTask(input: TaskDefinitionInput): { task: TaskSnapshot; created: boolean } {
    const definition = validateTaskDefinition(input);
    const existing = this.tasks.get(definition.id);
    if (existing) {
      if (!sameDefinition(existing.definition, definition)) {
        throw new AlreadyExistsError('task', definition.id, 'with a different definition');
      }
      return { task: existing.snapshot(), created: false };
    }
    const availability = this.monitor.availability;
    if (!availability.available) throw new UnavailableError(availability.reason);
    const task = new ManagedTask(definition, {
      agentId: this.settings.agentId,
      actions: this.actions,
      events: this.events,
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
    const problems = this.resources.neverFits(task.needs);
    if (problems.length > 0) throw new ResourceExhaustedError(definition.id, problems);
    this.tasks.set(definition.id, task);
    for (const c of definition.containers) this.images.use(definition.id, c.image);
    this.log.info({ taskId: definition.id, family: definition.family, revision: definition.revision }, 'task admitted');
    task.begin();
    this.queue.enqueue(task);
    return { task: task.snapshot(), created: true };
  }

  stopTask(id: string, reason: string): TaskSnapshot {
    const task = this.get(id);
    task.stop(reason || 'stopped by request');
    void this.queue.wake();
    return task.snapshot();
  }

  getTask(id: string): TaskSnapshot {
    return this.get(id).snapshot();
  }

  listTasks(filter: ListTasksFilter = {}): TaskSnapshot[] {
    const statuses = filter.statuses && filter.statuses.length > 0 ? new Set(filter.statuses) : undefined;
    return [...this.tasks.values()]
      .map((t) => t.snapshot())
      .filter((t) => (!statuses || statuses.has(t.knownStatus)) && (!filter.family || t.definition.family === filter.family));
  }

  /**
   * Opens a watcher on the event log. With a snapshot, the snapshot and the watcher's start are
   * taken at the same instant, so the first event delivered is the one right after the snapshot.
   */
  watch(request: WatchRequest): Watch {
    const taskIds = request.taskIds.length > 0 ? new Set(request.taskIds) : undefined;
    if (!request.includeSnapshot) return { watcher: this.events.watch(request.fromSequence, taskIds) };
    const sequence = this.events.latestSequence();
    const tasks = [...this.tasks.values()].filter((t) => !taskIds || taskIds.has(t.id)).map((t) => t.snapshot());
    return { snapshot: { sequence, tasks }, watcher: this.events.watch(sequence + 1, taskIds) };
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

  private get(id: string): ManagedTask {
    const task = this.tasks.get(id);
    if (!task) throw new NotFoundError('task', id);
    return task;
  }

  private forget(task: ManagedTask): void {
    this.tasks.delete(task.id);
    this.images.release(task.id);
    for (const [runtimeId, owner] of this.byRuntimeId) if (owner === task) this.byRuntimeId.delete(runtimeId);
    this.events.append(task.id, { type: 'removed' });
  }

  private dispatch(event: RuntimeEvent): void {
    this.byRuntimeId.get(event.containerId)?.handleRuntimeEvent(event);
  }

  /**
   * Follows the runtime's event stream for this agent's containers, subscribing again with
   * back-off when it breaks. After every (re)subscription the running containers are inspected,
   * so an exit that happened while no stream was open is still applied.
   */
  private async followRuntimeEvents(signal: AbortSignal): Promise<void> {
    let backoffMs = 250;
    while (!signal.aborted) {
      try {
        const stream = await this.runtime.events({ [LABELS.agentId]: this.settings.agentId }, signal);
        backoffMs = 250;
        void this.resync();
        for await (const event of stream) this.dispatch(event);
      } catch (error) {
        if (signal.aborted) break;
        if (isRuntimeError(error, 'unavailable') || isRuntimeError(error, 'timeout')) void this.monitor.checkNow();
        this.log.debug({ err: error }, 'runtime event stream broke; subscribing again');
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, backoffMs);
        signal.addEventListener('abort', () => {
          clearTimeout(timer);
          resolve();
        }, { once: true });
      });
      backoffMs = Math.min(backoffMs * 2, 10_000);
    }
  }

  /** The periodic relist, with ±10% jitter so that agents started together do not relist together. */
  private scheduleRelist(): void {
    const jitter = 0.9 + Math.random() * 0.2;
    this.relistTimer = setTimeout(() => {
      void this.resync().finally(() => {
        if (!this.shutdown.signal.aborted) this.scheduleRelist();
      });
    }, this.settings.relistIntervalMs * jitter);
  }

  /** Inspects every container the engine believes is running and applies exits it missed. */
  private async resync(): Promise<void> {
    for (const [runtimeId, task] of this.byRuntimeId) {
      if (!task.believesRunning(runtimeId)) continue;
      try {
        const info = await this.runtime.inspectContainer(runtimeId);
        if (info.exitCode !== undefined) {
          if (info.oomKilled) task.handleRuntimeEvent({ type: 'oom', containerId: runtimeId, time: info.finishedAt ?? new Date() });
          task.handleRuntimeEvent({ type: 'exit', containerId: runtimeId, exitCode: info.exitCode, time: info.finishedAt ?? new Date() });
        }
      } catch (error) {
        if (isRuntimeError(error, 'not-found')) task.containerVanished(runtimeId);
      }
    }
  }
}
