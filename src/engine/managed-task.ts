import { setMaxListeners } from 'node:events';
import type { Logger } from 'pino';
import type { ContainerRuntime } from '../runtime/container-runtime.js';
import type { ContainerInfo, PullProgress, RuntimeEvent } from '../runtime/types.js';
import type { ActionOutcome, ContainerActions } from './container-actions.js';
import type { SpecInputs } from './container-spec.js';
import { dependentsOf, evaluateDependencies } from './dependency-graph.js';
import type { EventLog } from './event-log.js';
import type { EventChange } from './events.js';
import { runtimeContainerName } from './labels.js';
import { ContainerSupervisor } from './container-supervisor.js';
import { ManagedContainer, OOM_REASON, type ContainerChange } from './managed-container.js';
import type { RestartBackoff } from './restart-policy.js';
import { earliest, isForward, statusRank, type ContainerStatus, type DesiredStatus, type TaskStatus } from './status.js';
import { toDate, toMs, type TaskRecord, type TaskState } from './store/records.js';
import type { StateStore } from './store/state-store.js';
import type { ContainerDefinition, TaskDefinition } from './task-definition.js';
import { needsOf, type ResourceNeeds } from './host-resources.js';
import type { QueuedTask } from './resource-queue.js';
import type { TaskResources, TaskSnapshot } from './task-snapshot.js';
import { pauseContainerDefinition } from './pause-container.js';
import { TaskRecorder } from './task-recorder.js';
import type { CniPortMapping, TaskNetworking, TaskNetworkStatus } from './task-network.js';
import { bareAddress, type TaskMetadataUris } from './metadata-uris.js';

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
   * Set for a task whose network CNI provides (mode task, or bridge on a runtime without a bridge):
   * a pause container holds its namespace, which the other containers join.
   */
  cni?: { networking: TaskNetworking; pauseImage: string };
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
  /** Aborts pulls when the task is stopped. */
  private readonly stopping = new AbortController();
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
  /** The container holding the task's network namespace, for a CNI-networked task. */
  private readonly pause: ManagedContainer | undefined;
  /** The task's CNI network, once set up. */
  private network: TaskNetworkStatus | undefined;
  /** The network was set up by an earlier run of the agent: CHECK it once before relying on it. */
  private networkToCheck = false;
  /** Teardown ran (or failed and was given up for now): the pause container may stop. */
  private networkTornDown = false;
  /** Saves the task's changes with their events. */
  private readonly recorder: TaskRecorder;

  constructor(
    readonly definition: TaskDefinition,
    private readonly deps: ManagedTaskDeps,
  ) {
    this.log = deps.logger.child({ taskId: definition.id });
    this.recorder = new TaskRecorder(definition.id, deps.store, deps.events, this.log, () => this.state());
    // Each container's pull waits on this signal: a task of many containers has as many listeners.
    setMaxListeners(definition.containers.length + 10, this.stopping.signal);
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
    this.pause = deps.cni ? managed(pauseContainerDefinition(deps.cni.pauseImage)) : undefined;
    // The pause container comes first: it is pulled and started before the others are created.
    this.containers = new Map([...(this.pause ? [this.pause] : []), ...definition.containers.map(managed)].map((c) => [c.name, c]));
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
    if (this.deps.cni) {
      const network = this.deps.cni.networking.restoredState(this.id);
      if (network.kind === 'ready') {
        this.network = network.status;
        this.networkToCheck = this.desiredStatus === 'RUNNING';
      }
    }
    this.recovering = true;
    if (this.desiredStatus === 'STOPPED') this.stopping.abort();
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
    return [...this.containers.values()].filter((c) => c !== this.pause).map((c) => ({ name: c.name, runtimeId: c.runtimeId, knownStatus: c.knownStatus }));
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

  /** Sets the desired status to STOPPED (StopTask, an essential container stopped, a failure). */
  stop(reason: string): void {
    if (this.desiredStatus === 'STOPPED') return;
    this.desiredStatus = 'STOPPED';
    this.stopReason = reason;
    this.log.info({ reason }, 'stopping task');
    this.stopping.abort();
    this.recordTask();
    this.scheduleReconcile();
  }

  /** Applies an event the runtime reported for one of this task's containers. */
  handleRuntimeEvent(event: RuntimeEvent): void {
    const container = [...this.containers.values()].find((c) => c.runtimeId === event.containerId);
    if (!container) return;
    // The pause container's stop includes its removal: it is STOPPED when the stop call says so.
    if (container === this.pause && container.busy === 'stop') return;
    switch (event.type) {
      case 'exit':
        this.containerExited(container, event.exitCode, event.time);
        break;
      case 'oom':
        container.oomKilled = true;
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
      network: this.network,
    };
  }

  /** The containers of the definition: every container but the pause container. */
  private appContainers(): ManagedContainer[] {
    return [...this.containers.values()].filter((c) => c !== this.pause);
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
        const what = essentialStopped === this.pause ? "the pause container holding the task's network namespace" : `essential container "${essentialStopped.name}"`;
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
          if (container === this.pause) {
            // Like kubelet's sandbox image: pulled when missing, never again; no progress events.
            this.runAction(container, 'pull', () => this.deps.actions.pull(container, this.stopping.signal, undefined, 'prefer-cached'));
          } else {
            this.runAction(container, 'pull', () => this.deps.actions.pull(container, this.stopping.signal, this.progressReporter(container)));
          }
          break;
        case 'PULLED':
          // A container joining the task's namespace is created once the pause container exists
          // (Docker names it), while the network is being set up; it starts once that is done.
          // With a metadata endpoint, the URI in the environment names the network's gateway: that waits for the network.
          if (this.pause && container !== this.pause && (this.pause.runtimeId === undefined || (this.deps.metadata && !this.network))) {
            waitReason ||= "setting up the task's network";
            break;
          }
          this.runAction(container, 'create', () => this.deps.actions.create(this.definition, container, this.networkOf(container), this.metadataUriOf(container)));
          break;
        case 'CREATED': {
          if (this.pause && container !== this.pause && !this.network) {
            waitReason ||= "setting up the task's network";
            break;
          }
          const verdict = evaluateDependencies(container.definition, (name) => this.containers.get(name)!.dependencyView());
          if (verdict.kind === 'satisfied') this.runAction(container, 'start', () => this.deps.actions.start(this.definition, container));
          else if (verdict.kind === 'failed') this.stop(verdict.reason);
          else {
            waitReason ||= verdict.reason;
            deadlineMs = Math.min(deadlineMs, verdict.deadlineMs ?? Infinity);
          }
          break;
        }
        case 'RUNNING':
          if (container === this.pause && this.desiredStatus === 'RUNNING') this.driveNetwork(container);
          break;
      }
    }
    if (this.desiredStatus === 'STOPPED') this.tearDownNetworkWhenDone();
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

  /** Records pull progress as events, at most one per `pullProgressIntervalMs` (and the last). */
  private progressReporter(container: ManagedContainer): (progress: PullProgress) => void {
    let last = 0;
    let lastDone = -1;
    return (progress) => {
      const now = Date.now();
      const complete = progress.bytesTotal > 0 && progress.bytesDone >= progress.bytesTotal;
      if (progress.bytesDone === lastDone || (now - last < this.deps.pullProgressIntervalMs && !complete)) return;
      last = now;
      lastDone = progress.bytesDone;
      this.record({ type: 'pull', containerName: container.name, image: container.definition.image, ...progress });
    };
  }

  /** A container desired STOPPED: one that never ran stops at once; a running one stops after its dependents. */
  private moveTowardStopped(container: ManagedContainer): void {
    this.supervisor.quiet(container);
    if (container === this.pause) {
      // Last of all: after every other container stopped and the network was torn down.
      if (!this.networkTornDown || this.appContainers().some((c) => c.knownStatus !== 'STOPPED')) return;
      if (container.knownStatus !== 'RUNNING') this.markStopped(container, { reason: 'the task stopped' });
      else this.runAction(container, 'stop', () => this.stopAndRemovePause(container));
      return;
    }
    if (container.knownStatus !== 'RUNNING') {
      this.markStopped(container, { reason: 'the task stopped before the container started' });
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
      case 'network-ready':
        if (this.network === outcome.status) break; // a CHECK found the network as it was
        this.network = outcome.status;
        this.log.info({ network: outcome.status }, 'task network set up');
        this.record({ type: 'network', network: outcome.status });
        break;
      case 'network-failed':
        this.log.warn({ reason: outcome.reason }, 'task network failed');
        this.stop(outcome.reason);
        break;
      case 'network-released':
        this.networkTornDown = true;
        if (this.network) {
          this.network = undefined;
          this.record({ type: 'network' });
        }
        break;
      case 'network-release-failed':
        // The attachment stays saved: cleanup and the next start of the agent try again.
        this.log.error({ reason: outcome.reason }, 'could not tear down the task network; stopping the task anyway');
        this.networkTornDown = true;
        break;
    }
  }

  /** Where the container reaches the metadata endpoint: an address of the host on its network; none without one. */
  private metadataUriOf(container: ManagedContainer): string | undefined {
    const metadata = this.deps.metadata;
    if (!metadata || container === this.pause) return undefined;
    let host: string | undefined;
    if (this.pause) host = this.network?.gateways[0] && bareAddress(this.network.gateways[0]);
    else if (this.definition.networkMode === 'host') host = '127.0.0.1';
    else if (this.definition.networkMode === 'bridge') host = metadata.bridgeGateway;
    return host ? metadata.uriFor(this.id, container.name, host) : undefined;
  }

  /** How a container joins the network: the pause container alone, the others in its namespace. */
  private networkOf(container: ManagedContainer): SpecInputs['network'] {
    if (!this.pause || !this.deps.cni) return undefined;
    if (container === this.pause) return { network: 'none' };
    // The path exists once the network is set up, which is before the container starts.
    const netnsPath = this.deps.cni.networking.namespacePath(this.id);
    return { network: 'container', networkContainer: { id: this.pause.runtimeId as string, netnsPath } };
  }

  /** The pause container runs: set the network up, or CHECK one an earlier run of the agent set up. */
  private driveNetwork(pause: ManagedContainer): void {
    const networking = this.deps.cni!.networking;
    if (!this.network) {
      this.runAction(pause, 'network', async () => {
        const info = await this.deps.runtime.inspectContainer(pause.runtimeId as string).catch(() => undefined);
        if (!info?.pid) return { kind: 'network-failed', reason: "cannot set up the task's network: the pause container is not running" };
        const result = await networking.setUp(this.definition, info.pid, this.cniPortMappings());
        return result.ok ? { kind: 'network-ready', status: result.status } : { kind: 'network-failed', reason: result.reason };
      });
    } else if (this.networkToCheck) {
      this.networkToCheck = false;
      // A failed CHECK is reported, not acted on: plugins get CHECK wrong more often than a network
      // breaks (portmap 1.1 fails it for every IPv4-only task, containernetworking/plugins#819).
      this.runAction(pause, 'network', async () => {
        await networking.check(this.id).catch((error: unknown) => this.log.warn({ err: error }, "the task's network failed its CHECK after the agent restarted"));
        return { kind: 'network-ready', status: this.network! };
      });
    }
  }

  /** Once every other container stopped: DEL the network (before the pause container goes). */
  private tearDownNetworkWhenDone(): void {
    const pause = this.pause;
    if (!pause || pause.busy !== undefined || this.networkTornDown) return;
    if (this.appContainers().some((c) => c.knownStatus !== 'STOPPED')) return;
    this.runAction(pause, 'network', async () => {
      try {
        await this.deps.cni!.networking.tearDown(this.id);
        return { kind: 'network-released' };
      } catch (error) {
        return { kind: 'network-release-failed', reason: error instanceof Error ? error.message : String(error) };
      }
    });
  }

  private async stopAndRemovePause(pause: ManagedContainer): Promise<ActionOutcome> {
    const outcome = await this.deps.actions.stop(pause);
    const error = await this.deps.actions.remove(pause);
    if (error) this.log.warn({ err: error }, 'could not remove the pause container; cleanup tries again');
    return outcome;
  }

  /** The task's host port mappings, for portmap. */
  private cniPortMappings(): CniPortMapping[] {
    return this.appContainers().flatMap((c) =>
      c.definition.portMappings.map((p, i) => ({
        hostPort: c.hostPorts[i] ?? p.hostPort,
        containerPort: p.containerPort,
        protocol: p.protocol,
        ...(p.hostIp ? { hostIP: p.hostIp } : {}),
      })),
    );
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
   * The task's known status: STOPPED once every container stopped; otherwise the earliest status
   * of the containers still going (a stopped container holds nothing back). Only moves forward;
   * returns true when it moved.
   */
  private deriveStatus(): boolean {
    const all = [...this.containers.values()];
    const live = all.filter((c) => c.knownStatus !== 'STOPPED').map((c) => c.knownStatus);
    const derived: TaskStatus = live.length === 0 ? 'STOPPED' : (earliest(live) as TaskStatus);
    if (!isForward(this.knownStatus, derived)) return false;
    this.knownStatus = derived;
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

  private async cleanUp(): Promise<void> {
    for (const container of this.containers.values()) {
      const error = await this.deps.actions.remove(container);
      if (error) this.log.warn({ err: error, container: container.name }, 'could not remove container during cleanup');
    }
    const networking = this.deps.cni?.networking;
    if (networking?.hasAttachment(this.id)) {
      // An earlier teardown failed: try once more; a failure now is left for the next start.
      await networking.tearDown(this.id).catch((error: unknown) => this.log.error({ err: error }, 'could not tear down the task network during cleanup'));
    }
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
    if (container === this.pause) {
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
