/**
 * What clients holding streams open cost the agent: an agent (its own process, on Docker) with a
 * task whose container writes a line every 10 ms; then limits.watchers WatchEvents streams,
 * limits.logFollows followed Logs and limits.statsStreams Stats streams are opened and held, and
 * one more of each is refused. Reports the agent's resident memory (VmRSS) before, with every
 * stream open, and after they closed. Usage: npm run bench:stream-caps. Needs root.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { status, type ClientReadableStream, type ServiceError } from '@grpc/grpc-js';
import { DEFAULT_REQUEST_LIMITS as L } from '../src/engine/admission/request-limits.js';
import { credentials } from '@grpc/grpc-js';
import { TaskStatus } from '../src/gen/berth/agent/v1/task.js';
import { TaskServiceClient } from '../src/gen/berth/agent/v1/task_service.js';
import { call, EventCollector } from '../test/harness/agent.js';
import { startAgentProcess } from '../test/harness/agent-process.js';
import { startRuntimeEnvironment } from '../test/harness/runtime-environment.js';
import { container, is, task } from '../test/harness/task-builders.js';

const rssMib = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;
const settle = () => new Promise((resolve) => setTimeout(resolve, 2000));

/** Opens a stream and resolves once it has delivered its first message (or failed: the code). */
function open(stream: ClientReadableStream<unknown>): Promise<number> {
  return new Promise((resolve) => {
    stream.once('data', () => resolve(status.OK));
    stream.once('error', (error: ServiceError) => resolve(error.code));
  });
}

async function main(): Promise<void> {
  const env = await startRuntimeEnvironment('bench-caps', 'docker');
  const dir = mkdtempSync(join(tmpdir(), 'berth-bench-caps-'));
  const agent = await startAgentProcess({
    dir,
    agentId: `bench-caps-${process.pid}`,
    runtimeConfig: env.runtimeConfig,
    config: { images: { registryCredentials: { [env.registry.address]: env.credentials } } },
  });
  const pid = agent.daemon.child.pid as number;
  const streams: ClientReadableStream<unknown>[] = [];
  try {
    const watch = new EventCollector(agent.client, { taskIds: ['chatty'] });
    await call(agent.client, 'runTask', { task: task('chatty', [container('app', env.image, { command: ['sh', '-c', 'while true; do echo "$(date) a line of output"; sleep 0.01; done'] })]) });
    await watch.waitForEvent('RUNNING', is.task('chatty', TaskStatus.TASK_STATUS_RUNNING), 60_000);
    watch.close();
    await settle();
    const before = rssMib(pid);
    // A connection carries at most grpc.maxConcurrentStreams (100) calls: 50 per client here.
    const clients: TaskServiceClient[] = [];
    let opened = 0;
    const client = () => {
      if (opened++ % 50 === 0) clients.push(new TaskServiceClient(`unix://${agent.socketPath}`, credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }));
      return clients.at(-1)!;
    };
    const kinds = [
      { name: 'WatchEvents', cap: L.watchers, open: () => client().watchEvents({ fromSequence: 0, includeSnapshot: true, taskIds: [], maxEventsPerMessage: 0, maxBatchDelayMs: 0 }) },
      { name: 'Logs (follow)', cap: L.logFollows, open: () => client().logs({ taskId: 'chatty', containerName: 'app', follow: true, tail: 10, since: undefined, streams: [] }) },
      { name: 'Stats (stream)', cap: L.statsStreams, open: () => client().stats({ taskId: 'chatty', containerName: 'app', stream: true, interval: { seconds: 1, nanos: 0 } }) },
    ];
    const refused: string[] = [];
    for (const kind of kinds) {
      const opened = Array.from({ length: kind.cap }, () => kind.open() as ClientReadableStream<unknown>);
      streams.push(...opened);
      const codes = await Promise.all(opened.map(open));
      const failed = codes.filter((code) => code !== status.OK);
      if (failed.length > 0) throw new Error(`${failed.length} of ${kind.cap} ${kind.name} streams failed: ${status[failed[0]!]}`);
      const extra = kind.open() as ClientReadableStream<unknown>;
      refused.push(`${kind.name}: ${status[await open(extra)]}`);
      extra.cancel();
    }
    await settle();
    const held = rssMib(pid);
    for (const stream of streams.splice(0)) stream.cancel();
    for (const c of clients) c.close();
    await settle();
    const after = rssMib(pid);
    console.log(`| agent resident memory | MiB |\n|---|---|`);
    console.log(`| one running task, no stream | ${before.toFixed(0)} |`);
    console.log(`| ${L.watchers} watches + ${L.logFollows} log follows + ${L.statsStreams} stats streams held | ${held.toFixed(0)} |`);
    console.log(`| all closed again | ${after.toFixed(0)} |`);
    console.log(`\none more of each: ${refused.join(', ')}`);
    await call(agent.client, 'stopTask', { taskId: 'chatty', reason: '' });
  } finally {
    for (const stream of streams) stream.cancel();
    await agent.stop();
    await env.stop();
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
