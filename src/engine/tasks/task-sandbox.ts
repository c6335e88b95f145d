import type { Logger } from 'pino';
import type { ContainerRuntime } from '../../runtime/container-runtime.js';
import type { ActionOutcome, ContainerActions } from './container-actions.js';
import type { SpecInputs } from './container-spec.js';
import type { EventChange } from '../events/events.js';
import type { ManagedContainer } from './managed-container.js';
import { bareAddress, type TaskMetadataUris } from '../network/metadata-uris.js';
import type { TaskDefinition } from '../model/task-definition.js';
import type { CniPortMapping, TakenHolder, TaskNetworking } from '../network/task-network.js';
import type { TaskNetworkStatus } from '../model/task-snapshot.js';

/** What a step of the sandbox's network did. */
export type SandboxOutcome =
  { kind: 'network-ready'; status: TaskNetworkStatus } | { kind: 'network-failed'; reason: string } | { kind: 'network-released' } | { kind: 'network-release-failed'; reason: string };

/** What the task does after a sandbox outcome: record an event, stop the task. */
export interface SandboxVerdict {
  event?: EventChange;
  stopReason?: string;
}

export interface SandboxDeps {
  /**
   * Set for a task whose network CNI provides (mode task, or bridge on a runtime without a bridge).
   * With a pause container, it holds the namespace the other containers join; without, the
   * sandbox makes the namespace and the containers join it by its path.
   */
  cni?: { networking: TaskNetworking; mayTakeWarmPause?: boolean };
  /** The task metadata endpoint, when the agent serves one. */
  metadata?: TaskMetadataUris;
  runtime: ContainerRuntime;
  actions: ContainerActions;
  log: Logger;
  /** Something the task's state machine asks about changed outside a step's outcome. */
  changed: () => void;
}

/**
 * The task's sandbox: the namespaces its containers share and what reaches them there. For a task
 * whose network CNI provides, the sandbox sets the network up (or CHECKs one an earlier run of the
 * agent set up), tells when the containers may be created and started and how they join, and tears
 * the network down after they stopped, before the task counts as stopped. The network namespace is
 * made as soon as the task has its host resources, while its images are pulled and its containers
 * created; where a pause container holds it instead, once the pause container runs, and the pause
 * container goes after the teardown. It also gives each container the metadata endpoint's URI on
 * its network. The task's state machine asks; it does not branch.
 */
export class TaskSandbox {
  /** The container holding the namespaces, for a CNI-networked task that has one. */
  readonly pause: ManagedContainer | undefined;
  /** A network step is in flight. */
  busy = false;
  private current: TaskNetworkStatus | undefined;
  /** The network was set up by an earlier run of the agent: CHECK it once before relying on it. */
  private toCheck = false;
  /** Teardown ran (or failed and was given up for now): the pause container may stop. */
  private tornDown = false;
  /** Set-up began: the namespace the containers join is settled (a warm one has a path of its own). */
  private namespaceSettled = false;
  /** The namespace the containers join exists (its network may not be set up yet). */
  private namespaceMade = false;

  constructor(
    private readonly definition: TaskDefinition,
    private readonly deps: SandboxDeps,
    pause: ManagedContainer | undefined,
    /** The task's containers other than the pause container. */
    private readonly apps: () => ManagedContainer[],
  ) {
    this.pause = pause;
  }

  /** The task's CNI network, once set up. */
  get network(): TaskNetworkStatus | undefined {
    return this.current;
  }

  isPause(container: ManagedContainer): boolean {
    return container === this.pause;
  }

  /**
   * A warm pause container of the pool, its network set up, as the task's pause container (when
   * the task may take one and one is ready); the network is the task's from now on.
   */
  takeWarmPause(): TakenHolder | undefined {
    if (!this.deps.cni?.mayTakeWarmPause || !this.pause || this.current || this.namespaceSettled) return undefined;
    const taken = this.deps.cni.networking.takeWarmHolder(this.definition.id);
    if (!taken) return undefined;
    this.current = taken.status;
    this.namespaceSettled = true;
    this.namespaceMade = true;
    this.deps.log.info({ network: taken.status, pause: taken.runtimeName }, 'task network set up: took a warm pause container');
    return taken;
  }

  /** Takes the network a previous run of the agent set up; it is CHECKed before it is relied on. */
  restore(stillRunning: boolean): void {
    if (!this.deps.cni) return;
    const network = this.deps.cni.networking.restoredState(this.definition.id);
    if (network.kind !== 'ready') return;
    this.current = network.status;
    this.toCheck = stillRunning;
  }

  /**
   * Why a container may not be created yet. One joining the task's namespace is created while the
   * network is set up, once the pause container exists if there is one (Docker names it); with a
   * metadata endpoint it waits for the network, whose gateway its URI names.
   */
  waitBeforeCreate(container: ManagedContainer): string | undefined {
    if (!this.deps.cni || container === this.pause) return undefined;
    if (this.deps.metadata && !this.current) return "setting up the task's network";
    if (!this.pause) return this.current || this.namespaceSettled ? undefined : "setting up the task's network";
    if (this.pause.runtimeId === undefined) return "setting up the task's network";
    // A runtime may need the holder's process to name the namespaces to join (containerd does).
    if ((this.definition.pidMode === 'task' || this.definition.ipcMode === 'task') && this.pause.knownStatus !== 'RUNNING')
      return 'waiting for the pause container, whose namespaces the containers share';
    return undefined;
  }

  /** Why a created container may not start yet: one joining the namespace starts once the network is up. */
  waitBeforeStart(container: ManagedContainer): string | undefined {
    if (!this.deps.cni || container === this.pause) return undefined;
    return this.current ? undefined : "setting up the task's network";
  }

  /**
   * Whether a container waiting for the network may do what of its start can go first (containerd:
   * create its task in the namespace, while ADD runs): once the namespace berth makes exists.
   */
  mayPrepareStart(container: ManagedContainer): boolean {
    return this.deps.cni !== undefined && !this.pause && container !== this.pause && this.namespaceMade && !this.current;
  }

  /**
   * How a container joins the network: the task's namespace by its path, or with a pause container,
   * the pause container alone and the others in its namespace.
   */
  networkOf(container: ManagedContainer): SpecInputs['network'] {
    if (!this.deps.cni) return undefined;
    if (container === this.pause) return { network: 'none', networkHolder: true };
    // The path exists once the network is set up, which is before the container starts.
    const netnsPath = this.deps.cni.networking.namespacePath(this.definition.id);
    if (!this.pause) return { network: 'namespace', networkNamespacePath: netnsPath };
    return { network: 'container', networkContainer: { id: this.pause.runtimeId as string, netnsPath } };
  }

  /** Where the container reaches the metadata endpoint: an address of the host on its network; none without one. */
  metadataUriOf(container: ManagedContainer): string | undefined {
    const metadata = this.deps.metadata;
    if (!metadata || container === this.pause) return undefined;
    let host: string | undefined;
    if (this.deps.cni) host = this.current?.gateways[0] && bareAddress(this.current.gateways[0]);
    else if (this.definition.networkMode === 'host') host = '127.0.0.1';
    else if (this.definition.networkMode === 'bridge') host = metadata.bridgeGateway;
    return host ? metadata.uriFor(this.definition.id, container.name, host) : undefined;
  }

  /**
   * The network step due now, if any: while the task runs (and its pause container, if it has one),
   * set the network up (or CHECK a restored one); once the task stops and every other container
   * stopped, tear it down.
   */
  nextStep(taskRunning: boolean): (() => Promise<SandboxOutcome>) | undefined {
    const pause = this.pause;
    if (!this.deps.cni || this.busy || pause?.busy !== undefined) return undefined;
    const networking = this.deps.cni.networking;
    if (taskRunning) {
      if (pause && (pause.knownStatus !== 'RUNNING' || pause.desiredStatus !== 'RUNNING')) return undefined;
      if (!this.current) return () => this.setUp(networking, pause);
      if (this.toCheck) {
        this.toCheck = false;
        return () => this.check(networking);
      }
      return undefined;
    }
    if (this.tornDown || this.apps().some((c) => c.knownStatus !== 'STOPPED')) return undefined;
    return async () => {
      try {
        await networking.tearDown(this.definition.id);
        return { kind: 'network-released' };
      } catch (error) {
        return { kind: 'network-release-failed', reason: error instanceof Error ? error.message : String(error) };
      }
    };
  }

  /** Takes what a network step did; says what the task does about it. */
  apply(outcome: SandboxOutcome): SandboxVerdict {
    switch (outcome.kind) {
      case 'network-ready':
        if (this.current === outcome.status) return {}; // a CHECK found the network as it was
        this.current = outcome.status;
        this.deps.log.info({ network: outcome.status }, 'task network set up');
        return { event: { type: 'network', network: outcome.status } };
      case 'network-failed':
        this.deps.log.warn({ reason: outcome.reason }, 'task network failed');
        return { stopReason: outcome.reason };
      case 'network-released': {
        this.tornDown = true;
        const hadNetwork = this.current !== undefined;
        this.current = undefined;
        return hadNetwork ? { event: { type: 'network' } } : {};
      }
      case 'network-release-failed':
        // The attachment stays saved: cleanup and the next start of the agent try again.
        this.deps.log.error({ reason: outcome.reason }, 'could not tear down the task network; stopping the task anyway');
        this.tornDown = true;
        return {};
    }
  }

  /** The task runs, or stopped: the warm pool may make namespaces again (it does not compete with a launch). */
  launchEnded(): void {
    this.deps.cni?.networking.launchEnded(this.definition.id);
  }

  /**
   * Whether the task may count as stopped once its own containers have: its network, if it has
   * one, was torn down, and its pause container, if it has one, stopped after that.
   */
  released(): boolean {
    return (!this.deps.cni || this.tornDown) && (!this.pause || this.pause.knownStatus === 'STOPPED');
  }

  /** The pause container goes last: after every other container stopped and the network was torn down. */
  mayStopPause(): boolean {
    return this.tornDown && this.apps().every((c) => c.knownStatus === 'STOPPED');
  }

  /** Stops the pause container and removes it (its stop is not complete until it is gone). */
  async stopPause(pause: ManagedContainer): Promise<ActionOutcome> {
    const outcome = await this.deps.actions.stop(pause);
    const error = await this.deps.actions.remove(pause);
    if (error) this.deps.log.warn({ err: error }, 'could not remove the pause container; cleanup tries again');
    return outcome;
  }

  /** At the task's cleanup: an earlier teardown that failed is tried once more (a failure now is left for the next start). */
  async releaseLeftovers(): Promise<void> {
    const networking = this.deps.cni?.networking;
    if (!networking?.hasAttachment(this.definition.id)) return;
    await networking.tearDown(this.definition.id).catch((error: unknown) => this.deps.log.error({ err: error }, 'could not tear down the task network during cleanup'));
  }

  private async setUp(networking: TaskNetworking, pause: ManagedContainer | undefined): Promise<SandboxOutcome> {
    let holderPid: number | undefined;
    if (pause) {
      const info = await this.deps.runtime.inspectContainer(pause.runtimeId as string).catch(() => undefined);
      if (!info?.pid) return { kind: 'network-failed', reason: "cannot set up the task's network: the pause container is not running" };
      holderPid = info.pid;
    }
    const settingUp = networking.setUp(this.definition, holderPid, this.portMappings(), () => {
      this.namespaceMade = true;
      this.deps.changed();
    });
    this.namespaceSettled = true;
    const result = await settingUp;
    return result.ok ? { kind: 'network-ready', status: result.status } : { kind: 'network-failed', reason: result.reason };
  }

  /**
   * A failed CHECK is reported, not acted on: plugins get CHECK wrong more often than a network
   * breaks (portmap 1.1 fails it for every IPv4-only task, containernetworking/plugins#819).
   */
  private async check(networking: TaskNetworking): Promise<SandboxOutcome> {
    await networking.check(this.definition.id).catch((error: unknown) => this.deps.log.warn({ err: error }, "the task's network failed its CHECK after the agent restarted"));
    return { kind: 'network-ready', status: this.current! };
  }

  /** The task's host port mappings, for portmap. */
  private portMappings(): CniPortMapping[] {
    return this.apps().flatMap((c) =>
      c.definition.portMappings.map((p, i) => ({
        hostPort: c.hostPorts[i] ?? p.hostPort,
        containerPort: p.containerPort,
        protocol: p.protocol,
        ...(p.hostIp ? { hostIP: p.hostIp } : {}),
      })),
    );
  }
}
