import { Container } from 'inversify';
import { pino, type Logger } from 'pino';
import type { BerthConfig } from './config/config.js';
import type { EngineSettings } from './engine/engine-settings.js';
import { EventLog } from './engine/event-log.js';
import { hostCapacity } from './engine/host-capacity.js';
import { HostResourceManager, type HostCapacity } from './engine/host-resources.js';
import { ImageManager } from './engine/image-manager.js';
import { probeHostPort } from './engine/port-probe.js';
import { MemoryEventStore, type EventStore } from './engine/event-store.js';
import { RuntimeMonitor } from './engine/runtime-monitor.js';
import { TaskEngine } from './engine/task-engine.js';
import type { ContainerRuntime } from './runtime/container-runtime.js';
import { DockerRuntime } from './runtime/docker/docker-runtime.js';
import { AgentServer } from './server/grpc-server.js';
import { TOKENS } from './tokens.js';

/** The composition root: the only place that knows which implementation backs which part. */
export function buildContainer(config: BerthConfig, logger: Logger, capacity: HostCapacity): Container {
  const c = new Container({ defaultScope: 'Singleton' });
  c.bind(TOKENS.hostResources).toConstantValue(new HostResourceManager(capacity, probeHostPort));
  c.bind(TOKENS.config).toConstantValue(config);
  c.bind(TOKENS.logger).toConstantValue(logger);
  c.bind(TOKENS.runtime).toResolvedValue(
    (cfg: BerthConfig): ContainerRuntime => {
      switch (cfg.runtime.kind) {
        case 'docker':
          return new DockerRuntime({ ...cfg.runtime.docker, pullTimeoutMs: cfg.images.pullTimeoutMs });
      }
    },
    [TOKENS.config],
  );
  c.bind(TOKENS.runtimeMonitor).toResolvedValue(
    (runtime: ContainerRuntime, cfg: BerthConfig, log: Logger) =>
      new RuntimeMonitor(runtime, { checkIntervalMs: cfg.engine.runtimeCheckIntervalMs, initialBackoffMs: 500, maxBackoffMs: 30_000 }, log.child({ component: 'runtime-monitor' })),
    [TOKENS.runtime, TOKENS.config, TOKENS.logger],
  );
  c.bind(TOKENS.images).toResolvedValue(
    (runtime: ContainerRuntime, cfg: BerthConfig, log: Logger) =>
      new ImageManager(
        runtime,
        {
          pullBehavior: cfg.images.pullBehavior,
          maxConcurrentPulls: cfg.images.maxConcurrentPulls,
          pullTimeoutMs: cfg.images.pullTimeoutMs,
          pullInactivityTimeoutMs: cfg.images.pullInactivityTimeoutMs,
          cleanup: cfg.images.cleanup,
        },
        log.child({ component: 'images' }),
      ),
    [TOKENS.runtime, TOKENS.config, TOKENS.logger],
  );
  c.bind(TOKENS.eventStore).toResolvedValue((cfg: BerthConfig): EventStore => new MemoryEventStore(cfg.events.retain), [TOKENS.config]);
  c.bind(TOKENS.eventLog).toResolvedValue(
    (store: EventStore, cfg: BerthConfig) => new EventLog(store, { maxWatcherLag: cfg.events.maxWatcherLag }),
    [TOKENS.eventStore, TOKENS.config],
  );
  c.bind(TOKENS.engineSettings).toResolvedValue(
    (cfg: BerthConfig): EngineSettings => ({
      agentId: cfg.agentId,
      defaultStopTimeoutMs: cfg.engine.defaultStopTimeoutMs,
      taskCleanupWaitMs: cfg.engine.taskCleanupWaitMs,
      defaultPidsLimit: cfg.engine.defaultPidsLimit,
      pullProgressIntervalMs: cfg.images.progressIntervalMs,
      restartBackoff: cfg.engine.restartBackoff,
      relistIntervalMs: cfg.engine.relistIntervalMs,
      transientRetry: { attempts: 5, initialDelayMs: 1000, maxDelayMs: 5000 },
    }),
    [TOKENS.config],
  );
  c.bind(TOKENS.engine).toResolvedValue(
    (runtime: ContainerRuntime, monitor: RuntimeMonitor, events: EventLog, settings: EngineSettings, resources: HostResourceManager, images: ImageManager, log: Logger) =>
      new TaskEngine(runtime, monitor, events, settings, resources, images, log.child({ component: 'engine' })),
    [TOKENS.runtime, TOKENS.runtimeMonitor, TOKENS.eventLog, TOKENS.engineSettings, TOKENS.hostResources, TOKENS.images, TOKENS.logger],
  );
  c.bind(TOKENS.server).toResolvedValue(
    (engine: TaskEngine, monitor: RuntimeMonitor, cfg: BerthConfig, log: Logger) => new AgentServer(engine, monitor, cfg, log.child({ component: 'server' })),
    [TOKENS.engine, TOKENS.runtimeMonitor, TOKENS.config, TOKENS.logger],
  );
  return c;
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
  const tcpPort = config.grpc.tcpAddress ? Number(config.grpc.tcpAddress.split(':').pop()) : undefined;
  const capacity = await hostCapacity(config.resources, tcpPort);
  logger.info({ capacity }, 'host capacity for tasks');
  const container = buildContainer(config, logger, capacity);
  const engine = container.get(TOKENS.engine);
  const server = container.get(TOKENS.server);
  await engine.start();
  try {
    await server.start();
  } catch (error) {
    await engine.stop();
    throw error;
  }
  logger.info({ runtime: config.runtime.kind, socket: config.grpc.socketPath }, 'berth started');
  return {
    container,
    engine,
    server,
    async stop() {
      await server.stop();
      await engine.stop();
      logger.info('berth stopped');
    },
  };
}
