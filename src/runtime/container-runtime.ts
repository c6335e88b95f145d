import type {
  ContainerAttachment,
  ContainerInfo,
  ContainerLogConfiguration,
  ContainerSpec,
  ExecOptions,
  ExecResult,
  ImageInfo,
  LogLine,
  LogOptions,
  ContainerStatsSample,
  PullOptions,
  RegistryAuth,
  RuntimeEvent,
  RuntimeName,
  RuntimeVersion,
  SessionProcess,
  SessionProcessOptions,
  VolumeInfo,
  VolumeSpec,
} from './types.js';

/**
 * The contract between the engine and a container runtime (Docker, containerd).
 *
 * Vocabulary
 * - An *image reference* is what a user writes ("busybox", "127.0.0.1:5000/app:1").
 * - A *container* is identified by the runtime's id; its *name* is chosen by the caller, is
 *   deterministic, and is unique in the runtime, so a caller that lost the id can find it again.
 * - *Labels* are the only metadata the caller can rely on reading back.
 *
 * Lifecycle of a container: create → start → (exit) → remove. `stopContainer` makes a running
 * container exit. A container never restarts by itself.
 *
 * Rules every method follows
 * - Every call has a timeout; when it passes, the call fails with kind "timeout".
 * - Every failure is a RuntimeError with a kind (see errors.ts); a daemon that cannot be reached
 *   gives "unavailable".
 * - Calls are safe to repeat: stopping a stopped container and removing a removed one succeed.
 */
export interface ContainerRuntime {
  readonly name: RuntimeName;
  /** Whether network mode "bridge" (with port mappings) is the runtime's own; otherwise CNI provides it. */
  readonly hasBridgeNetwork: boolean;
  /**
   * Whether a container can join a network namespace given by its path (network "namespace"),
   * not only another container's.
   */
  readonly joinsNetworkNamespaces: boolean;
  /** Whether a container without a terminal can have an open standard input (interactive). */
  readonly opensStdinWithoutTerminal: boolean;

  /**
   * Why the runtime cannot honour a log configuration (naming the option, if one is the cause),
   * or undefined when it can or leaves the judgement to its daemon at create. Secret options are
   * given with placeholder values.
   */
  logConfigurationProblem(config: ContainerLogConfiguration): { option?: string; problem: string } | undefined;
  /** Log messages the runtime's log forwarding dropped (destination down or slow), over the containers it still has. */
  logMessagesDropped(): Promise<number>;

  /** Checks that the daemon answers; returns its version. */
  ping(): Promise<RuntimeVersion>;

  /**
   * Pulls an image. Fails with "unauthorized" when the registry refuses the credentials (or needs
   * some), "not-found" when the registry does not have the image.
   */
  pullImage(reference: string, options?: PullOptions): Promise<ImageInfo>;
  /** Fails with "not-found" when the image is not present. */
  inspectImage(reference: string): Promise<ImageInfo>;
  /**
   * Asks the image's registry whether these credentials (or none) may pull the image, without
   * pulling it: resolves when they may; fails with "unauthorized" when the registry refuses them,
   * "not-found" when it does not show them the image, and "unavailable" or "timeout" when it cannot
   * be asked.
   */
  checkImageAccess(reference: string, auth: RegistryAuth | undefined, timeoutMs?: number): Promise<void>;
  /** Removes an image; succeeds when it is already gone. */
  removeImage(reference: string): Promise<void>;

  /**
   * Creates a volume; one of that name that exists already is kept as it is. Fails with "invalid"
   * when the runtime cannot honour the driver or its options.
   */
  createVolume(spec: VolumeSpec): Promise<void>;
  /** Fails with "not-found". */
  inspectVolume(name: string): Promise<VolumeInfo>;
  /** Removes a volume and its data; succeeds when it is already gone; "conflict" while a container uses it. */
  removeVolume(name: string): Promise<void>;
  /** Every volume that carries all of the given labels. */
  listVolumes(labels: Record<string, string>): Promise<VolumeInfo[]>;

  /**
   * Creates a container from an image that is present. Returns its id. Fails with
   * "already-exists" when a container of that name exists.
   */
  createContainer(spec: ContainerSpec): Promise<string>;
  /**
   * Does what of a start can go before the container's network is ready, so that `startContainer`
   * has less left to do: on containerd, creates the task (the process's namespaces, mounts and
   * cgroup, in the network namespace of its spec, which must exist), without running the process.
   * Nothing on a runtime where creating the container did it all (Docker). Preparing a prepared or
   * running container succeeds; stopping a prepared container undoes the preparation.
   */
  prepareStart(id: string): Promise<void>;
  /** Starts a created container. Starting a running container succeeds. */
  startContainer(id: string): Promise<void>;
  /**
   * Sends the container's stop signal, waits up to `timeoutMs` for it to exit, then kills it.
   * Resolves once it has exited; succeeds when it is not running.
   */
  stopContainer(id: string, timeoutMs: number): Promise<void>;
  /** Removes a container, killing it first if it runs. Succeeds when it is already gone. */
  removeContainer(id: string): Promise<void>;
  /** Accepts an id or a name. Fails with "not-found". */
  inspectContainer(idOrName: string): Promise<ContainerInfo>;
  /** Every container (running or not) that carries all of the given labels. */
  listContainers(labels: Record<string, string>): Promise<ContainerInfo[]>;
  /** Runs a command in a running container and waits for it. */
  exec(id: string, command: string[], options?: ExecOptions): Promise<ExecResult>;
  /**
   * Starts a command in a running container whose standard streams the caller holds (an
   * interactive exec), resolving once it runs. Fails with "invalid" for a user, group or working
   * directory the container cannot give, "conflict" when the container is not running.
   */
  openSession(id: string, command: string[], options: SessionProcessOptions): Promise<SessionProcess>;
  /**
   * Attaches to a running container's own standard streams; with `stdin`, to its input too, which
   * needs a container created with `openStdin` (and, on containerd, `tty`). Fails with "conflict"
   * when it is not running, "invalid" when its input cannot be written.
   */
  attach(id: string, options: { stdin: boolean }): Promise<ContainerAttachment>;
  /**
   * Ends the exec processes (interactive sessions, commands) that an earlier agent left running
   * in containers carrying all of these labels: their callers went with it. Each is killed with
   * what it started; processes this agent started are left alone. Returns how many were ended.
   */
  endLeftoverExecs(labels: Record<string, string>): Promise<number>;
  /**
   * The container's output, line by line in the order written, each line with its stream and
   * time. Resolves once the container is found (fails with "not-found" otherwise). With `follow`,
   * the iterable goes on with new lines until the container's process exits or the signal aborts.
   */
  logs(id: string, options: LogOptions): Promise<AsyncIterable<LogLine>>;
  /** One sample of a running container's resource use. Fails with "conflict" when it is not running. */
  stats(id: string): Promise<ContainerStatsSample>;

  /**
   * Subscribes to container events (start, exit with code, oom) for containers carrying all of
   * the given labels. Resolves once the subscription is in place: every event after that moment
   * is delivered, until `signal` aborts. The iterable throws a RuntimeError when the stream
   * breaks; the caller subscribes again and re-inspects what it may have missed in between.
   */
  events(labels: Record<string, string>, signal: AbortSignal): Promise<AsyncIterable<RuntimeEvent>>;

  /**
   * The host's address on the runtime's own bridge, as containers in bridge mode reach the host
   * (Docker's docker0 gateway). Only runtimes with a bridge of their own have it.
   */
  bridgeGateway?(): Promise<string | undefined>;

  /** Releases the connection to the daemon (the agent is shutting down). */
  close?(): void;
}
