import type { Logger } from 'pino';
import type { ContainerRuntime } from '../runtime/container-runtime.js';
import { isRuntimeError } from '../runtime/errors.js';
import type { ContainerInfo } from '../runtime/types.js';
import type { TaskCgroups } from '../runtime/task-cgroups.js';
import { CoalescedRun } from './coalesced-run.js';
import type { EngineSettings } from './engine-settings.js';
import { LABELS } from './tasks/labels.js';
import type { ManagedTask } from './tasks/managed-task.js';
import type { TaskMetadataUris } from './network/metadata-uris.js';
import { OrphanReaper } from './orphan-reaper.js';
import { retry, sleep } from './retry.js';
import type { RuntimeMonitor } from './runtime-monitor.js';
import { Semaphore } from './semaphore.js';
import { statusRank, type ContainerStatus } from './model/status.js';

/** Inspects at once during a synchronization, at most. */
const SYNC_CONCURRENCY = 8;
/** Subscribing to the runtime's events again after the stream broke. */
const RESUBSCRIBE = { attempts: Infinity, initialDelayMs: 250, maxDelayMs: 10_000 };
/** A synchronization after a (re)subscription that failed is tried again until one succeeds. */
const SYNC_AFTER_SUBSCRIBE = { attempts: Infinity, initialDelayMs: 500, maxDelayMs: 10_000 };

export interface RuntimeSyncDeps {
  runtime: ContainerRuntime;
  monitor: RuntimeMonitor;
  settings: Pick<EngineSettings, 'agentId' | 'relistIntervalMs' | 'orphanGracePeriodMs' | 'defaultStopTimeoutMs'>;
  log: Logger;
  taskCgroups: TaskCgroups;
  /** The tasks whose containers are compared with what the runtime lists. */
  tasks(): Iterable<ManagedTask>;
  /** The task that owns a runtime container, for that container's events. */
  ownerOf(runtimeId: string): ManagedTask | undefined;
  /** A container of the agent's that no task owns yet but that is not an orphan (a warm pause container). */
  spare?(container: ContainerInfo): boolean;
  /** The task metadata endpoint, whose bridge address is learnt from the runtime. */
  metadata?: TaskMetadataUris;
  /** After every synchronization pass (the engine resumes the tasks it restored, once). */
  afterPass(): void;
  /** A container of this agent that no task owned was removed. */
  orphanRemoved(container: ContainerInfo): void;
}

/**
 * Keeps the engine's view of its containers in step with the runtime: follows the runtime's event
 * stream (subscribing again with back-off when it breaks), synchronizes after every subscription
 * and at every relist, and hands containers no task owns to the orphan reaper.
 */
export class RuntimeSync {
  private readonly shutdown = new AbortController();
  private readonly passes = new CoalescedRun(
    () => this.timedPass(),
    () => !this.shutdown.signal.aborted,
  );
  /** Completed passes, and how long the last one took (the metrics read them). */
  readonly passStats = { count: 0, lastDurationMs: 0 };
  private readonly reaper: OrphanReaper;
  private eventLoop: Promise<void> | undefined;
  private relistTimer: NodeJS.Timeout | undefined;

  constructor(private readonly deps: RuntimeSyncDeps) {
    this.reaper = new OrphanReaper(
      deps.runtime,
      { graceMs: deps.settings.orphanGracePeriodMs, stopTimeoutMs: deps.settings.defaultStopTimeoutMs },
      deps.log.child({ component: 'orphan-reaper' }),
      (container) => deps.orphanRemoved(container),
      () => void this.synchronize().catch(() => undefined),
    );
  }

  /** Starts following the runtime's events (the first subscription synchronizes) and relisting. */
  start(): void {
    this.eventLoop = this.followRuntimeEvents(this.shutdown.signal);
    this.scheduleRelist();
  }

  async stop(): Promise<void> {
    this.shutdown.abort();
    this.reaper.stop();
    clearTimeout(this.relistTimer);
    await this.eventLoop;
    await this.passes.running?.catch(() => undefined);
  }

  /**
   * Compares every task's containers with what the runtime lists and applies the differences: after
   * every (re)subscription to the runtime's events (so also when the agent started and when the
   * runtime came back) and at every relist. Concurrent calls share one pass and ask for another.
   */
  synchronize(): Promise<void> {
    return this.passes.run();
  }

  private async timedPass(): Promise<void> {
    const started = performance.now();
    await this.synchronizeOnce();
    this.passStats.count++;
    this.passStats.lastDurationMs = performance.now() - started;
  }

  /**
   * Follows the runtime's event stream for this agent's containers. After every (re)subscription
   * the containers are synchronized, so an exit that happened while no stream was open is applied.
   */
  private async followRuntimeEvents(signal: AbortSignal): Promise<void> {
    const { runtime, monitor, settings, log } = this.deps;
    const subscribe = () => runtime.events({ [LABELS.agentId]: settings.agentId }, signal);
    const onRetry = (error: unknown) => {
      if (isRuntimeError(error, 'unavailable') || isRuntimeError(error, 'timeout')) void monitor.checkNow();
      log.debug({ err: error }, 'the runtime event stream broke or could not be opened; subscribing again');
    };
    while (!signal.aborted) {
      try {
        const stream = await retry(RESUBSCRIBE, subscribe, { signal, onRetry });
        void this.synchronizeUntilDone(signal);
        for await (const event of stream) this.deps.ownerOf(event.containerId)?.handleRuntimeEvent(event);
      } catch (error) {
        if (signal.aborted) break;
        onRetry(error);
      }
      await sleep(RESUBSCRIBE.initialDelayMs, signal);
    }
  }

  /** A synchronization after a (re)subscription, tried until one succeeds (or the agent stops). */
  private async synchronizeUntilDone(signal: AbortSignal): Promise<void> {
    await retry(SYNC_AFTER_SUBSCRIBE, () => this.synchronize(), {
      signal,
      onRetry: (error, attempt, delayMs) => this.deps.log.warn({ err: error, attempt, retryInMs: delayMs }, 'could not synchronize with the runtime; trying again'),
    }).catch(() => undefined);
  }

  /** The periodic relist, with ±10% jitter so that agents started together do not relist together. */
  private scheduleRelist(): void {
    const jitter = 0.9 + Math.random() * 0.2;
    this.relistTimer = setTimeout(() => {
      void this.synchronize()
        .catch((error: unknown) => this.deps.log.warn({ err: error }, 'relist failed'))
        .finally(() => {
          if (!this.shutdown.signal.aborted) this.scheduleRelist();
        });
    }, this.deps.settings.relistIntervalMs * jitter);
  }

  /**
   * One pass (ECS synchronizeState, second half): one list of the agent's containers; an inspect,
   * by runtime id or by name when the id was never recorded, for each container whose listed state
   * differs from what the engine knows; each task moves forward from what is found. Then the
   * restored tasks resume, and labelled containers that no task owns go to the orphan reaper.
   */
  private async synchronizeOnce(): Promise<void> {
    const { runtime, settings, metadata } = this.deps;
    const listed = await runtime.listContainers({ [LABELS.agentId]: settings.agentId });
    if (metadata && !metadata.bridgeGateway && runtime.bridgeGateway) {
      // Containers in the runtime's bridge mode reach the metadata endpoint at the bridge's gateway.
      metadata.bridgeGateway = await runtime.bridgeGateway().catch(() => undefined);
    }
    const byId = new Map(listed.map((c) => [c.id, c]));
    const byName = new Map(listed.map((c) => [c.name, c]));
    const owned = new Set<string>();
    const checks: (() => Promise<void>)[] = [];
    for (const task of this.deps.tasks()) {
      for (const ref of task.containerRefs()) {
        const found = ref.runtimeId !== undefined ? byId.get(ref.runtimeId) : byName.get(ref.runtimeName);
        if (found) owned.add(found.id);
        if (ref.runtimeId === undefined || ref.busy) {
          // A create may be in flight: the container of this name is the task's, recorded or not.
          const named = byName.get(ref.runtimeName);
          if (named) owned.add(named.id);
        }
        if (ref.busy) continue;
        const action = syncAction(ref.knownStatus, ref.runtimeId !== undefined, found);
        if (action === 'apply') task.observe(ref.name, found);
        else if (action === 'inspect') checks.push(() => this.inspectAndObserve(task, ref.name, ref.runtimeId ?? ref.runtimeName));
      }
    }
    const slots = new Semaphore(SYNC_CONCURRENCY);
    await Promise.all(
      checks.map(async (check) => {
        const release = await slots.acquire();
        try {
          await check();
        } finally {
          release();
        }
      }),
    );
    this.deps.afterPass();
    await this.reaper.observe(listed.filter((c) => !owned.has(c.id) && !this.deps.spare?.(c)));
    await this.removeOrphanVolumes();
    await this.removeOrphanCgroups();
  }

  /**
   * Removes the task volumes of tasks the agent no longer has (its cleanup was cut short, or the
   * task was lost): a task is always known before its volumes are created. One still in use by a
   * container waiting for the orphan reaper is left to a later pass.
   */
  private async removeOrphanVolumes(): Promise<void> {
    const { runtime, settings, log } = this.deps;
    const known = new Set([...this.deps.tasks()].map((t) => t.id));
    const volumes = await runtime.listVolumes({ [LABELS.agentId]: settings.agentId }).catch(() => []);
    for (const volume of volumes) {
      const taskId = volume.labels[LABELS.taskId];
      if (taskId === undefined || known.has(taskId)) continue;
      await runtime.removeVolume(volume.name).then(
        () => log.warn({ volume: volume.name, taskId }, 'removed the volume of a task this agent no longer has'),
        (error: unknown) => log.debug({ err: error, volume: volume.name }, 'could not remove an orphaned task volume yet'),
      );
    }
  }

  /** Removes the cgroups of tasks the agent no longer has, as their volumes; one still holding a process waits for a later pass. */
  private async removeOrphanCgroups(): Promise<void> {
    const { taskCgroups, settings, log } = this.deps;
    const known = new Set([...this.deps.tasks()].map((t) => t.id));
    for (const taskId of await taskCgroups.list(settings.agentId).catch(() => [])) {
      if (known.has(taskId)) continue;
      await taskCgroups.remove(taskCgroups.pathOf(settings.agentId, taskId)).then(
        () => log.warn({ taskId }, 'removed the cgroup of a task this agent no longer has'),
        (error: unknown) => log.debug({ err: error, taskId }, 'could not remove an orphaned task cgroup yet'),
      );
    }
  }

  private async inspectAndObserve(task: ManagedTask, name: string, idOrName: string): Promise<void> {
    try {
      task.observe(name, await this.deps.runtime.inspectContainer(idOrName));
    } catch (error) {
      if (isRuntimeError(error, 'not-found')) task.observe(name, undefined);
      else this.deps.log.warn({ err: error, taskId: task.id, container: name }, 'could not inspect a container; its status is kept until the next synchronization');
    }
  }
}

/**
 * What a synchronization does with one container, given the status the engine knows and what
 * the runtime lists (undefined: not listed): nothing, apply the listed state as it is, or inspect
 * it first (for an exit code, the start time and ports, or to tell a vanished container).
 */
export function syncAction(known: ContainerStatus, hasRuntimeId: boolean, listed: ContainerInfo | undefined): 'none' | 'apply' | 'inspect' {
  if (!listed) {
    const mayExist = hasRuntimeId || statusRank(known) >= statusRank('CREATED');
    return mayExist && known !== 'STOPPED' ? 'inspect' : 'none';
  }
  switch (listed.state) {
    case 'running':
    case 'paused':
    case 'restarting':
      if (known === 'RUNNING') return 'none';
      return known === 'STOPPED' ? 'apply' : 'inspect';
    case 'exited':
    case 'dead':
      return known === 'STOPPED' ? 'none' : 'inspect';
    case 'created':
      return hasRuntimeId ? 'none' : 'apply';
    default:
      return 'none';
  }
}
