// Longer than most files on purpose: it is the task's state machine, and every transition of the
// task and of its containers is decided here so that their order can be read whole. What stands
// apart is in the parts it asks: the sandbox (pause container, network), the recorder (state and
// events), the container actions and the supervisor (health checks, restarts).

import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import type { ContainerInfo, PullProgress, RuntimeEvent } from '../../runtime/types.js';
import type { ActionOutcome, ContainerActions } from './container-actions.js';
import { dependentsOf, evaluateDependencies } from '../model/dependency-graph.js';
import type { EventLog } from '../events/event-log.js';
import type { EventChange } from '../events/events.js';
import { runtimeContainerName } from './labels.js';
import { ContainerSupervisor } from './container-supervisor.js';
import { ManagedContainer, OOM_REASON, type ContainerChange } from './managed-container.js';
import type { RestartBackoff } from './restart-policy.js';
import { earliest, isForward, statusRank, type ContainerStatus, type DesiredStatus, type TaskStatus } from '../model/status.js';
import { toDate, toMs, type TaskRecord, type TaskState } from '../store/records.js';
import type { StateStore } from '../store/state-store.js';
import type { ContainerDefinition, TaskDefinition } from '../model/task-definition.js';
import { needsOf, type ResourceNeeds } from '../resources/host-resources.js';
import type { QueuedTask } from '../resources/resource-queue.js';
import type { TaskResources, TaskSnapshot } from '../model/task-snapshot.js';
import { pauseContainerDefinition } from './pause-container.js';
import { throttledProgress } from './pull-progress.js';
import { TaskRecorder } from './task-recorder.js';
import type { TaskNetworking } from '../network/task-network.js';
import type { TaskMetadataUris } from '../network/metadata-uris.js';
import { TaskSandbox, type SandboxOutcome } from './task-sandbox.js';

export interface ManagedTaskDeps {
  agentId: string;
  actions: ContainerActions;
  events: EventLog;
  store: StateStore;
  logger: Logger;
  taskCleanupWaitMs: number;
  /** Minimum time between two pull progress events of one container. */
  pullProgressIntervalMs: number;
  runtime: ContainerRuntime;
  restartBackoff: RestartBackoff;
  /** A container of this task got a runtime id: route its runtime events here. */
  onContainerCreated(task: ManagedTask, runtimeId: string): void;
  /** Every container stopped: the task's host resources can be released. */
  onStopped(task: ManagedTask): void;
  /** The cleanup wait passed and the containers were removed: forget the task. */
  onCleanedUp(task: ManagedTask): void;
  /**
   * Set for a task whose network CNI provides (mode task, or bridge on a runtime without a bridge).
   * With `pauseImage`, a pause container holds the task's namespaces, which the other containers
   * join; without, berth makes the network namespace and the containers join it by its path.
   * With `mayTakeWarmPause`, a warm pause container of the pool may be the task's (see
   * `mayTakeWarmPause`).
   */
  cni?: { networking: TaskNetworking; pauseImage?: string; mayTakeWarmPause?: boolean };
  /** The task metadata endpoint, when the agent serves one. */
  metadata?: TaskMetadataUris;
}

/**
 * Drives one task: starts every container transition that its desired status, the dependency
 * graph and the containers' known statuses allow, all in parallel; applies the outcomes and the
 * runtime's events; derives the task's status; cleans up after the task stopped.
 *
 * All state changes happen synchronously inside this class; runtime calls run concurrently and
 * report back through `apply`, after which `reconcile` runs again.
 */
export class ManagedTask implements QueuedTask {
  readonly needs: ResourceNeeds;
  /** Host resources held; undefined while the task waits for them. */
  private resources: TaskResources | undefined;
  private readonly containers: Map<string, ManagedContainer>;
  private knownStatus: TaskStatus = 'NONE';
  private desiredStatus: DesiredStatus = 'RUNNING';
  /** Why the task stopped or is stopping. */
  private stopReason = '';
  /** Why the task is waiting, while it is not stopping. */
  private waitReason = '';
  private createdAt = new Date();
  private startedAt: Date | undefined;
  private stoppedAt: Date | undefined;
  private reconcileQueued = false;
  private cleanupTimer: NodeJS.Timeout | undefined;
  /**
   * Aborts pulls when the task is stopped. Made for the first pull: a task stopped before it pulls
   * anything (one that waited for resources, say) aborts nothing, and an abort costs a DOMException.
   */
  private stopping: AbortController | undefined;
  private readonly log: Logger;
  private readonly supervisor: ContainerSupervisor;
  /** Wakes the task when a dependency's start timeout passes. */
  private deadlineTimer: NodeJS.Timeout | undefined;
  /** Set when the agent shuts down: calls still in flight may finish, nothing new starts. */
  private disposed = false;
  /**
   * Set while a restored task waits for the runtime's view of its containers: nothing is started
   * or stopped on the strength of state that may be out of date.
   */
  private recovering = false;
  /** The namespaces the containers share: the pause container and the network, for a CNI-networked task. */
  private readonly sandbox: TaskSandbox;
  /** Saves the task's changes with their events. */
  private readonly recorder: TaskRecorder;

  constructor(
    readonly definition: TaskDefinition,
    private readonly deps: ManagedTaskDeps,
  ) {
    this.log = deps.logger.child({ taskId: definition.id });
    this.recorder = new TaskRecorder(definition.id, deps.store, deps.events, this.log, () => this.state());
    this.needs = needsOf(definition);
    this.supervisor = new ContainerSupervisor({
      runtime: deps.runtime,
      backoff: deps.restartBackoff,
      log: this.log,
      changed: () => this.scheduleReconcile(),
      restartFailed: (container, reason) => {
        container.update({ reason: '' }, false);
        this.markStopped(container, { reason });
      },
    });
    const managed = (c: ContainerDefinition) => new ManagedContainer(c, runtimeContainerName(deps.agentId, definition.id, c.name), (changed) => this.recordContainer(changed));
    const pause = deps.cni?.pauseImage ? managed(pauseContainerDefinition(deps.cni.pauseImage)) : undefined;
    // The pause container comes first: it is pulled and started before the others are created.
    this.containers = new Map([...(pause ? [pause] : []), ...definition.containers.map(managed)].map((c) => [c.name, c]));
    this.sandbox = new TaskSandbox(
      definition,
      { cni: deps.cni, metadata: deps.metadata, runtime: deps.runtime, actions: deps.actions, log: this.log, changed: () => this.scheduleReconcile() },
      pause,
      () => this.appContainers(),
    );
  }

  get id(): string {
    return this.definition.id;
  }

  /** A queued task that is desired STOPPED leaves the queue without consuming. */
  get withdrawn(): boolean {
    return this.desiredStatus === 'STOPPED';
  }

  /** The host resources were granted: assign dynamic ports and GPUs, then start moving. */
  grant(resources: TaskResources): void {
    this.resources = resources;
    const dynamicTcp = resources.tcpPorts.slice(this.needs.tcpPorts.length);
    const dynamicUdp = resources.udpPorts.slice(this.needs.udpPorts.length);
    const gpus = [...resources.gpuIds];
    for (const container of this.containers.values()) {
      container.hostPorts = container.definition.portMappings.map((p) => {
        if (this.definition.networkMode === 'host') return p.containerPort;
        if (p.hostPort !== 0) return p.hostPort;
        return (p.protocol === 'tcp' ? dynamicTcp : dynamicUdp).shift() as number;
      });
      container.gpuIds = gpus.splice(0, container.definition.gpuCount);
    }
    this.log.info({ resources }, 'host resources granted');
    this.scheduleReconcile();
  }

  /** The host resources can never be granted as things are: stop, saying why. */
  refuse(reason: string): void {
    this.stop(`cannot get host resources: ${reason}`);
  }

  /** Still queued for host resources. */
  waiting(shortfall: string): void {
    const reason = `waiting for host resources: ${shortfall}`;
    if (reason === this.waitReason || this.desiredStatus === 'STOPPED') return;
    this.waitReason = reason;
    this.recordTask();
  }

  /**
   * Saves the new task with its containers' deterministic names, records its first event and
   * starts driving it.
   */
  begin(): void {
    this.recorder.insert(this.definition, this.containers.values(), this.taskEvent());
    this.scheduleReconcile();
  }

  /**
   * Takes the state a previous run of the agent saved. The task then waits, changing nothing,
   * until `resume` is called once the runtime's view of its containers has been applied.
   */
  restore(record: TaskRecord): void {
    const s = record.state;
    this.knownStatus = s.knownStatus;
    this.desiredStatus = s.desiredStatus;
    this.stopReason = s.stopReason;
    this.waitReason = s.waitReason;
    this.recorder.lastSequence = s.lastSequence;
    this.createdAt = new Date(s.createdAt);
    this.startedAt = toDate(s.startedAt);
    this.stoppedAt = toDate(s.stoppedAt);
    for (const saved of record.containers) this.containers.get(saved.name)?.restore(saved);
    this.sandbox.restore(this.desiredStatus === 'RUNNING');
    this.recovering = true;
  }

  /** The runtime's view has been applied: carry on from where the previous run stopped. */
  resume(): void {
    if (!this.recovering) return;
    this.recovering = false;
    if (this.knownStatus === 'STOPPED') {
      const remaining = (this.stoppedAt?.getTime() ?? Date.now()) + this.deps.taskCleanupWaitMs - Date.now();
      this.scheduleCleanup(Math.max(0, remaining));
      return;
    }
    for (const container of this.containers.values()) {
      if (container.knownStatus === 'RUNNING' && !container.health) this.supervisor.startHealth(container, { keepStatus: true });
    }
    this.scheduleReconcile();
  }

  /** A container of the definition as exec needs it; undefined for an unknown name. */
  /** The application containers (not the pause container), for exec, logs and stats. */
  accessTargets(): { name: string; runtimeId?: string; knownStatus: ContainerStatus }[] {
    return this.appContainers().map((c) => ({ name: c.name, runtimeId: c.runtimeId, knownStatus: c.knownStatus }));
  }

  /** Names and runtime ids of the containers, for matching them with what the runtime lists. */
  containerRefs(): { name: string; runtimeName: string; runtimeId?: string; knownStatus: ContainerStatus; busy: boolean }[] {
    return [...this.containers.values()].map((c) => ({ name: c.name, runtimeName: c.runtimeName, runtimeId: c.runtimeId, knownStatus: c.knownStatus, busy: c.busy !== undefined }));
  }

  /**
   * Applies what the runtime shows of one container: after a restart of the agent or of the
   * runtime, and at every relist. `info` is undefined when the runtime has no such container.
   * A container with a runtime call in flight is left alone: the call reports for itself.
   */
  observe(name: string, info: ContainerInfo | undefined): void {
    const container = this.containers.get(name);
    if (!container || container.busy !== undefined) return;
    if (!info) {
      const mayExist = container.runtimeId !== undefined || statusRank(container.knownStatus) >= statusRank('CREATED');
      if (mayExist && container.knownStatus !== 'STOPPED') this.markStopped(container, { reason: 'the container vanished from the runtime' });
      this.scheduleReconcile();
      return;
    }
    if (container.runtimeId === undefined) {
      // Created by an earlier run of the agent that did not live to record the answer.
      this.log.info({ container: container.name, runtimeId: info.id }, 'found the container by its name; adopting it');
      container.advance('CREATED', { runtimeId: info.id, createdAt: info.createdAt ?? new Date() });
      if (container.runtimeId === undefined) container.runtimeId = info.id;
      this.deps.onContainerCreated(this, info.id);
    }
    switch (info.state) {
      case 'running':
      case 'paused':
      case 'restarting':
        if (container.knownStatus === 'STOPPED') this.stopAgain(container);
        else if (container.knownStatus !== 'RUNNING') {
          container.runStartedAt = info.startedAt ?? new Date();
          container.advance('RUNNING', { startedAt: container.runStartedAt, portBindings: info.portBindings });
          if (!this.recovering && !this.disposed) this.supervisor.startHealth(container);
        }
        break;
      case 'exited':
      case 'dead':
        if (container.knownStatus === 'STOPPED') break;
        if (info.oomKilled) container.oomKilled = true;
        this.containerExited(container, info.exitCode ?? -1, info.finishedAt ?? new Date(), info.exitCode === undefined ? `the container is ${info.state}` : undefined);
        break;
      default:
        break;
    }
    this.scheduleReconcile();
  }

  /** What a pull waits on: aborted once the task is stopped. */
  private stoppingSignal(): AbortSignal {
    if (!this.stopping) {
      this.stopping = new AbortController();
      // Each container's pull waits on this signal: a task of many containers has as many listeners.
      setMaxListeners(this.definition.containers.length + 10, this.stopping.signal);
      if (this.desiredStatus === 'STOPPED') this.stopping.abort();
    }
    return this.stopping.signal;
  }

  /** Sets the desired status to STOPPED (StopTask, an essential container stopped, a failure). */
  stop(reason: string): void {
    if (this.desiredStatus === 'STOPPED') return;
    this.desiredStatus = 'STOPPED';
    this.stopReason = reason;
    this.log.info({ reason }, 'stopping task');
    this.stopping?.abort();
    this.recordTask();
    this.scheduleReconcile();
  }

  /** Applies an event the runtime reported for one of this task's containers. */
  handleRuntimeEvent(event: RuntimeEvent): void {
    const container = [...this.containers.values()].find((c) => c.runtimeId === event.containerId);
    if (!container) return;
    // The pause container's stop includes its removal: it is STOPPED when the stop call says so.
    if (this.sandbox.isPause(container) && container.busy === 'stop') return;
    switch (event.type) {
      case 'exit':
        // A prepared start being undone never ran: the stop's outcome says so, not this exit.
        if (container.knownStatus === 'CREATED' && container.busy === 'stop') break;
        this.containerExited(container, event.exitCode, event.time);
        break;
      case 'oom':
        // Docker can report the kill after the exit it caused: it is that exit's reason then, not
        // the next run's.
        if (container.knownStatus === 'STOPPED') {
          if (container.exitCode === 137 && container.reason.startsWith('exited with code 137')) container.update({ reason: OOM_REASON });
        } else if (!container.restartTimer) container.oomKilled = true;
        break;
      case 'start':
        if (container.knownStatus === 'STOPPED') this.stopAgain(container);
        break;
    }
    this.scheduleReconcile();
  }

  /** A container seen running again after it stopped is stopped again. */
  private stopAgain(container: ManagedContainer): void {
    if (container.busy !== undefined) return;
    this.log.warn({ container: container.name }, 'container started again after it stopped; stopping it');
    this.runAction(container, 'stop', () => this.deps.actions.stop(container));
  }

  snapshot(): TaskSnapshot {
    return {
      definition: this.definition,
      knownStatus: this.knownStatus,
      desiredStatus: this.desiredStatus,
      reason: this.reason(),
      containers: this.appContainers().map((c) => c.snapshot()),
      lastSequence: this.recorder.lastSequence,
      createdAt: this.createdAt,
      startedAt: this.startedAt,
      stoppedAt: this.stoppedAt,
      resources: this.resources,
      network: this.sandbox.network,
    };
  }

  /** The containers of the definition: every container but the pause container. */
  private appContainers(): ManagedContainer[] {
    return [...this.containers.values()].filter((c) => !this.sandbox.isPause(c));
  }

  /** Stops timers; the containers are left as they are (the agent is shutting down). */
  dispose(): void {
    this.disposed = true;
    this.recorder.close();
    this.supervisor.dispose();
    clearTimeout(this.cleanupTimer);
    clearTimeout(this.deadlineTimer);
    for (const container of this.containers.values()) this.supervisor.quiet(container);
  }

  /** What the state store keeps of the task itself. */
  private state(): TaskState {
    return {
      knownStatus: this.knownStatus,
      desiredStatus: this.desiredStatus,
      stopReason: this.stopReason,
      waitReason: this.waitReason,
      lastSequence: this.recorder.lastSequence,
      createdAt: this.createdAt.getTime(),
      startedAt: toMs(this.startedAt),
      stoppedAt: toMs(this.stoppedAt),
    };
  }

  private reason(): string {
    return this.stopReason || (this.knownStatus === 'RUNNING' ? '' : this.waitReason);
  }

  private scheduleReconcile(): void {
    if (this.reconcileQueued || this.disposed) return;
    this.reconcileQueued = true;
    queueMicrotask(() => {
      this.reconcileQueued = false;
      this.reconcile();
    });
  }

  /** Starts every transition that is allowed now, then derives the task's status. */
  private reconcile(): void {
    if (this.recovering) return;
    // No intent can be saved: nothing new is started (running containers run on) until the store
    // takes writes again, when `resave` saves what changed meanwhile and reconciles.
    if (!this.recorder.writable) return;
    if (this.desiredStatus === 'RUNNING') {
      const essentialStopped = [...this.containers.values()].find((c) => c.essential && c.knownStatus === 'STOPPED');
      if (essentialStopped) {
        const how = essentialStopped.exitCode !== undefined ? `exited with code ${essentialStopped.exitCode}` : `stopped: ${essentialStopped.reason}`;
        const what = this.sandbox.isPause(essentialStopped) ? "the pause container holding the task's network namespace" : `essential container "${essentialStopped.name}"`;
        this.stop(`${what} ${how}`);
      }
    }
    if (this.desiredStatus === 'STOPPED') {
      for (const container of this.containers.values()) container.desireStop();
    }
    // Nothing starts before the host resources are granted.
    if (!this.resources && this.desiredStatus === 'RUNNING') return;
    let waitReason = '';
    let deadlineMs = Infinity;
    for (const container of this.containers.values()) {
      if (container.busy !== undefined || container.knownStatus === 'STOPPED') continue;
      if (container.desiredStatus === 'STOPPED') {
        this.moveTowardStopped(container);
        continue;
      }
      switch (container.knownStatus) {
        case 'NONE':
          if (this.sandbox.isPause(container)) {
            if (this.takeWarmPause(container)) break;
            // Like kubelet's sandbox image: pulled when missing, never again; no progress events.
            this.runAction(container, 'pull', () => this.deps.actions.pull(this.definition, container, this.stoppingSignal(), undefined, 'prefer-cached'));
          } else {
            this.runAction(container, 'pull', () => this.deps.actions.pull(this.definition, container, this.stoppingSignal(), this.progressReporter(container)));
          }
          break;
        case 'PULLED': {
          const wait = this.sandbox.waitBeforeCreate(container) ?? this.waitForLinks(container);
          if (wait) {
            waitReason ||= wait;
            break;
          }
          this.runAction(container, 'create', () => this.deps.actions.create(this.definition, container, this.sandbox.networkOf(container), this.sandbox.metadataUriOf(container)));
          break;
        }
        case 'CREATED': {
          const wait = this.sandbox.waitBeforeStart(container);
          const verdict = evaluateDependencies(container.definition, (name) => this.containers.get(name)!.dependencyView());
          if (wait) {
            waitReason ||= wait;
            // While the network is set up, what of the start can go first does.
            if (!container.startPrepared && verdict.kind === 'satisfied' && this.sandbox.mayPrepareStart(container))
              this.runAction(container, 'prepare', () => this.deps.actions.prepareStart(container));
            break;
          }
          if (verdict.kind === 'satisfied') this.runAction(container, 'start', () => this.deps.actions.start(this.definition, container));
          else if (verdict.kind === 'failed') this.stop(verdict.reason);
          else {
            waitReason ||= verdict.reason;
            deadlineMs = Math.min(deadlineMs, verdict.deadlineMs ?? Infinity);
          }
          break;
        }
      }
    }
    this.runSandboxStep(this.sandbox.nextStep(this.desiredStatus === 'RUNNING'));
    const pulling = [...this.containers.values()].find((c) => c.busy === 'pull');
    if (pulling) waitReason ||= `pulling image "${pulling.definition.image}"`;
    clearTimeout(this.deadlineTimer);
    if (deadlineMs < Infinity && this.desiredStatus === 'RUNNING') {
      this.deadlineTimer = setTimeout(() => this.scheduleReconcile(), Math.max(0, deadlineMs - Date.now()) + 1);
    }
    const reasonChanged = waitReason !== this.waitReason && this.desiredStatus === 'RUNNING';
    this.waitReason = waitReason;
    if (this.deriveStatus() || reasonChanged) this.recordTask();
  }

  /**
   * Takes a warm pause container with its network set up, if the task may and one is ready: the
   * task's attachment, the container's state and the network's event land in one commit.
   */
  private takeWarmPause(pause: ManagedContainer): boolean {
    let taken = false;
    this.recorder.inOneCommit(() => {
      const holder = this.sandbox.takeWarmPause();
      if (!holder) return;
      taken = true;
      const now = new Date();
      pause.adopt(holder.runtimeName, { runtimeId: holder.runtimeId, pulledAt: now, createdAt: now, startedAt: now });
      this.deps.onContainerCreated(this, holder.runtimeId);
      this.record({ type: 'network', network: holder.status });
    });
    return taken;
  }

  /** Records pull progress as events, at most one per `pullProgressIntervalMs` (and the last). */
  private progressReporter(container: ManagedContainer): (progress: PullProgress) => void {
    return throttledProgress(this.deps.pullProgressIntervalMs, (progress) => this.record({ type: 'pull', containerName: container.name, image: container.definition.image, ...progress }));
  }

  /** A container desired STOPPED: one that never ran stops at once; a running one stops after its dependents. */
  private moveTowardStopped(container: ManagedContainer): void {
    this.supervisor.quiet(container);
    if (this.sandbox.isPause(container)) {
      if (!this.sandbox.mayStopPause()) return;
      if (container.knownStatus !== 'RUNNING') this.markStopped(container, { reason: 'the task stopped' });
      else this.runAction(container, 'stop', () => this.sandbox.stopPause(container));
      return;
    }
    if (container.knownStatus !== 'RUNNING') {
      const reason = 'the task stopped before the container started';
      // A prepared start is undone: its process, created but not run, goes.
      if (container.startPrepared)
        this.runAction(container, 'stop', async () => {
          await this.deps.actions.stop(container);
          return { kind: 'stopped', change: { reason } };
        });
      else this.markStopped(container, { reason });
      return;
    }
    const waiting = dependentsOf(container.name, this.definition.containers).some((name) => this.containers.get(name)!.knownStatus !== 'STOPPED');
    if (!waiting) this.runAction(container, 'stop', () => this.deps.actions.stop(container));
  }

  private runAction(container: ManagedContainer, action: NonNullable<ManagedContainer['busy']>, call: () => Promise<ActionOutcome>): void {
    container.busy = action;
    const log = this.log.child({ container: container.name });
    log.debug({ action }, 'container action');
    call().then(
      (outcome) => {
        container.busy = undefined;
        if (this.disposed) return;
        // The outcome and what follows from it (the task's status, the next calls) land in one commit.
        this.recorder.inOneCommit(() => {
          this.apply(container, outcome);
          this.reconcile();
        });
      },
      (error: unknown) => {
        container.busy = undefined;
        log.error({ err: error, action }, 'container action failed unexpectedly');
        this.markStopped(container, { reason: `${action} failed: ${error instanceof Error ? error.message : String(error)}` });
        this.scheduleReconcile();
      },
    );
  }

  private apply(container: ManagedContainer, outcome: ActionOutcome): void {
    switch (outcome.kind) {
      case 'pulled':
        container.advance('PULLED', outcome.change);
        break;
      case 'created':
        container.advance('CREATED', outcome.change);
        this.deps.onContainerCreated(this, outcome.change.runtimeId);
        break;
      case 'start-prepared':
        container.startPrepared = true;
        if (outcome.failure) this.log.debug({ container: container.name, failure: outcome.failure }, 'could not prepare the start; the start does it');
        break;
      case 'running':
        // An exit event may have come first (a container that ends at once): it was applied then.
        if (container.knownStatus !== 'CREATED') break;
        container.runStartedAt = outcome.change.startedAt ?? new Date();
        container.advance('RUNNING', outcome.change);
        if (!this.disposed) this.supervisor.startHealth(container);
        break;
      case 'stopped':
        this.markStopped(container, outcome.change);
        break;
    }
  }

  /** Runs a step of the sandbox's network; what it did and what follows land in one commit. */
  private runSandboxStep(step: (() => Promise<SandboxOutcome>) | undefined): void {
    if (!step) return;
    this.sandbox.busy = true;
    void step()
      .catch((error: unknown): SandboxOutcome => {
        this.log.error({ err: error }, 'task network step failed unexpectedly');
        return { kind: 'network-failed', reason: `the task's network failed: ${error instanceof Error ? error.message : String(error)}` };
      })
      .then((outcome) => {
        this.sandbox.busy = false;
        if (this.disposed) return;
        this.recorder.inOneCommit(() => {
          const verdict = this.sandbox.apply(outcome);
          if (verdict.event) this.record(verdict.event);
          if (verdict.stopReason) this.stop(verdict.stopReason);
          this.reconcile();
        });
      });
  }

  private advanceToRunning(container: ManagedContainer, change: ContainerChange): void {
    const startedAt = change.startedAt ?? change.finishedAt ?? new Date();
    container.runStartedAt ??= startedAt;
    container.advance('RUNNING', { startedAt, portBindings: change.portBindings });
  }

  /**
   * A container's process ended by itself. Under a restart policy, while the task runs, it may be
   * restarted after its back-off (it stays RUNNING meanwhile); otherwise it is STOPPED.
   */
  private containerExited(container: ManagedContainer, exitCode: number, finishedAt: Date, reason?: string): void {
    if (container.restartTimer || container.knownStatus === 'STOPPED') return;
    if (container.knownStatus === 'CREATED') this.advanceToRunning(container, { finishedAt });
    const oomReason = container.oomKilled ? OOM_REASON : undefined;
    container.oomKilled = false;
    if (this.desiredStatus === 'RUNNING' && container.desiredStatus === 'RUNNING') {
      const stayReason = this.supervisor.exited(container, exitCode, finishedAt);
      if (stayReason === undefined) return;
      this.markStopped(container, { exitCode, finishedAt, reason: oomReason ?? reason ?? stayReason });
      return;
    }
    this.markStopped(container, { exitCode, finishedAt, reason: oomReason ?? reason });
  }

  /** STOPPED, passing through RUNNING first when the container ran but was never seen running. */
  private markStopped(container: ManagedContainer, change: ContainerChange = {}): void {
    this.supervisor.quiet(container);
    if (container.knownStatus === 'CREATED' && change.exitCode !== undefined) this.advanceToRunning(container, change);
    const reason = change.reason ?? (change.exitCode !== undefined ? `exited with code ${change.exitCode}` : undefined);
    container.advance('STOPPED', { ...change, reason });
  }

  /**
   * The task's known status: STOPPED once every container stopped, the pause container too;
   * otherwise the earliest status of its own containers still going (a stopped container holds
   * nothing back; a pause container running after them is not the task running). Only moves
   * forward; returns true when it moved.
   */
  private deriveStatus(): boolean {
    const live = this.appContainers()
      .filter((c) => c.knownStatus !== 'STOPPED')
      .map((c) => c.knownStatus);
    // The task's network is torn down before the task counts as stopped (its host ports are free
    // then), and its pause container goes after that.
    if (live.length === 0 && !this.sandbox.released()) return false;
    const derived: TaskStatus = live.length === 0 ? 'STOPPED' : (earliest(live) as TaskStatus);
    if (!isForward(this.knownStatus, derived)) return false;
    this.knownStatus = derived;
    if (derived === 'RUNNING' || derived === 'STOPPED') this.sandbox.launchEnded();
    if (derived === 'RUNNING') this.startedAt ??= new Date();
    if (derived === 'STOPPED') {
      this.stoppedAt = new Date();
      this.deps.onStopped(this);
      if (this.desiredStatus === 'RUNNING') {
        // Every container finished on its own (all essential ones exited).
        this.desiredStatus = 'STOPPED';
        this.stopReason ||= 'all containers stopped';
      }
      this.scheduleCleanup(this.deps.taskCleanupWaitMs);
    }
    return true;
  }

  private scheduleCleanup(delayMs: number): void {
    if (this.disposed) return;
    this.cleanupTimer = setTimeout(() => void this.cleanUp(), delayMs);
  }

  /** Why a container with links may not be created yet: a runtime's legacy link names a container that exists. */
  private waitForLinks(container: ManagedContainer): string | undefined {
    const pending = container.definition.links?.find((l) => {
      const linked = this.containers.get(l.container);
      return linked !== undefined && linked.runtimeId === undefined && linked.knownStatus !== 'STOPPED';
    });
    return pending && `waiting for linked container "${pending.container}" to be created`;
  }

  private async cleanUp(): Promise<void> {
    for (const container of this.containers.values()) {
      const error = await this.deps.actions.remove(container);
      if (error) this.log.warn({ err: error, container: container.name }, 'could not remove container during cleanup');
    }
    for (const error of await this.deps.actions.removeTaskVolumes(this.definition)) this.log.warn({ err: error }, 'could not remove a task volume during cleanup');
    const cgroupError = await this.deps.actions.removeTaskCgroup(this.definition);
    if (cgroupError) this.log.warn({ err: cgroupError }, "could not remove the task's cgroup during cleanup");
    await this.sandbox.releaseLeftovers();
    this.log.info('task cleaned up');
    this.deps.onCleanedUp(this);
  }

  private record(change: EventChange, container?: ManagedContainer): void {
    this.recorder.event(change, container);
  }

  /**
   * The store takes writes again: saves the task and its containers as they are now (with an event
   * that reports the task's state, for watchers that missed changes), then carries on.
   */
  resave(): void {
    if (this.disposed) return;
    this.recorder.resave(this.containers.values(), () => this.recordTask());
    this.scheduleReconcile();
  }

  private recordTask(): void {
    this.record(this.taskEvent());
  }

  private taskEvent(): EventChange {
    return { type: 'task', knownStatus: this.knownStatus, desiredStatus: this.desiredStatus, reason: this.reason() };
  }

  private recordContainer(container: ManagedContainer): void {
    if (this.sandbox.isPause(container)) {
      // Clients do not see the pause container: its state is saved, no event is sent.
      this.recorder.quietly(container);
      this.scheduleReconcile();
      this.log.debug({ container: container.name, knownStatus: container.knownStatus, reason: container.reason || undefined }, 'pause container status');
      return;
    }
    this.record({ type: 'container', container: container.snapshot() }, container);
    // A change to one container can allow another to move (a dependency met, a dependent stopped).
    this.scheduleReconcile();
    this.log.info(
      { container: container.name, knownStatus: container.knownStatus, desiredStatus: container.desiredStatus, exitCode: container.exitCode, reason: container.reason || undefined },
      'container status',
    );
  }
}
