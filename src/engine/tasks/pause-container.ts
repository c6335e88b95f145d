import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import type { EngineSettings } from '../engine-settings.js';
import { canonicalImage, type ImageManager } from '../images/image-manager.js';
import type { ContainerDefinition, TaskDefinition } from '../model/task-definition.js';
import type { WarmHolders } from '../network/task-network.js';
import { retryTransient } from '../retry.js';
import { hasTaskLimits } from './container-actions.js';
import { LABELS } from './labels.js';

/**
 * The pause container of a task in a CNI-networked mode: it holds the task's network namespace,
 * which the application containers join. Its name cannot clash with a user's (container names in
 * definitions have no dots). It is an essential container the clients do not see: if it dies,
 * the namespace's holder is gone and the task stops.
 */
export const PAUSE_CONTAINER = 'berth.pause';

/** Pause holds nothing worth a graceful stop. */
const PAUSE_STOP_TIMEOUT_MS = 2000;

export function pauseContainerDefinition(image: string): ContainerDefinition {
  return {
    name: PAUSE_CONTAINER,
    image,
    command: [],
    entrypoint: [],
    environment: {},
    workingDirectory: '',
    user: '',
    cpuUnits: 0,
    memoryMib: 0,
    memoryReservationMib: 0,
    portMappings: [],
    essential: true,
    dependsOn: [],
    stopTimeoutMs: PAUSE_STOP_TIMEOUT_MS,
    labels: {},
    gpuCount: 0,
    pidsLimit: 0,
  };
}

/**
 * Whether a warm pause container (made before the task, the same for every task) can be the
 * task's: not when the task's own pause container would differ, holding its process or IPC
 * namespace, sitting in the task's cgroup, or its network mapping host ports (portmap needs them
 * at ADD).
 */
export function mayTakeWarmPause(task: TaskDefinition): boolean {
  return task.pidMode !== 'task' && task.ipcMode !== 'task' && !hasTaskLimits(task) && task.containers.every((c) => c.portMappings.length === 0);
}

/**
 * Makes and removes the pause containers of the warm pool, on a runtime whose containers can only
 * join another container's namespace (Docker): a pause container started ahead of any task, whose
 * namespace the pool names and runs ADD in, and which a task without needs of its own then takes
 * as its pause container. Such a container carries the agent's label (the runtime's events and
 * lists show it) and the pause container's name label, but no task's.
 */
export class WarmPauseContainers implements WarmHolders {
  constructor(
    private readonly runtime: ContainerRuntime,
    private readonly images: ImageManager,
    private readonly settings: Pick<EngineSettings, 'agentId' | 'defaultPidsLimit' | 'defaultUlimits' | 'transientRetry'>,
    private readonly image: string,
    private readonly shutdown: AbortSignal,
  ) {}

  /** Creates and starts a pause container named `name`; its id and its process (in the namespace to name). */
  async create(name: string): Promise<{ runtimeId: string; pid: number }> {
    const image = canonicalImage(this.image);
    // Like a task's pause container: pulled when missing, never again.
    const prepared = await this.images.prepare(image, undefined, this.shutdown, undefined, 'prefer-cached');
    if (!prepared.ok) throw new Error(`cannot get the pause image: ${prepared.reason}`);
    const retry = <T>(fn: () => Promise<T>) => retryTransient(this.settings.transientRetry, fn, this.shutdown);
    const runtimeId = await retry(() =>
      this.runtime.createContainer({
        name,
        image,
        env: {},
        labels: { [LABELS.agentId]: this.settings.agentId, [LABELS.containerName]: PAUSE_CONTAINER },
        cpuShares: 0,
        memoryBytes: 0,
        memoryReservationBytes: 0,
        network: 'none',
        networkHolder: true,
        ports: [],
        pidsLimit: this.settings.defaultPidsLimit,
        ...(this.settings.defaultUlimits.length > 0 ? { ulimits: this.settings.defaultUlimits.map((u) => ({ name: u.name, soft: u.softLimit, hard: u.hardLimit })) } : {}),
        gpuIds: [],
      }),
    );
    await retry(() => this.runtime.startContainer(runtimeId));
    const info = await retry(() => this.runtime.inspectContainer(runtimeId));
    if (!info.pid) throw new Error(`the pause container "${name}" is not running (${info.state})`);
    return { runtimeId, pid: info.pid };
  }

  /** Removes the pause container named `name`, killing it; succeeds when it is gone. */
  async remove(name: string): Promise<void> {
    await this.runtime.removeContainer(name);
  }
}
