/**
 * Recovery after SIGKILL, and the state store's cost per task launch.
 *
 * 1. Write cost: an agent in this process launches W single-container tasks; the state store's
 *    commit count and time spent committing (synchronous=FULL) are divided by W.
 * 2. Recovery: an agent in a process of its own launches N single-container tasks and is killed
 *    with SIGKILL; a new agent is started in this process on the same data directory, and the
 *    time from its start to every task reconciled (its `recovery` report) is measured. Repeated
 *    ROUNDS times (each round's killed agent first recovers the tasks itself, then is killed).
 *
 * Usage: npm run bench:recovery -- [N=200] [ROUNDS=3] [W=20]. Needs root, like the integration tests.
 */
import { mkdtempSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { startAgent } from '../src/agent.js';
import { compileConfig, defaultConfigInput } from '../src/config/config.js';
import type { Event } from '../src/gen/berth/agent/v1/event.js';
import { TaskStatus } from '../src/gen/berth/agent/v1/task.js';
import type { ListTasksResponse } from '../src/gen/berth/agent/v1/task_service.js';
import { call, EventCollector, startTestAgent } from '../test/harness/agent.js';
import { startAgentProcess } from '../test/harness/agent-process.js';
import { startRuntimeEnvironment } from '../test/harness/runtime-environment.js';
import { container, task } from '../test/harness/task-builders.js';

const N = Number(process.argv[2] ?? 200);
const ROUNDS = Number(process.argv[3] ?? 3);
const W = Number(process.argv[4] ?? 20);
const BATCH = 20;

const running = (id: string) => (e: Event) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === TaskStatus.TASK_STATUS_RUNNING;

async function main(): Promise<void> {
  const env = await startRuntimeEnvironment('bench-recovery', 'docker');
  const dockerHost = env.docker!.host;
  const definition = (id: string) => task(id, [container('app', env.image, { command: ['sleep', '3600'], registryCredentials: env.credentials })]);
  try {
    // 1. Write cost per launch.
    const inProcess = await startTestAgent(dockerHost, { images: { pullBehavior: 'prefer-cached' } });
    const watch = new EventCollector(inProcess.client, { includeSnapshot: true });
    await watch.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
    await call(inProcess.client, 'runTask', { task: definition('warm') });
    await watch.waitForEvent('warm RUNNING', running('warm'), 120_000);
    const store = inProcess.agent.parts.store;
    const before = store.writeStats();
    const launchStarted = performance.now();
    for (let i = 0; i < W; i++) {
      await call(inProcess.client, 'runTask', { task: definition(`w${i}`) });
      await watch.waitForEvent(`w${i} RUNNING`, running(`w${i}`), 120_000);
    }
    const launchMs = performance.now() - launchStarted;
    const after = store.writeStats();
    watch.close();
    await inProcess.stop();
    const commitsPerTask = (after.commits - before.commits) / W;
    const msPerTask = (after.totalMs - before.totalMs) / W;

    // 2. Recovery of N tasks after SIGKILL.
    const dir = mkdtempSync(join(env.dir, 'recovery-'));
    const agentId = 'bench-recovery';
    let child = await startAgentProcess({ dir, agentId, runtimeConfig: { kind: 'docker', docker: { host: dockerHost } } });
    const launchWatch = new EventCollector(child.client, { includeSnapshot: true });
    await launchWatch.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
    for (let first = 0; first < N; first += BATCH) {
      const ids = Array.from({ length: Math.min(BATCH, N - first) }, (_, i) => `r${first + i}`);
      await Promise.all(
        ids.map(async (id) => {
          await call(child.client, 'runTask', { task: definition(id) });
          await launchWatch.waitForEvent(`${id} RUNNING`, running(id), 300_000);
        }),
      );
    }
    launchWatch.close();
    const rounds: { startMs: number; recoveryMs: number; tasks: number }[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      await child.kill();
      const config = compileConfig({
        ...defaultConfigInput({ DOCKER_HOST: dockerHost }),
        agentId,
        dataDir: dir,
        logLevel: 'silent',
        grpc: { socket: join(dir, 'berth.sock'), socketMode: '0660' },
      });
      const started = performance.now();
      const agent = await startAgent(config, pino({ level: 'silent' }));
      const report = await agent.engine.recovery;
      const total = performance.now() - started;
      const tasks = agent.engine.listTasks().filter((t) => t.knownStatus === 'RUNNING').length;
      if (tasks !== N) throw new Error(`only ${tasks} of ${N} tasks RUNNING after recovery`);
      rounds.push({ startMs: total, recoveryMs: report.durationMs, tasks: report.tasks });
      console.log(`round ${round + 1}: ${report.tasks} tasks reconciled in ${report.durationMs} ms after engine start, ${total.toFixed(0)} ms after the startAgent call`);
      await agent.stop();
      if (round < ROUNDS - 1) {
        child = await startAgentProcess({ dir, agentId, runtimeConfig: { kind: 'docker', docker: { host: dockerHost } } });
        const listed = await call<object, ListTasksResponse>(child.client, 'listTasks', { statuses: [], family: '', pageSize: 1000, pageToken: '' });
        if (listed.tasks.length !== N) throw new Error(`the killed agent's successor lists ${listed.tasks.length} tasks`);
      }
    }

    console.log(`\nstate store and recovery, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}, ${new Date().toISOString().slice(0, 10)}\n`);
    console.log(
      `write cost per task launch (1 container, ${W} tasks, sequential): ${commitsPerTask.toFixed(1)} commits, ${msPerTask.toFixed(2)} ms committing, of ${(launchMs / W).toFixed(0)} ms per launch`,
    );
    console.log(`\n| round | tasks | engine start → all reconciled (ms) | startAgent call → all reconciled (ms) |`);
    console.log('|---|---:|---:|---:|');
    rounds.forEach((r, i) => console.log(`| ${i + 1} | ${r.tasks} | ${r.recoveryMs} | ${r.startMs.toFixed(0)} |`));
  } finally {
    await env.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
