import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import { isRuntimeError, RuntimeError } from '../../runtime/errors.js';
import type { ContainerSpec, PortBinding, PullProgress } from '../../runtime/types.js';
import type { TaskCgroups } from '../../runtime/task-cgroups.js';
import { containerSpec, type SpecInputs } from './container-spec.js';
import { neededVolumes, taskScopedVolumes } from './container-mounts.js';
import { resolveEnvironment, resolveLogConfiguration, resolveRegistryCredentials, type SecretResolver } from './container-environment.js';
import { crashPoint } from '../crash-points.js';
import type { EngineSettings } from '../engine-settings.js';
import { canonicalImage, type ImageManager, type PullBehavior } from '../images/image-manager.js';
import { LABELS } from './labels.js';
import { OOM_REASON, type ContainerChange, type ManagedContainer } from './managed-container.js';
import { retryTransient } from '../retry.js';
import type { TaskDefinition } from '../model/task-definition.js';

/** What a runtime call did to a container: move it forward, or stop it with a reason. */
export type ActionOutcome =
  | { kind: 'pulled'; change: ContainerChange }
  | { kind: 'created'; change: ContainerChange & { runtimeId: string } }
  /** `failure`: why the preparation failed; the start does it again and reports its own failure. */
  | { kind: 'start-prepared'; failure?: string }
  | { kind: 'running'; change: ContainerChange }
  | { kind: 'stopped'; change: ContainerChange };

function describe(error: unknown): string {
  return error instanceof RuntimeError ? `${error.kind}: ${error.detail}` : error instanceof Error ? error.message : String(error);
}

const MIB = 1024 * 1024;

/** Whether the task sets cpu or memory for all of its containers together (enforced in a cgroup of its own). */
export function hasTaskLimits(task: TaskDefinition): boolean {
  return task.cpuUnits > 0 || task.memoryMib > 0;
}

/** The host ports a started container is reachable on: the ones berth chose for it. */
function portBindings(task: TaskDefinition, container: ManagedContainer): PortBinding[] {
  if (task.networkMode === 'none') return [];
  return container.definition.portMappings.map((p, i) => ({
    containerPort: p.containerPort,
    hostPort: task.networkMode === 'host' ? p.containerPort : (container.hostPorts[i] ?? p.hostPort),
    protocol: p.protocol,
    hostIp: p.hostIp,
  }));
}

/**
 * The runtime calls that move one container forward: pull, create, start, stop. Each returns the
 * outcome instead of changing the container, so the managed task applies every change in one place.
 */
export class ContainerActions {
  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly images: ImageManager,
    private readonly settings: EngineSettings,
    private readonly cgroups: TaskCgroups,
    private readonly secrets: SecretResolver,
  ) {}

  private retry<T>(fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    return retryTransient(this.settings.transientRetry, fn, signal);
  }

  /** Makes the image present, by the image manager's pull behaviour unless `behavior` overrides it. */
  async pull(task: TaskDefinition, container: ManagedContainer, signal: AbortSignal, onProgress?: (progress: PullProgress) => void, behavior?: PullBehavior): Promise<ActionOutcome> {
    const { image, registryCredentials, registryCredentialsParameter } = container.definition;
    let auth = registryCredentials;
    if (registryCredentialsParameter) {
      const resolved = await resolveRegistryCredentials(task, container.definition, registryCredentialsParameter, this.secrets);
      if ('problem' in resolved) return { kind: 'stopped', change: { reason: resolved.problem } };
      auth = resolved.auth;
    }
    const result = await this.images.prepare(canonicalImage(image), auth, signal, onProgress, behavior);
    if (!result.ok) return { kind: 'stopped', change: { reason: result.reason } };
    return { kind: 'pulled', change: { pulledAt: new Date(), ...(result.note ? { reason: result.note } : {}) } };
  }

  /**
   * Creates the container under its deterministic name. A container of that name that carries
   * this task's and agent's labels is adopted (it was created before a crash or a lost answer).
   */
  async create(task: TaskDefinition, container: ManagedContainer, network?: SpecInputs['network'], metadataUri?: string): Promise<ActionOutcome> {
    let resolvedEnvironment: SpecInputs['resolvedEnvironment'];
    if ((container.definition.secrets?.length ?? 0) > 0 || (container.definition.environmentFiles?.length ?? 0) > 0) {
      const resolved = await resolveEnvironment(task, container.definition, this.secrets);
      if ('problem' in resolved) return { kind: 'stopped', change: { reason: resolved.problem } };
      resolvedEnvironment = resolved;
    }
    const log = await resolveLogConfiguration(task, container.definition, this.secrets);
    if ('problem' in log) return { kind: 'stopped', change: { reason: log.problem } };
    let cgroupParent: string | undefined;
    try {
      cgroupParent = await this.provideTaskCgroup(task);
    } catch (error) {
      return { kind: 'stopped', change: { reason: `cannot set up the task's cgroup for its task-level cpu and memory: ${describe(error)}` } };
    }
    const spec = containerSpec(task, container.definition, {
      agentId: this.settings.agentId,
      runtimeName: container.runtimeName,
      hostPorts: container.hostPorts,
      gpuIds: container.gpuIds,
      defaultPidsLimit: this.settings.defaultPidsLimit,
      defaultUlimits: this.settings.defaultUlimits,
      network,
      metadataUri,
      cgroupParent,
      resolvedEnvironment,
      logConfiguration: log.logConfiguration,
    });
    const volumeProblem = await this.provideVolumes(task, spec.volumeMounts);
    if (volumeProblem) return { kind: 'stopped', change: { reason: volumeProblem } };
    try {
      crashPoint('before-create');
      const runtimeId = await this.retry(() => this.runtime.createContainer(spec));
      crashPoint('after-create');
      return { kind: 'created', change: { runtimeId, createdAt: new Date() } };
    } catch (error) {
      if (isRuntimeError(error, 'already-exists')) {
        const existing = await this.retry(() => this.runtime.inspectContainer(spec.name)).catch((inspectError: unknown) => inspectError as Error);
        if (existing instanceof Error) {
          return { kind: 'stopped', change: { reason: `cannot create container: the name "${spec.name}" is taken, and that container cannot be inspected: ${describe(existing)}` } };
        }
        if (existing.labels[LABELS.taskId] === task.id && existing.labels[LABELS.containerName] === container.name && existing.labels[LABELS.agentId] === this.settings.agentId) {
          return { kind: 'created', change: { runtimeId: existing.id, createdAt: existing.createdAt ?? new Date() } };
        }
        return { kind: 'stopped', change: { reason: `cannot create container: the name "${spec.name}" is taken by a container this task does not own` } };
      }
      return { kind: 'stopped', change: { reason: `cannot create container: ${describe(error)}` } };
    }
  }

  /**
   * Makes the runtime volumes the container mounts exist: creates the task's own and the shared
   * ones that may be provisioned, checks that the others are there. The reason it cannot, if any.
   */
  private async provideVolumes(task: TaskDefinition, volumeMounts: ContainerSpec['volumeMounts']): Promise<string | undefined> {
    for (const { spec, mustExist } of neededVolumes(this.settings.agentId, task, volumeMounts)) {
      try {
        if (!mustExist) await this.retry(() => this.runtime.createVolume(spec));
        else await this.retry(() => this.runtime.inspectVolume(spec.name));
      } catch (error) {
        if (mustExist && isRuntimeError(error, 'not-found')) return `shared volume "${spec.name}" does not exist, and its definition does not let berth create it (autoprovision is off)`;
        return `cannot create volume "${spec.name}": ${describe(error)}`;
      }
    }
    return undefined;
  }

  /**
   * Makes the cgroup that holds the containers of a task with task-level cpu or memory and writes
   * those limits (again before each container: idempotent, and it survives agent restarts). Its
   * path, or undefined for a task without task-level limits.
   */
  private async provideTaskCgroup(task: TaskDefinition): Promise<string | undefined> {
    if (!hasTaskLimits(task)) return undefined;
    const path = this.cgroups.pathOf(this.settings.agentId, task.id);
    await this.cgroups.prepare(path, { cpuUnits: task.cpuUnits, memoryBytes: task.memoryMib * MIB });
    return path;
  }

  /** Removes the task's cgroup (at its cleanup, after its containers); the failure, if any, for logging. */
  async removeTaskCgroup(task: TaskDefinition): Promise<unknown> {
    if (!hasTaskLimits(task)) return undefined;
    return this.cgroups.remove(this.cgroups.pathOf(this.settings.agentId, task.id)).then(
      () => undefined,
      (error: unknown) => error,
    );
  }

  /** Removes the task's own volumes (at its cleanup, after its containers); failures are returned for logging. */
  async removeTaskVolumes(task: TaskDefinition): Promise<unknown[]> {
    const errors: unknown[] = [];
    for (const name of taskScopedVolumes(this.settings.agentId, task)) {
      await this.retry(() => this.runtime.removeVolume(name)).catch((error: unknown) => errors.push(error));
    }
    return errors;
  }

  /** Does what of the start can go before the task's network is ready. */
  async prepareStart(container: ManagedContainer): Promise<ActionOutcome> {
    try {
      await this.retry(() => this.runtime.prepareStart(container.runtimeId as string));
      return { kind: 'start-prepared' };
    } catch (error) {
      return { kind: 'start-prepared', failure: describe(error) };
    }
  }

  /** Starts the container. */
  async start(task: TaskDefinition, container: ManagedContainer): Promise<ActionOutcome> {
    const id = container.runtimeId as string;
    try {
      crashPoint('before-start');
      await this.retry(() => this.runtime.startContainer(id));
      crashPoint('after-start');
    } catch (error) {
      const info = await this.runtime.inspectContainer(id).catch(() => undefined);
      return { kind: 'stopped', change: { reason: `cannot start container: ${describe(error)}`, exitCode: info?.exitCode } };
    }
    // No inspect here: berth chose the host ports itself, and an exit, however quick, arrives as a
    // runtime event (or at the next synchronization) and is applied by the task.
    return { kind: 'running', change: { startedAt: new Date(), portBindings: portBindings(task, container) } };
  }

  /** Stops the container (signal, then SIGKILL after its stop timeout) and reads its exit code. */
  async stop(container: ManagedContainer): Promise<ActionOutcome> {
    const id = container.runtimeId as string;
    const timeoutMs = container.definition.stopTimeoutMs ?? this.settings.defaultStopTimeoutMs;
    try {
      crashPoint('before-stop');
      await this.retry(() => this.runtime.stopContainer(id, timeoutMs));
      crashPoint('after-stop');
      const info = await this.retry(() => this.runtime.inspectContainer(id));
      return { kind: 'stopped', change: { exitCode: info.exitCode, finishedAt: info.finishedAt, reason: info.oomKilled ? OOM_REASON : undefined } };
    } catch (error) {
      if (isRuntimeError(error, 'not-found')) return { kind: 'stopped', change: { reason: 'the container vanished from the runtime' } };
      return { kind: 'stopped', change: { reason: `cannot stop container, marked stopped: ${describe(error)}` } };
    }
  }

  /** Removes the container; failures are returned for logging, never thrown. */
  async remove(container: ManagedContainer): Promise<unknown> {
    if (!container.runtimeId) return undefined;
    const id = container.runtimeId;
    return this.retry(() => this.runtime.removeContainer(id)).then(
      () => crashPoint('after-remove'),
      (error: unknown) => error,
    );
  }
}
