import { join } from 'node:path';
import { Container, type ServiceIdentifier } from 'inversify';
import { pino, type Logger } from 'pino';
import type { BerthConfig } from './config/config.js';
import type { EngineSettings } from './engine/engine-settings.js';
import { EventLog } from './engine/events/event-log.js';
import { hostCapacity } from './engine/resources/host-capacity.js';
import { HostResourceManager, type HostCapacity } from './engine/resources/host-resources.js';
import { ImageManager } from './engine/images/image-manager.js';
import { probeHostPort } from './engine/resources/port-probe.js';
import { StateStore } from './engine/store/state-store.js';
import { RuntimeMonitor } from './engine/runtime-monitor.js';
import { TaskEngine, type EngineNetwork } from './engine/task-engine.js';
import { CniInvoker } from './engine/network/cni/cni-invoker.js';
import { NetworkNamespaces } from './engine/network/cni/network-namespaces.js';
import { TaskNetworking } from './engine/network/task-network.js';
import { SubnetMasquerade } from './engine/network/subnet-masquerade.js';
import { ProcessLauncher } from './engine/process-launcher.js';
import type { ContainerRuntime } from './runtime/container-runtime.js';
import { HostTaskCgroups } from './runtime/task-cgroups.js';
import { SecretProviders } from './secrets/secret-providers.js';
import { DockerCredentials } from './secrets/docker-credentials.js';
import { AgentServer } from './server/grpc-server.js';
import { AgentMetrics } from './metrics/agent-metrics.js';
import { InstrumentedRuntime } from './metrics/instrumented-runtime.js';
import { WriteAheadRuntime } from './engine/store/write-ahead-runtime.js';
import { MetricsServer } from './metrics/metrics-server.js';
import { MetadataServer } from './metadata/metadata-server.js';
import { MetadataTokens } from './metadata/metadata-tokens.js';
import { TOKENS } from './tokens.js';
import { standardOutputLog } from './log-output.js';
import type { ClusterMember } from './cluster/agent/cluster-member.js';
import { Membership } from './cluster/membership.js';

/** Longest a Docker credential helper may take to answer. */
const CREDENTIAL_HELPER_TIMEOUT_MS = 30_000;

/**
 * The configured runtime's adapter. Its module is loaded here, on demand, so that an agent never
 * loads the other runtime's (dockerode and its SSH and tar code, or containerd's generated API):
 * it starts sooner.
 */
async function loadRuntime(cfg: BerthConfig, log: Logger): Promise<ContainerRuntime> {
  if (cfg.runtime.kind === 'docker') {
    const { DockerRuntime } = await import('./runtime/docker/docker-runtime.js');
    return new DockerRuntime({ ...cfg.runtime.docker, pullTimeoutMs: cfg.images.pullTimeoutMs, logRotation: cfg.logs, stateDir: join(cfg.dataDir, 'docker') });
  }
  const [{ ContainerdRuntime }, { chooseAppArmorProfile }] = await Promise.all([import('./runtime/containerd/containerd-runtime.js'), import('./runtime/containerd/apparmor.js')]);
  const { apparmorProfile: configured, ...options } = cfg.runtime.containerd;
  const apparmor = chooseAppArmorProfile(configured);
  if (apparmor.warning) log.warn(apparmor.warning);
  return new ContainerdRuntime({ ...options, apparmorProfile: apparmor.profile, pullTimeoutMs: cfg.images.pullTimeoutMs, stateDir: join(cfg.dataDir, 'containerd'), logRotation: cfg.logs });
}

type Resolved<D> = { [K in keyof D]: D[K] extends ServiceIdentifier<infer V> ? V : never };

/** Binds `token` to what `make` builds from `deps`: each binding names its dependencies once, typed. */
function provide<T, D extends Record<string, ServiceIdentifier<unknown>>>(c: Container, token: ServiceIdentifier<T>, deps: D, make: (resolved: Resolved<D>) => T): void {
  const names = Object.keys(deps);
  c.bind(token).toResolvedValue(
    (...values: unknown[]) => make(Object.fromEntries(names.map((name, i) => [name, values[i]])) as Resolved<D>),
    names.map((name) => deps[name]!),
  );
}

/** The composition root: the only place that knows which implementation backs which part. */
export function buildContainer(config: BerthConfig, logger: Logger, capacity: HostCapacity, runtime: ContainerRuntime, clusterMember?: typeof ClusterMember): Container {
  const c = new Container({ defaultScope: 'Singleton' });
  c.bind(TOKENS.config).toConstantValue(config);
  c.bind(TOKENS.logger).toConstantValue(logger);
  provide(c, TOKENS.stateStore, { cfg: TOKENS.config, log: TOKENS.logger }, ({ cfg, log }) => {
    const store = new StateStore(stateStorePath(cfg), { count: cfg.events.retain, maxAgeMs: cfg.events.retainForMs });
    store.on('checkpointFailed', (reason) => log.warn({ component: 'state-store', reason }, 'checkpointing the state store failed'));
    return store;
  });
  provide(c, TOKENS.hostResources, { store: TOKENS.stateStore }, ({ store }) => new HostResourceManager(capacity, probeHostPort, store));
  provide(c, TOKENS.metrics, { log: TOKENS.logger }, ({ log }) => new AgentMetrics(log.child({ component: 'metrics' })));
  provide(c, TOKENS.metricsServer, { cfg: TOKENS.config, metrics: TOKENS.metrics, log: TOKENS.logger }, ({ cfg, metrics, log }) =>
    cfg.metrics.address ? new MetricsServer(metrics, cfg.metrics.address, log.child({ component: 'metrics' })) : undefined,
  );
  // Every runtime call is timed for the metrics, and those that change the host wait until what
  // the agent wrote before them is on the disk; the engine sees the same contract.
  provide(
    c,
    TOKENS.runtime,
    { metrics: TOKENS.metrics, store: TOKENS.stateStore },
    ({ metrics, store }): ContainerRuntime => new WriteAheadRuntime(new InstrumentedRuntime(runtime, metrics), () => store.durable()),
  );
  provide(
    c,
    TOKENS.runtimeMonitor,
    { runtime: TOKENS.runtime, cfg: TOKENS.config, log: TOKENS.logger },
    ({ runtime, cfg, log }) =>
      new RuntimeMonitor(runtime, { checkIntervalMs: cfg.engine.runtimeCheckIntervalMs, initialBackoffMs: 500, maxBackoffMs: 30_000 }, log.child({ component: 'runtime-monitor' })),
  );
  provide(c, TOKENS.images, { runtime: TOKENS.runtime, cfg: TOKENS.config, log: TOKENS.logger, store: TOKENS.stateStore }, ({ runtime, cfg, log, store }) => {
    const { pullBehavior, registryCredentials, maxConcurrentPulls, pullTimeoutMs, pullInactivityTimeoutMs, accessCheckValidityMs, cleanup } = cfg.images;
    // The pause image is never cleaned up, as kubelet keeps its sandbox image: tasks need it at any time.
    const settings = {
      pullBehavior,
      registryCredentials,
      maxConcurrentPulls,
      pullTimeoutMs,
      pullInactivityTimeoutMs,
      accessCheckValidityMs,
      cleanup: { ...cleanup, exclude: [...cleanup.exclude, cfg.network.pauseImage] },
    };
    const { dockerConfig, credentialHelperDirs, credentialCacheTtlMs } = cfg.images;
    const helpers = dockerConfig
      ? new DockerCredentials(
          { configFile: dockerConfig, helperDirs: credentialHelperDirs, cacheTtlMs: credentialCacheTtlMs, helperTimeoutMs: CREDENTIAL_HELPER_TIMEOUT_MS },
          log.child({ component: 'credentials' }),
        )
      : undefined;
    return new ImageManager(runtime, settings, log.child({ component: 'images' }), store, undefined, helpers);
  });
  provide(
    c,
    TOKENS.eventLog,
    { store: TOKENS.stateStore, cfg: TOKENS.config },
    ({ store, cfg }) => new EventLog(store.events, { maxWatcherLag: cfg.events.maxWatcherLag, recentEvents: cfg.events.keepInMemory, durable: () => store.durable() }),
  );
  provide(c, TOKENS.engineSettings, { cfg: TOKENS.config }, ({ cfg }): EngineSettings => ({
    agentId: cfg.agentId,
    defaultStopTimeoutMs: cfg.engine.defaultStopTimeoutMs,
    taskCleanupWaitMs: cfg.engine.taskCleanupWaitMs,
    defaultPidsLimit: cfg.engine.defaultPidsLimit,
    defaultUlimits: cfg.engine.defaultUlimits,
    pullProgressIntervalMs: cfg.images.progressIntervalMs,
    restartBackoff: cfg.engine.restartBackoff,
    relistIntervalMs: cfg.engine.relistIntervalMs,
    orphanGracePeriodMs: cfg.engine.orphanGracePeriodMs,
    sessionIdleTimeoutMs: cfg.engine.sessionIdleTimeoutMs,
    transientRetry: { attempts: 5, initialDelayMs: 1000, maxDelayMs: 5000 },
    security: cfg.security,
    limits: cfg.limits,
  }));
  provide(c, TOKENS.metadata, { cfg: TOKENS.config, log: TOKENS.logger }, ({ cfg, log }) => {
    const { address, requestsPerSecond, burst } = cfg.metadata;
    if (!address) return undefined;
    const tokens = new MetadataTokens(join(cfg.dataDir, 'metadata.key'));
    return new MetadataServer(tokens, { address, agentId: cfg.agentId, requestsPerSecond, burst }, log.child({ component: 'metadata' }));
  });
  provide(c, TOKENS.network, { cfg: TOKENS.config, store: TOKENS.stateStore, log: TOKENS.logger, metadata: TOKENS.metadata }, ({ cfg, store, log, metadata }): EngineNetwork => {
    const { cni } = cfg.network;
    const launcher = new ProcessLauncher();
    const invoker = new CniInvoker({ pluginDirs: cni.pluginDirs, timeoutMs: cni.pluginTimeoutMs, maxParallel: cni.maxParallelPlugins, launcher });
    const networking = new TaskNetworking(
      {
        agentId: cfg.agentId,
        list: cni.config,
        ifName: cni.interfaceName,
        warmPoolSize: cni.warmPoolSize,
        listWithoutPorts: cni.withoutPorts,
        masquerade: cni.masquerade && new SubnetMasquerade(cni.masquerade, cni.pluginTimeoutMs, launcher),
      },
      invoker,
      new NetworkNamespaces(cni.pluginTimeoutMs, launcher),
      store,
      log.child({ component: 'network' }),
    );
    return { networking, pauseImage: cfg.network.pauseImage, metadata };
  });
  provide(
    c,
    TOKENS.engine,
    {
      runtime: TOKENS.runtime,
      monitor: TOKENS.runtimeMonitor,
      events: TOKENS.eventLog,
      store: TOKENS.stateStore,
      settings: TOKENS.engineSettings,
      resources: TOKENS.hostResources,
      images: TOKENS.images,
      network: TOKENS.network,
      cfg: TOKENS.config,
      log: TOKENS.logger,
    },
    ({ cfg, ...deps }) => new TaskEngine({ ...deps, taskCgroups: new HostTaskCgroups(), secrets: new SecretProviders(cfg.secrets.providers), log: deps.log.child({ component: 'engine' }) }),
  );
  provide(c, TOKENS.membership, { cfg: TOKENS.config }, ({ cfg }) => cfg.cluster && new Membership(cfg.cluster.prefix, cfg.cluster.advertiseAddress));
  provide(
    c,
    TOKENS.clusterMember,
    { cfg: TOKENS.config, engine: TOKENS.engine, events: TOKENS.eventLog, membership: TOKENS.membership, log: TOKENS.logger },
    ({ cfg, engine, events, membership, log }) =>
      cfg.cluster && membership && clusterMember && new clusterMember(cfg.cluster, cfg.dataDir, cfg.agentId, engine, events, membership, log.child({ component: 'cluster' })),
  );
  provide(
    c,
    TOKENS.server,
    { engine: TOKENS.engine, monitor: TOKENS.runtimeMonitor, cfg: TOKENS.config, log: TOKENS.logger, metrics: TOKENS.metrics, membership: TOKENS.membership },
    ({ engine, monitor, cfg, log, metrics, membership }) => new AgentServer(engine, monitor, cfg, log.child({ component: 'server' }), metrics, membership),
  );
  return c;
}

/** The agent's parts, typed, for the agent itself, tools, tests and benches. */
export interface AgentParts {
  config: BerthConfig;
  runtime: ContainerRuntime;
  store: StateStore;
  eventLog: EventLog;
  images: ImageManager;
  engine: TaskEngine;
  server: AgentServer;
  metrics: AgentMetrics;
  metricsServer: MetricsServer | undefined;
  metadata: MetadataServer | undefined;
  clusterMember: ClusterMember | undefined;
  membership: Membership | undefined;
}

function partsOf(c: Container): AgentParts {
  return {
    config: c.get(TOKENS.config),
    runtime: c.get(TOKENS.runtime),
    store: c.get(TOKENS.stateStore),
    eventLog: c.get(TOKENS.eventLog),
    images: c.get(TOKENS.images),
    engine: c.get(TOKENS.engine),
    server: c.get(TOKENS.server),
    metrics: c.get(TOKENS.metrics),
    metricsServer: c.get(TOKENS.metricsServer),
    metadata: c.get(TOKENS.metadata),
    clusterMember: c.get(TOKENS.clusterMember),
    membership: c.get(TOKENS.membership),
  };
}

/** The state store's file under the data directory. */
export function stateStorePath(config: Pick<BerthConfig, 'dataDir'>): string {
  return join(config.dataDir, 'berth.db');
}

/** A running agent: engine and server started; `stop` leaves the containers running. */
export interface Agent {
  /** Every part, for tools and tests that need one directly. */
  parts: AgentParts;
  engine: TaskEngine;
  server: AgentServer;
  stop(): Promise<void>;
}

/** The agent's logger: to `destination`, by default the standard output (see log-output.ts). */
export function createLogger(config: Pick<BerthConfig, 'logLevel' | 'agentId'>, destination: pino.DestinationStream = standardOutputLog()): Logger {
  return pino({ level: config.logLevel, base: { agentId: config.agentId } }, destination);
}

export async function startAgent(config: BerthConfig, logger: Logger = createLogger(config)): Promise<Agent> {
  const ownPorts = [config.grpc.tcpAddress, config.metrics.address, config.metadata.address].flatMap((address) => (address ? [Number(address.split(':').pop())] : []));
  // Side by side: the host's capacity (nvidia-smi on a GPU host), the runtime's adapter and, only
  // for an agent in a fleet, etcd's client.
  const [capacity, runtimeAdapter, member] = await Promise.all([
    hostCapacity(config.resources, ownPorts),
    loadRuntime(config, logger),
    config.cluster ? import('./cluster/agent/cluster-member.js').then((m) => m.ClusterMember) : undefined,
  ]);
  logger.info({ capacity }, 'host capacity for tasks');
  const parts = partsOf(buildContainer(config, logger, capacity, runtimeAdapter, member));
  const { store, engine, server, metrics, metricsServer, metadata: metadataServer, runtime } = parts;
  await engine.start();
  metrics.follow(engine, parts.eventLog, parts.store, parts.membership);
  const abandon = async (error: unknown, serverStarted: boolean): Promise<never> => {
    // A server that did not start owns no socket: the one in the way may be another berth's.
    if (serverStarted) await server.stop();
    await parts.clusterMember?.stop();
    metrics.stop();
    await engine.stop();
    store.close();
    throw error;
  };
  await server.start().catch((error: unknown) => abandon(error, false));
  await metricsServer?.start().catch((error: unknown) => abandon(error, true));
  await metadataServer
    ?.start({ listTasks: () => engine.listTasks(), findTask: (id) => engine.findTask(id), sample: (id, name) => engine.containers.sample(id, name) })
    .catch(async (error: unknown) => {
      await metricsServer?.stop();
      return abandon(error, true);
    });
  // The fleet last: the agent serves its own API before it takes work from etcd.
  parts.clusterMember?.start();
  logger.info({ runtime: config.runtime.kind, socket: config.grpc.socketPath, cluster: config.cluster?.endpoints }, 'berth started');
  return {
    parts,
    engine,
    server,
    async stop() {
      await parts.clusterMember?.stop();
      await metadataServer?.stop();
      await metricsServer?.stop();
      await server.stop();
      metrics.stop();
      await engine.stop();
      store.close();
      runtime.close?.();
      logger.info('berth stopped');
    },
  };
}
