import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadConfig } from '../../src/config/config.js';
import { connect, type BerthClient } from '../../src/client/berth-client.js';
import type { TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { AgentServer } from '../../src/server/grpc-server.js';
import { DEFAULT_REQUEST_LIMITS } from '../../src/engine/admission/request-limits.js';
import { pino } from 'pino';
import type { EngineSettings } from '../../src/engine/engine-settings.js';
import { EventLog } from '../../src/engine/events/event-log.js';
import { HostResourceManager, type HostCapacity } from '../../src/engine/resources/host-resources.js';
import { ImageManager, type ImageSettings } from '../../src/engine/images/image-manager.js';
import { WriteAheadRuntime } from '../../src/engine/store/write-ahead-runtime.js';
import { StateStore } from '../../src/engine/store/state-store.js';
import type { EngineEvent } from '../../src/engine/events/events.js';
import { RuntimeMonitor } from '../../src/engine/runtime-monitor.js';
import { CniInvoker } from '../../src/engine/network/cni/cni-invoker.js';
import { defaultNetworkConfigList, parseNetworkConfigList } from '../../src/engine/network/cni/network-config.js';
import { ProcessLauncher } from '../../src/engine/process-launcher.js';
import { NetworkNamespaces } from '../../src/engine/network/cni/network-namespaces.js';
import { TaskNetworking } from '../../src/engine/network/task-network.js';
import { TaskEngine } from '../../src/engine/task-engine.js';
import type { ContainerDefinitionInput, TaskDefinitionInput } from '../../src/engine/admission/task-validation.js';
import { FakeRuntime } from './fake-runtime.js';
import { FakeTaskCgroups } from './fake-task-cgroups.js';
import { FakeSecrets } from './fake-secrets.js';

export interface EngineUnderTest {
  runtime: FakeRuntime;
  taskCgroups: FakeTaskCgroups;
  secrets: FakeSecrets;
  store: StateStore;
  events: EventLog;
  engine: TaskEngine;
  monitor: RuntimeMonitor;
  /** Resolves with the first event (past or future) matching `predicate`; fails after 5 s. */
  waitFor(what: string, predicate: (e: EngineEvent) => boolean): Promise<EngineEvent>;
  stop(): Promise<void>;
}

export const UNIT_CAPACITY: HostCapacity = {
  cpuUnits: 4096,
  memoryMib: 1024,
  reservedTcpPorts: [22],
  reservedUdpPorts: [],
  dynamicPortRange: { first: 50000, last: 50009 },
  gpuIds: ['gpu-0', 'gpu-1'],
};

export const UNIT_IMAGE_SETTINGS: ImageSettings = {
  pullBehavior: 'default',
  maxConcurrentPulls: 2,
  pullTimeoutMs: 60_000,
  pullInactivityTimeoutMs: 60_000,
  accessCheckValidityMs: 600_000,
  cleanup: { enabled: false, intervalMs: 60_000, minimumAgeMs: 0, perCycle: 5, exclude: [] },
};

export async function engineUnderTest(
  options: {
    taskCleanupWaitMs?: number;
    relistIntervalMs?: number;
    orphanGracePeriodMs?: number;
    capacity?: Partial<HostCapacity>;
    images?: Partial<ImageSettings>;
    /** The runtime and store of an earlier engine, to test what a restarted agent does. */
    runtime?: FakeRuntime;
    taskCgroups?: FakeTaskCgroups;
    store?: StateStore;
    security?: Partial<EngineSettings['security']>;
    limits?: Partial<EngineSettings['limits']>;
    /** Stands in for CNI in tests of the engine's rules for CNI-networked tasks. */
    networking?: TaskNetworking;
    /** Events a watcher may fall behind before it is ended (10,000 by default). */
    maxWatcherLag?: number;
    sessionIdleTimeoutMs?: number;
  } = {},
): Promise<EngineUnderTest> {
  const runtime = options.runtime ?? new FakeRuntime();
  const taskCgroups = options.taskCgroups ?? new FakeTaskCgroups();
  const secrets = new FakeSecrets();
  const log = pino({ level: 'silent' });
  const store = options.store ?? new StateStore(':memory:', { count: 10_000, maxAgeMs: 3_600_000 });
  const events = new EventLog(store.events, { maxWatcherLag: options.maxWatcherLag ?? 10_000, recentEvents: 2048, durable: () => store.durable() });
  // As the agent wires it: changes to the host wait until the store's writes are on the disk.
  const writeAhead = new WriteAheadRuntime(runtime, () => store.durable());
  const monitor = new RuntimeMonitor(runtime, { checkIntervalMs: 60_000, initialBackoffMs: 100, maxBackoffMs: 1000 }, log);
  const engine = new TaskEngine({
    runtime: writeAhead,
    monitor,
    events,
    store,
    settings: {
      agentId: 'unit',
      defaultStopTimeoutMs: 1000,
      taskCleanupWaitMs: options.taskCleanupWaitMs ?? 3_600_000,
      defaultPidsLimit: 0,
      defaultUlimits: [],
      pullProgressIntervalMs: 0,
      restartBackoff: { initialMs: 20, maxMs: 80, resetAfterMs: 60_000 },
      relistIntervalMs: options.relistIntervalMs ?? 60_000,
      sessionIdleTimeoutMs: options.sessionIdleTimeoutMs ?? 3_600_000,
      orphanGracePeriodMs: options.orphanGracePeriodMs ?? 60_000,
      transientRetry: { attempts: 2, initialDelayMs: 1, maxDelayMs: 1 },
      limits: { ...DEFAULT_REQUEST_LIMITS, ...options.limits },
      security: {
        allowPrivileged: false,
        allowHostPathMounts: false,
        allowHostNetwork: false,
        allowDevices: false,
        allowUnconfined: false,
        allowHostPid: false,
        allowHostIpc: false,
        ...options.security,
      },
    },
    resources: new HostResourceManager({ ...UNIT_CAPACITY, ...options.capacity }, async () => true, store),
    images: new ImageManager(writeAhead, { ...UNIT_IMAGE_SETTINGS, ...options.images }, log, store),
    network: {
      // Unit tests run no CNI-networked task: no plugin is ever looked for.
      networking:
        options.networking ??
        new TaskNetworking(
          { agentId: 'unit', list: parseNetworkConfigList(defaultNetworkConfigList(), 'unit'), ifName: 'eth0' },
          new CniInvoker({ pluginDirs: [], timeoutMs: 1000, launcher: new ProcessLauncher() }),
          new NetworkNamespaces(1000, new ProcessLauncher()),
          store,
          log,
        ),
      pauseImage: 'registry.test/pause:1',
    },
    taskCgroups,
    secrets,
    log,
  });
  await engine.start();
  return {
    runtime,
    taskCgroups,
    secrets,
    store,
    events,
    engine,
    monitor,
    async waitFor(what, predicate) {
      const watcher = events.watch(1);
      const deadline = Date.now() + 5000;
      try {
        while (Date.now() < deadline) {
          const batch = await watcher.next(deadline - Date.now());
          const found = batch?.find(predicate);
          if (found) return found;
        }
      } finally {
        watcher.close();
      }
      throw new Error(`no event: ${what}`);
    },
    stop: () => engine.stop(),
  };
}

export function containerInput(name: string, overrides: Partial<ContainerDefinitionInput> = {}): ContainerDefinitionInput {
  return { name, image: 'registry.test/app:1', ...overrides };
}

export function taskInput(id: string, containers: ContainerDefinitionInput[]): TaskDefinitionInput {
  return { id, family: 'unit', revision: 1, networkMode: 'NONE', containers };
}

export const taskStatus = (id: string, status: string) => (e: EngineEvent) => e.taskId === id && e.change.type === 'task' && e.change.knownStatus === status;
export const containerStatus = (id: string, name: string, status: string) => (e: EngineEvent) =>
  e.taskId === id && e.change.type === 'container' && e.change.container.name === name && e.change.container.knownStatus === status;

/** An engine under test served by berth's gRPC server on a private unix socket. */
export interface ServedEngine {
  /** The project's client on the socket. */
  berth: BerthClient;
  /** The generated client on the same channel. */
  client: TaskServiceClient;
  /** Closes the client, the server, the engine and the socket's directory. */
  stop(): Promise<void>;
}

/** Serves `t.engine` over gRPC with the given config (its `dataDir` and `grpc.socket` are set here). */
export async function serveOverGrpc(t: EngineUnderTest, config: Record<string, unknown> = {}): Promise<ServedEngine> {
  const dir = mkdtempSync(join(tmpdir(), 'berth-served-'));
  const socket = join(dir, 'berth.sock');
  const file = join(dir, 'config.json');
  writeFileSync(file, JSON.stringify({ ...config, dataDir: dir, grpc: { socket } }));
  const server = new AgentServer(t.engine, t.monitor, loadConfig(file, {}), pino({ level: 'silent' }));
  await server.start();
  const berth = connect({ address: socket });
  return {
    berth,
    client: berth.raw,
    async stop() {
      berth.close();
      await server.stop(1000);
      await t.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
