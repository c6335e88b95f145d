import { join } from 'node:path';
import { Container } from 'inversify';
import { pino, type Logger } from 'pino';
import type { BerthConfig } from './config/config.js';
import type { EngineSettings } from './engine/engine-settings.js';
import { EventLog } from './engine/events/event-log.js';
import { chooseAppArmorProfile } from './runtime/containerd/apparmor.js';
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
import type { ContainerRuntime } from './runtime/container-runtime.js';
import { ContainerdRuntime } from './runtime/containerd/containerd-runtime.js';
import { DockerRuntime } from './runtime/docker/docker-runtime.js';
import { AgentServer } from './server/grpc-server.js';
import { AgentMetrics } from './metrics/agent-metrics.js';
import { InstrumentedRuntime } from './metrics/instrumented-runtime.js';
import { MetricsServer } from './metrics/metrics-server.js';
import { MetadataServer } from './metadata/metadata-server.js';
import { MetadataTokens } from './metadata/metadata-tokens.js';
import { TOKENS } from './tokens.js';

/** The composition root: the only place that knows which implementation backs which part. */
function containerdRuntime(cfg: BerthConfig, log: Logger): ContainerdRuntime {
  const { apparmorProfile: configured, ...options } = cfg.runtime.containerd;
  const apparmor = chooseAppArmorProfile(configured);
  if (apparmor.warning) log.warn(apparmor.warning);
  return new ContainerdRuntime({ ...options, apparmorProfile: apparmor.profile, pullTimeoutMs: cfg.images.pullTimeoutMs, stateDir: join(cfg.dataDir, 'containerd'), logRotation: cfg.logs });
}

export function buildContainer(config: BerthConfig, logger: Logger, capacity: HostCapacity): Container {
  const c = new Container({ defaultScope: 'Singleton' });
  c.bind(TOKENS.stateStore).toResolvedValue((cfg: BerthConfig) => new StateStore(stateStorePath(cfg), { count: cfg.events.retain, maxAgeMs: cfg.events.retainForMs }), [TOKENS.config]);
  c.bind(TOKENS.hostResources).toResolvedValue((store: StateStore) => new HostResourceManager(capacity, probeHostPort, store), [TOKENS.stateStore]);
  c.bind(TOKENS.config).toConstantValue(config);
  c.bind(TOKENS.logger).toConstantValue(logger);
  c.bind(TOKENS.metrics).toResolvedValue((log: Logger) => new AgentMetrics(log.child({ component: 'metrics' })), [TOKENS.logger]);
  c.bind(TOKENS.runtime).toResolvedValue(
    (cfg: BerthConfig, metrics: AgentMetrics, log: Logger): ContainerRuntime => {
      const runtime = cfg.runtime.kind === 'docker' ? new DockerRuntime({ ...cfg.runtime.docker, pullTimeoutMs: cfg.images.pullTimeoutMs, logRotation: cfg.logs }) : containerdRuntime(cfg, log);
      // Every runtime call is timed for the metrics; the engine sees the same contract.
      return new InstrumentedRuntime(runtime, metrics);
    },
    [TOKENS.config, TOKENS.metrics, TOKENS.logger],
  );
  c.bind(TOKENS.runtimeMonitor).toResolvedValue(
    (runtime: ContainerRuntime, cfg: BerthConfig, log: Logger) =>
      new RuntimeMonitor(runtime, { checkIntervalMs: cfg.engine.runtimeCheckIntervalMs, initialBackoffMs: 500, maxBackoffMs: 30_000 }, log.child({ component: 'runtime-monitor' })),
    [TOKENS.runtime, TOKENS.config, TOKENS.logger],
  );
  c.bind(TOKENS.images).toResolvedValue(
    (runtime: ContainerRuntime, cfg: BerthConfig, log: Logger, store: StateStore) =>
      new ImageManager(
        runtime,
        {
          pullBehavior: cfg.images.pullBehavior,
          registryCredentials: cfg.images.registryCredentials,
          maxConcurrentPulls: cfg.images.maxConcurrentPulls,
          pullTimeoutMs: cfg.images.pullTimeoutMs,
          pullInactivityTimeoutMs: cfg.images.pullInactivityTimeoutMs,
          accessCheckValidityMs: cfg.images.accessCheckValidityMs,
          cleanup: cfg.images.cleanup,
        },
        log.child({ component: 'images' }),
        store,
      ),
    [TOKENS.runtime, TOKENS.config, TOKENS.logger, TOKENS.stateStore],
  );
  c.bind(TOKENS.eventLog).toResolvedValue((store: StateStore, cfg: BerthConfig) => new EventLog(store.events, { maxWatcherLag: cfg.events.maxWatcherLag }), [TOKENS.stateStore, TOKENS.config]);
  c.bind(TOKENS.engineSettings).toResolvedValue(
    (cfg: BerthConfig): EngineSettings => ({
      agentId: cfg.agentId,
      defaultStopTimeoutMs: cfg.engine.defaultStopTimeoutMs,
      taskCleanupWaitMs: cfg.engine.taskCleanupWaitMs,
      defaultPidsLimit: cfg.engine.defaultPidsLimit,
      pullProgressIntervalMs: cfg.images.progressIntervalMs,
      restartBackoff: cfg.engine.restartBackoff,
      relistIntervalMs: cfg.engine.relistIntervalMs,
      orphanGracePeriodMs: cfg.engine.orphanGracePeriodMs,
      transientRetry: { attempts: 5, initialDelayMs: 1000, maxDelayMs: 5000 },
      security: cfg.security,
      limits: cfg.limits,
    }),
    [TOKENS.config],
  );
  c.bind(TOKENS.metadata).toResolvedValue(
    (cfg: BerthConfig, log: Logger) => {
      const { address, requestsPerSecond, burst } = cfg.metadata;
      if (!address) return undefined;
      const tokens = new MetadataTokens(join(cfg.dataDir, 'metadata.key'));
      return new MetadataServer(tokens, { address, agentId: cfg.agentId, requestsPerSecond, burst }, log.child({ component: 'metadata' }));
    },
    [TOKENS.config, TOKENS.logger],
  );
  c.bind(TOKENS.network).toResolvedValue(
    (cfg: BerthConfig, store: StateStore, log: Logger, metadata: MetadataServer | undefined): EngineNetwork => {
      const { cni } = cfg.network;
      const invoker = new CniInvoker({ pluginDirs: cni.pluginDirs, timeoutMs: cni.pluginTimeoutMs });
      const networking = new TaskNetworking(
        { agentId: cfg.agentId, list: cni.config, ifName: cni.interfaceName },
        invoker,
        new NetworkNamespaces(cni.pluginTimeoutMs),
        store,
        log.child({ component: 'network' }),
      );
      return { networking, pauseImage: cfg.network.pauseImage, metadata };
    },
    [TOKENS.config, TOKENS.stateStore, TOKENS.logger, TOKENS.metadata],
  );
  c.bind(TOKENS.engine).toResolvedValue(
    (
      runtime: ContainerRuntime,
      monitor: RuntimeMonitor,
      events: EventLog,
      store: StateStore,
      settings: EngineSettings,
      resources: HostResourceManager,
      images: ImageManager,
      network: EngineNetwork,
      log: Logger,
    ) => new TaskEngine({ runtime, monitor, events, store, settings, resources, images, network, log: log.child({ component: 'engine' }) }),
    [TOKENS.runtime, TOKENS.runtimeMonitor, TOKENS.eventLog, TOKENS.stateStore, TOKENS.engineSettings, TOKENS.hostResources, TOKENS.images, TOKENS.network, TOKENS.logger],
  );
  c.bind(TOKENS.server).toResolvedValue(
    (engine: TaskEngine, monitor: RuntimeMonitor, cfg: BerthConfig, log: Logger) => new AgentServer(engine, monitor, cfg, log.child({ component: 'server' })),
    [TOKENS.engine, TOKENS.runtimeMonitor, TOKENS.config, TOKENS.logger],
  );
  return c;
}

/** The state store's file under the data directory. */
export function stateStorePath(config: Pick<BerthConfig, 'dataDir'>): string {
  return join(config.dataDir, 'berth.db');
}

/** A running agent: engine and server started; `stop` leaves the containers running. */
export interface Agent {
  /** The composition root's container, for tools and tests that need one part directly. */
  container: Container;
  engine: TaskEngine;
  server: AgentServer;
  stop(): Promise<void>;
}

export function createLogger(config: Pick<BerthConfig, 'logLevel' | 'agentId'>, destination?: pino.DestinationStream): Logger {
  return pino({ level: config.logLevel, base: { agentId: config.agentId } }, destination);
}

export async function startAgent(config: BerthConfig, logger: Logger = createLogger(config)): Promise<Agent> {
  const ownPorts = [config.grpc.tcpAddress, config.metrics.address, config.metadata.address].flatMap((address) => (address ? [Number(address.split(':').pop())] : []));
  const capacity = await hostCapacity(config.resources, ownPorts);
  logger.info({ capacity }, 'host capacity for tasks');
  const container = buildContainer(config, logger, capacity);
  const store = container.get(TOKENS.stateStore);
  const engine = container.get(TOKENS.engine);
  const server = container.get(TOKENS.server);
  const metrics = container.get(TOKENS.metrics);
  await engine.start();
  metrics.follow(engine, container.get(TOKENS.eventLog));
  const metricsServer = config.metrics.address ? new MetricsServer(metrics, config.metrics.address, logger.child({ component: 'metrics' })) : undefined;
  const abandon = async (error: unknown, serverStarted: boolean): Promise<never> => {
    // A server that did not start owns no socket: the one in the way may be another berth's.
    if (serverStarted) await server.stop();
    metrics.stop();
    await engine.stop();
    store.close();
    throw error;
  };
  const metadataServer = container.get(TOKENS.metadata);
  await server.start().catch((error: unknown) => abandon(error, false));
  await metricsServer?.start().catch((error: unknown) => abandon(error, true));
  await metadataServer
    ?.start({ listTasks: () => engine.listTasks(), findTask: (id) => engine.findTask(id), sample: (id, name) => engine.containers.sample(id, name) })
    .catch(async (error: unknown) => {
      await metricsServer?.stop();
      return abandon(error, true);
    });
  logger.info({ runtime: config.runtime.kind, socket: config.grpc.socketPath }, 'berth started');
  return {
    container,
    engine,
    server,
    async stop() {
      await metadataServer?.stop();
      await metricsServer?.stop();
      await server.stop();
      metrics.stop();
      await engine.stop();
      store.close();
      container.get(TOKENS.runtime).close?.();
      logger.info('berth stopped');
    },
  };
}
