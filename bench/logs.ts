/**
 * What reading a container's output costs: a container writes LINES lines of 80 bytes (half to
 * stdout, then half to stderr); once it has exited, the whole output is read through the Logs
 * API, then the last 100 lines, ROUNDS times each, on Docker and on containerd (whose lines go
 * through berth's log writer). Also: how long the writing container ran (the log path's cost to the
 * container). Usage: npm run bench:logs -- [LINES=100000] [ROUNDS=3]. Needs root.
 */
import { cpus, totalmem } from 'node:os';
import type { Event } from '../src/gen/berth/agent/v1/event.js';
import { TaskStatus } from '../src/gen/berth/agent/v1/task.js';
import type { LogsRequest, LogsResponse } from '../src/gen/berth/agent/v1/task_service.js';
import { call, EventCollector, readStream, startTestAgent } from '../test/harness/agent.js';
import { RUNTIME_KINDS, startRuntimeEnvironment } from '../test/harness/runtime-environment.js';
import { container, task } from '../test/harness/task-builders.js';

const LINES = Number(process.argv[2] ?? 100_000);
const ROUNDS = Number(process.argv[3] ?? 3);

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)]!;
const status = (id: string, s: TaskStatus) => (e: Event) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === s;

async function main(): Promise<void> {
  const rows: string[] = [];
  for (const kind of RUNTIME_KINDS) {
    const env = await startRuntimeEnvironment('bench-logs', kind);
    const agent = await startTestAgent(env, { images: { pullBehavior: 'prefer-cached' } });
    const watch = new EventCollector(agent.client, { includeSnapshot: true });
    try {
      await watch.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
      await env.runtime.pullImage(env.image, { auth: env.credentials });
      // Lines of 79 characters and a newline: half to stdout, then half to stderr.
      const line = 'x'.repeat(79);
      const script = `yes ${line} | head -n ${LINES / 2}; yes ${line} | head -n ${LINES / 2} >&2`;
      const id = `logs-${kind}`;
      const started = performance.now();
      await call(agent.client, 'runTask', { task: task(id, [container('app', env.image, { command: ['sh', '-c', script], registryCredentials: env.credentials })]) });
      await watch.waitForEvent(`${id} RUNNING`, status(id, TaskStatus.TASK_STATUS_RUNNING), 120_000);
      await watch.waitForEvent(`${id} STOPPED`, status(id, TaskStatus.TASK_STATUS_STOPPED), 600_000);
      const ran = performance.now() - started;
      const read = async (request: Partial<LogsRequest>) => {
        const begun = performance.now();
        const messages = await readStream<LogsResponse>(agent.client.logs({ taskId: id, containerName: 'app', follow: false, streams: [], ...request } as LogsRequest));
        const lines = messages.reduce((n, m) => n + m.lines.length, 0);
        return { ms: performance.now() - begun, lines, messages: messages.length };
      };
      const all: number[] = [];
      const tail: number[] = [];
      let counted = 0;
      for (let round = 0; round < ROUNDS; round++) {
        const whole = await read({});
        counted = whole.lines;
        all.push(whole.ms);
        tail.push((await read({ tail: 100 })).ms);
      }
      rows.push(`| ${kind} | ${counted} | ${Math.round(ran)} | ${Math.round(median(all))} | ${Math.round(counted / (median(all) / 1000))} | ${Math.round(median(tail))} |`);
    } finally {
      watch.close();
      await agent.stop();
      await env.stop();
    }
  }
  console.log(`${LINES} lines of 80 bytes, ${ROUNDS} rounds, ${cpus().length} CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB`);
  console.log('| runtime | lines read | writer ran (ms, RunTask → STOPPED) | read all (ms, median) | lines/s | last 100 (ms, median) |');
  console.log('|---|---:|---:|---:|---:|---:|');
  for (const row of rows) console.log(row);
}

await main();
