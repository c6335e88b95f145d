import type { PortBinding } from '../../runtime/types.js';
import type { DependencyView } from '../model/dependency-graph.js';
import type { HealthMonitor } from './health-monitor.js';
import { isForward, type ContainerStatus, type DesiredStatus, type HealthStatus } from '../model/status.js';
import type { ContainerDefinition } from '../model/task-definition.js';
import type { ContainerSnapshot } from '../model/task-snapshot.js';
import { toDate, toMs, type ContainerRecord, type ContainerState } from '../store/records.js';

/** The reason of a container the kernel killed for exceeding its memory limit. */
export const OOM_REASON = "killed for exceeding its memory limit or its task's (out of memory)";

/** Fields that may accompany a status change. */
export interface ContainerChange {
  runtimeId?: string;
  exitCode?: number;
  reason?: string;
  portBindings?: PortBinding[];
  pulledAt?: Date;
  createdAt?: Date;
  startedAt?: Date;
  finishedAt?: Date;
}

/**
 * One container of a managed task: its definition and where it stands. Statuses only move
 * forward; every accepted change is reported to `onChange`, which records it as an event.
 */
export class ManagedContainer {
  knownStatus: ContainerStatus = 'NONE';
  desiredStatus: DesiredStatus = 'RUNNING';
  runtimeId: string | undefined;
  exitCode: number | undefined;
  reason = '';
  portBindings: PortBinding[] = [];
  healthStatus: HealthStatus = 'NONE';
  healthOutput = '';
  healthCheckedAt: Date | undefined;
  restartCount = 0;
  lastRestartedAt: Date | undefined;
  lastExitCode: number | undefined;
  gpuIds: string[] = [];
  /** Host port of each port mapping, in order, once the task got its resources. */
  hostPorts: number[] = [];
  /** When the current run started (restarts included). */
  runStartedAt: Date | undefined;
  /** The last back-off used before a restart; 0 before the first. */
  restartDelayMs = 0;
  /** Set while the container waits out its back-off before a restart. */
  restartTimer: NodeJS.Timeout | undefined;
  /** Restart attempts in a row that failed. */
  restartFailures = 0;
  health: HealthMonitor | undefined;
  oomKilled = false;
  pulledAt: Date | undefined;
  createdAt: Date | undefined;
  startedAt: Date | undefined;
  finishedAt: Date | undefined;
  /** The runtime call in progress for this container, if any. */
  busy: 'pull' | 'create' | 'prepare' | 'start' | 'stop' | undefined;
  /** What of its start can go before the network is ready was done (or tried): see ContainerRuntime.prepareStart. */
  startPrepared = false;

  constructor(
    readonly definition: ContainerDefinition,
    /** Recorded before the container is created, so it can always be found again by name. */
    private assignedRuntimeName: string,
    private readonly onChange: (container: ManagedContainer) => void,
  ) {}

  get name(): string {
    return this.definition.name;
  }

  /** The container's name in the runtime: the one saved with the task, once restored. */
  get runtimeName(): string {
    return this.assignedRuntimeName;
  }

  get essential(): boolean {
    return this.definition.essential;
  }

  /** True once the container has been seen running (it may have stopped since). */
  get started(): boolean {
    return this.startedAt !== undefined;
  }

  /**
   * Moves the known status forward and records the accompanying fields. Returns false, changing
   * nothing, when `status` is not later than the current one.
   */
  advance(status: ContainerStatus, change: ContainerChange = {}): boolean {
    if (!isForward(this.knownStatus, status)) return false;
    // A reason given on the way (such as a cached image used without a check) is a note: the
    // reason the container stopped replaces it. The first stop reason stays.
    const stopping = status === 'STOPPED' && this.knownStatus !== 'STOPPED';
    this.knownStatus = status;
    if (change.runtimeId !== undefined) this.runtimeId = change.runtimeId;
    if (change.exitCode !== undefined) this.exitCode = change.exitCode;
    if (change.reason !== undefined && (this.reason === '' || stopping)) this.reason = change.reason;
    if (change.portBindings !== undefined) this.portBindings = change.portBindings;
    this.pulledAt ??= change.pulledAt;
    this.createdAt ??= change.createdAt;
    this.startedAt ??= change.startedAt;
    this.finishedAt ??= change.finishedAt;
    if (status === 'STOPPED') {
      this.desiredStatus = 'STOPPED';
      this.finishedAt ??= new Date();
    }
    this.onChange(this);
    return true;
  }

  /**
   * The container is one made before the task, found running under `runtimeName` (a warm pause
   * container): it is this container now.
   */
  adopt(runtimeName: string, change: ContainerChange & { runtimeId: string }): void {
    this.assignedRuntimeName = runtimeName;
    this.runStartedAt = change.startedAt;
    this.advance('RUNNING', change);
  }

  /** Records a change of fields other than the status (health, restarts) as an event. */
  update(fields: Partial<Pick<ManagedContainer, 'healthStatus' | 'healthOutput' | 'healthCheckedAt' | 'restartCount' | 'lastRestartedAt' | 'lastExitCode' | 'reason'>>, record = true): void {
    // Nothing changed, nothing to record (a second report of the same restart, say).
    const changed = (Object.keys(fields) as (keyof typeof fields)[]).some((key) => !sameValue(this[key], fields[key]));
    Object.assign(this, fields);
    if (record && changed) this.onChange(this);
  }

  /** Sets the desired status to STOPPED; returns false when it already was. */
  desireStop(): boolean {
    if (this.desiredStatus === 'STOPPED') return false;
    this.desiredStatus = 'STOPPED';
    this.onChange(this);
    return true;
  }

  /** What the state store keeps of this container. */
  record(): ContainerRecord {
    const state: ContainerState = {
      knownStatus: this.knownStatus,
      desiredStatus: this.desiredStatus,
      exitCode: this.exitCode,
      reason: this.reason,
      portBindings: this.portBindings,
      healthStatus: this.healthStatus,
      healthOutput: this.healthOutput,
      healthCheckedAt: toMs(this.healthCheckedAt),
      restartCount: this.restartCount,
      lastRestartedAt: toMs(this.lastRestartedAt),
      lastExitCode: this.lastExitCode,
      restartDelayMs: this.restartDelayMs,
      runStartedAt: toMs(this.runStartedAt),
      pulledAt: toMs(this.pulledAt),
      createdAt: toMs(this.createdAt),
      startedAt: toMs(this.startedAt),
      finishedAt: toMs(this.finishedAt),
    };
    return { name: this.name, runtimeName: this.runtimeName, runtimeId: this.runtimeId, state };
  }

  /** Takes the state a previous run of the agent saved; records nothing. */
  restore(record: ContainerRecord): void {
    const s = record.state;
    this.assignedRuntimeName = record.runtimeName;
    this.runtimeId = record.runtimeId;
    this.knownStatus = s.knownStatus;
    this.desiredStatus = s.desiredStatus;
    this.exitCode = s.exitCode;
    this.reason = s.reason;
    this.portBindings = s.portBindings;
    this.healthStatus = s.healthStatus;
    this.healthOutput = s.healthOutput;
    this.healthCheckedAt = toDate(s.healthCheckedAt);
    this.restartCount = s.restartCount;
    this.lastRestartedAt = toDate(s.lastRestartedAt);
    this.lastExitCode = s.lastExitCode;
    this.restartDelayMs = s.restartDelayMs;
    this.runStartedAt = toDate(s.runStartedAt);
    this.pulledAt = toDate(s.pulledAt);
    this.createdAt = toDate(s.createdAt);
    this.startedAt = toDate(s.startedAt);
    this.finishedAt = toDate(s.finishedAt);
  }

  dependencyView(): DependencyView {
    return {
      knownStatus: this.knownStatus,
      started: this.started,
      startedAtMs: this.startedAt?.getTime(),
      exitCode: this.exitCode,
      healthStatus: this.healthStatus,
      startTimeoutMs: this.definition.startTimeoutMs,
    };
  }

  snapshot(): ContainerSnapshot {
    return {
      name: this.name,
      knownStatus: this.knownStatus,
      desiredStatus: this.desiredStatus,
      runtimeId: this.runtimeId,
      runtimeName: this.runtimeName,
      exitCode: this.exitCode,
      reason: this.reason,
      portBindings: this.portBindings.map((b) => ({ ...b })),
      healthStatus: this.healthStatus,
      healthOutput: this.healthOutput,
      healthCheckedAt: this.healthCheckedAt,
      restartCount: this.restartCount,
      lastRestartedAt: this.lastRestartedAt,
      lastExitCode: this.lastExitCode,
      gpuIds: [...this.gpuIds],
      essential: this.essential,
      pulledAt: this.pulledAt,
      createdAt: this.createdAt,
      startedAt: this.startedAt,
      finishedAt: this.finishedAt,
    };
  }
}

function sameValue(a: unknown, b: unknown): boolean {
  return a instanceof Date && b instanceof Date ? a.getTime() === b.getTime() : a === b;
}
