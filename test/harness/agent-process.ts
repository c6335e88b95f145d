import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AGENT_NODE_OPTIONS } from '../../src/agent-node-options.js';
import { connect, type BerthClient } from '../../src/client/berth-client.js';
import type { TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { taskCalls, testPortRange, type TaskCalls } from './agent.js';
import { startDaemon, waitUntil, type DaemonProcess } from './processes.js';

/** The package's root, from the sources or from their build in dist/. */
const REPO = PACKAGE_ROOT ?? resolve(import.meta.dirname, '../..');

export interface AgentProcessOptions {
  /** Data directory: the state store, the socket, the config and the log live here. */
  dir: string;
  agentId: string;
  /** The config's `runtime` section (see RuntimeEnvironment.runtimeConfig). */
  runtimeConfig: Record<string, unknown>;
  /** The config's `network` section (see RuntimeEnvironment.networkConfig). */
  networkConfig?: Record<string, unknown>;
  /** BERTH_TEST_CRASH_POINT for this run (see src/engine/crash-points.ts). */
  crashPoint?: string;
  /** Merged over the test defaults, one level deep per section; other sections as given. */
  config?: Record<string, Record<string, unknown>>;
  /** Run the build the `berth` bin runs (`dist/berth.mjs`, after `npm run build`) rather than the sources through tsx. */
  compiled?: boolean;
  /** Options for node itself, before the entry (e.g. --cpu-prof). */
  nodeArgs?: string[];
}

/** A berth agent in a process of its own, as systemd would run it, so that it can be SIGKILLed. */
export interface AgentProcess {
  daemon: DaemonProcess;
  /** The project's client on the agent's socket. */
  berth: BerthClient;
  /** The generated client on the same channel. */
  client: TaskServiceClient;
  /** The typed task calls on `berth`. */
  calls: TaskCalls;
  socketPath: string;
  /** Resolves when the process has ended, with the signal that ended it (if any). */
  exited: Promise<NodeJS.Signals | null>;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `src/main.ts` with a config file in `dir`, and waits until it answers over gRPC. */
export async function startAgentProcess(options: AgentProcessOptions): Promise<AgentProcess> {
  const extra = options.config ?? {};
  const socketPath = (extra.grpc?.socket as string | undefined) ?? join(options.dir, 'berth.sock');
  const configFile = join(options.dir, 'config.json');
  const config = {
    ...extra,
    agentId: options.agentId,
    dataDir: options.dir,
    logLevel: process.env.BERTH_TEST_LOG_LEVEL ?? 'info',
    grpc: { ...extra.grpc, socket: socketPath },
    runtime: options.runtimeConfig,
    ...(options.networkConfig ? { network: options.networkConfig } : {}),
    engine: { defaultStopTimeout: '5s', taskCleanupWait: '1h', runtimeCheckInterval: '1s', orphanGracePeriod: '1s', ...extra.engine },
    events: { heartbeatInterval: '10s', ...extra.events },
    images: { pullBehavior: 'prefer-cached', ...extra.images },
    resources: { dynamicPortRange: testPortRange(String(options.runtimeConfig.kind ?? 'docker')), ...extra.resources },
  };
  writeFileSync(configFile, JSON.stringify(config, null, 2));
  const env = { ...process.env, BERTH_TEST_CRASH_POINT: options.crashPoint ?? '' };
  const entry = options.compiled ? [join(REPO, 'dist/berth.mjs')] : ['--import', 'tsx', join(REPO, 'src/main.ts')];
  const daemon = startDaemon(process.execPath, [...AGENT_NODE_OPTIONS, ...(options.nodeArgs ?? []), ...entry, '--config', configFile], join(options.dir, 'agent.log'), { cwd: REPO, env });
  const exited = new Promise<NodeJS.Signals | null>((resolveExit) => {
    if (daemon.child.exitCode !== null || daemon.child.signalCode !== null) resolveExit(daemon.child.signalCode);
    else daemon.child.once('exit', (_code, signal) => resolveExit(signal));
  });
  const berth = connect({ address: socketPath });
  const client = berth.raw;
  try {
    await waitUntil('berth agent', 60_000, async () => ((await berth.getAgentInfo()) ? true : undefined), daemon);
  } catch (error) {
    berth.close();
    await daemon.stop();
    throw error;
  }
  return {
    daemon,
    berth,
    client,
    calls: taskCalls(berth),
    socketPath,
    exited,
    async kill() {
      daemon.child.kill('SIGKILL');
      await exited;
      client.close();
    },
    async stop() {
      client.close();
      await daemon.stop();
    },
  };
}
