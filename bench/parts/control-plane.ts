/**
 * A control plane driving a berth agent, in a process of its own (forked by the benchmarks with an
 * IPC channel). It watches the agent's events on one stream and, on request:
 * - `launch`: runs the given tasks with at most `concurrency` launches in flight, a launch ending
 *   when its task is RUNNING, and answers with the time it took;
 * - `stop`: stops the given tasks and answers once all are STOPPED;
 * - `removed`: answers once the given tasks were cleaned up and forgotten (their `removed` events);
 * - `churn`: runs and at once stops tasks that wait for resources (they ask for more memory than
 *   is free), `perSecond` pairs a second for `seconds`, to make events at a steady rate.
 */
import { connect } from '../../src/client/berth-client.js';
import { TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { container, task } from '../../test/harness/task-builders.js';
import { withConcurrency } from './concurrency.js';

export type ControlPlaneRequest =
  | { type: 'launch'; ids: string[]; concurrency: number; memoryMib?: number }
  | { type: 'stop'; ids: string[] }
  | { type: 'removed'; ids: string[] }
  | { type: 'churn'; prefix: string; perSecond: number; seconds: number; memoryMib: number };

export type ControlPlaneAnswer = { type: 'done'; ms: number; count: number } | { type: 'failed'; error: string } | { type: 'ready' };

const [socket, image, username, password] = process.argv.slice(2);
if (!socket || !image || !process.send) throw new Error('usage: forked with IPC, arguments: socket image [username password]');
const send = (message: ControlPlaneAnswer) => process.send!(message);
const registryCredentials = username ? { username, password: password ?? '' } : undefined;

const client = connect({ address: socket });
/** Resolvers waiting for a task to reach a status, by `${id}/${status}`. */
const waiting = new Map<string, () => void>();
const reached = new Set<string>();

const watching = new AbortController();
void (async () => {
  try {
    for await (const item of client.watch({ snapshot: true, signal: watching.signal })) {
      if (item.kind === 'snapshot') send({ type: 'ready' });
      if (item.kind !== 'event') continue;
      const change = item.event.change;
      if (change?.$case !== 'task' && change?.$case !== 'removed') continue;
      const key = `${item.event.taskId}/${change.$case === 'task' ? change.value.knownStatus : 'removed'}`;
      reached.add(key);
      waiting.get(key)?.();
    }
  } catch (error) {
    send({ type: 'failed', error: `watch: ${error instanceof Error ? error.message : String(error)}` });
  }
})();

function reach(id: string, status: TaskStatus | 'removed'): Promise<void> {
  const key = `${id}/${status}`;
  if (reached.has(key)) return Promise.resolve();
  return new Promise((resolve) => waiting.set(key, resolve));
}

const definition = (id: string, memoryMib = 0) => task(id, [container('app', image, { command: ['sleep', '3600'], registryCredentials, ...(memoryMib ? { memoryReservationMib: memoryMib } : {}) })]);

async function launch(ids: string[], concurrency: number, memoryMib = 0): Promise<void> {
  await withConcurrency(ids, concurrency, async (id) => {
    const running = reach(id, TaskStatus.TASK_STATUS_RUNNING);
    await client.runTask(definition(id, memoryMib));
    await running;
  });
}

async function stop(ids: string[]): Promise<void> {
  await withConcurrency(ids, 50, async (id) => {
    const stopped = reach(id, TaskStatus.TASK_STATUS_STOPPED);
    await client.stopTask(id, 'benchmark');
    await stopped;
  });
}

async function churn(prefix: string, perSecond: number, seconds: number, memoryMib: number): Promise<number> {
  const started = performance.now();
  let pairs = 0;
  const total = Math.round(perSecond * seconds);
  while (pairs < total) {
    // Keep to the schedule: as many pairs as should have been sent by now.
    const due = Math.min(total, Math.floor(((performance.now() - started) / 1000) * perSecond) + 1);
    const batch: Promise<void>[] = [];
    for (; pairs < due; pairs++) {
      const id = `${prefix}-${pairs}`;
      batch.push(
        (async () => {
          await client.runTask(definition(id, memoryMib));
          await client.stopTask(id, 'benchmark');
        })(),
      );
    }
    await Promise.all(batch);
    await new Promise((resolve) => setTimeout(resolve, 1));
  }
  return pairs;
}

async function forgotten(ids: string[]): Promise<void> {
  await Promise.all(ids.map((id) => reach(id, 'removed')));
}

process.on('message', (request: ControlPlaneRequest | { type: 'exit' }) => {
  if (request.type === 'exit') {
    watching.abort();
    client.close();
    process.disconnect();
    return;
  }
  const started = performance.now();
  const work =
    request.type === 'launch'
      ? launch(request.ids, request.concurrency, request.memoryMib).then(() => request.ids.length)
      : request.type === 'stop'
        ? stop(request.ids).then(() => request.ids.length)
        : request.type === 'removed'
          ? forgotten(request.ids).then(() => request.ids.length)
          : churn(request.prefix, request.perSecond, request.seconds, request.memoryMib);
  work.then(
    (count) => send({ type: 'done', ms: performance.now() - started, count }),
    (error: unknown) => send({ type: 'failed', error: error instanceof Error ? error.message : String(error) }),
  );
});
