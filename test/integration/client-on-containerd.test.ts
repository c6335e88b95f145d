import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from '../../src/client/berth-client.js';
import { TaskStoppedError, TaskWaitTimeoutError, type BerthError } from '../../src/client/errors.js';
import type { WatchItem } from '../../src/client/event-watch.js';
import type { Event } from '../../src/gen/berth/agent/v1/event.js';
import { startAgentProcess, type AgentProcess } from '../harness/agent-process.js';
import { startRuntimeEnvironment, type RuntimeEnvironment } from '../harness/runtime-environment.js';
import { container, task, TaskStatus } from '../harness/task-builders.js';

/**
 * What a watch delivered, and waits on it that end when a condition holds (checked on each item
 * and each reconnect) or fail after their deadline.
 */
class WatchRecord {
  readonly events: Event[] = [];
  readonly snapshots: Extract<WatchItem, { kind: 'snapshot' }>[] = [];
  readonly reconnects: (BerthError | undefined)[] = [];
  private readonly waiters = new Set<() => void>();
  readonly done: Promise<void>;

  constructor(items: AsyncIterable<WatchItem>) {
    this.done = (async () => {
      for await (const item of items) {
        if (item.kind === 'event') this.events.push(item.event);
        if (item.kind === 'snapshot') this.snapshots.push(item);
        this.changed();
      }
    })();
  }

  reconnected(error: BerthError | undefined): void {
    this.reconnects.push(error);
    this.changed();
  }

  private changed(): void {
    for (const waiter of [...this.waiters]) waiter();
  }

  until(what: string, condition: () => boolean, timeoutMs = 60_000): Promise<void> {
    if (condition()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const check = () => {
        if (!condition()) return;
        this.waiters.delete(check);
        clearTimeout(timer);
        resolve();
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; ${this.events.length} events, ${this.reconnects.length} reconnects`));
      }, timeoutMs);
      this.waiters.add(check);
    });
  }

  stoppedTask(id: string): boolean {
    return this.events.some((e) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === TaskStatus.TASK_STATUS_STOPPED);
  }
}

const signature = (e: Event) => `${e.sequence} ${e.taskId} ${e.change?.$case}`;

function assertConsecutive(events: Event[], from: number, to: number): void {
  const sequences = events.map((e) => e.sequence);
  const expected = Array.from({ length: to - from + 1 }, (_, i) => from + i);
  assert.deepEqual(sequences, expected, 'every sequence once, in order, none missing');
}

describe('the TypeScript client (src/client) against an agent process on real containerd', () => {
  let env: RuntimeEnvironment;
  let dir: string;
  const agentId = `client-${process.pid}`;
  let agent: AgentProcess | undefined;

  const start = (events: Record<string, unknown> = {}, grpc: Record<string, unknown> = {}) =>
    startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig, config: { events: { heartbeatInterval: '1s', ...events }, grpc } });

  /** A task whose one container exits at once: it runs and stops by itself, with a few events on the way. */
  const brief = (id: string) => task(id, [container('app', env.image, { registryCredentials: env.credentials, command: ['sh', '-c', 'exit 0'] })]);

  before(async () => {
    env = await startRuntimeEnvironment('client', 'containerd');
    env.agentIds.add(agentId);
    dir = mkdtempSync(join(tmpdir(), 'berth-client-'));
  });
  after(async () => {
    await agent?.stop();
    await env?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('watch: every event exactly once and in order across SIGKILLs of the agent and its socket going away', async () => {
    agent = await start();
    const client = connect({ address: agent.socketPath });
    const stop = new AbortController();
    try {
      const first = (await client.getAgentInfo()).latestSequence + 1;
      const record: WatchRecord = new WatchRecord(
        client.watch({ fromSequence: first, signal: stop.signal, initialBackoffMs: 50, maxBackoffMs: 500, onReconnect: ({ error }) => record.reconnected(error) }),
      );
      for (let round = 0; round < 3; round++) {
        const ids = Array.from({ length: 4 }, (_, i) => `watch-${round}-${i}`);
        for (const id of ids) await agent.calls.run(brief(id));
        // Killed while the round's tasks are on their way: their events come before and after.
        await record.until(`an event of round ${round}`, () => record.events.some((e) => e.taskId === ids[0]));
        const failedBefore = record.reconnects.filter(Boolean).length;
        await agent.kill();
        if (round === 1) rmSync(agent.socketPath, { force: true });
        await record.until('a failed attempt to reconnect', () => record.reconnects.filter(Boolean).length > failedBefore);
        agent = await start();
      }
      await agent.calls.runUntil(brief('watch-last'), TaskStatus.TASK_STATUS_STOPPED);
      await record.until('the last task stopped', () => record.stoppedTask('watch-last'));
      for (let round = 0; round < 3; round++) {
        for (let i = 0; i < 4; i++) await record.until(`watch-${round}-${i} stopped`, () => record.stoppedTask(`watch-${round}-${i}`));
      }
      const latest = (await client.getAgentInfo()).latestSequence;
      await record.until(`sequence ${latest}`, () => (record.events.at(-1)?.sequence ?? 0) >= latest);
      stop.abort();
      await record.done;

      assert.equal(record.snapshots.length, 0, 'nothing was missed, so no resync');
      assertConsecutive(record.events, first, record.events.at(-1)!.sequence);
      // The same events a single stream replaying them from the store gives.
      const replay: Event[] = [];
      for await (const message of client.watchEvents({ fromSequence: first, maxEventsPerMessage: 100 })) {
        const kind = message.kind;
        if (kind?.$case === 'events') replay.push(...kind.value.events);
        if (replay.length > 0 && replay.at(-1)!.sequence >= record.events.at(-1)!.sequence) break;
      }
      assert.deepEqual(record.events.map(signature), replay.slice(0, record.events.length).map(signature));
      assert.ok(record.reconnects.length >= 3, `reconnected after each kill (${record.reconnects.length})`);
    } finally {
      stop.abort();
      client.close();
    }
  });

  it('watch: a watcher away longer than the agent keeps events gets a resync snapshot, then gapless events', async () => {
    await agent?.stop();
    const tiny = { retain: 12, maxWatcherLag: 12, keepInMemory: 12 };
    agent = await start(tiny);
    const socket = agent.socketPath;
    const client = connect({ address: socket });
    const stop = new AbortController();
    try {
      const record: WatchRecord = new WatchRecord(client.watch({ signal: stop.signal, initialBackoffMs: 50, maxBackoffMs: 500, onReconnect: ({ error }) => record.reconnected(error) }));
      await agent.calls.run(brief('away-0'));
      await record.until('away-0 stopped', () => record.stoppedTask('away-0'));
      const seen = record.events.at(-1)!.sequence;

      // The agent goes on elsewhere (another socket) while this watcher cannot reach it.
      await agent.kill();
      agent = await start(tiny, { socket: join(dir, 'elsewhere.sock') });
      for (let i = 1; i <= 3; i++) await agent.calls.runUntil(brief(`away-${i}`), TaskStatus.TASK_STATUS_STOPPED);
      const info = await agent.calls.info();
      assert.ok(info.oldestSequence > seen + 1, `the events after ${seen} are gone (oldest ${info.oldestSequence})`);
      await agent.stop();
      agent = await start(tiny);
      assert.equal(agent.socketPath, socket);

      await record.until('the resync snapshot', () => record.snapshots.length > 0);
      const snapshot = record.snapshots[0]!;
      assert.equal(snapshot.resync, true);
      assert.match(snapshot.reason ?? '', /no longer retained/);
      assert.ok(snapshot.sequence >= info.latestSequence);
      for (let i = 1; i <= 3; i++) {
        assert.equal(snapshot.tasks.find((t) => t.definition?.id === `away-${i}`)?.knownStatus, TaskStatus.TASK_STATUS_STOPPED, `away-${i} in the snapshot`);
      }
      const before = record.events.length;
      await agent.calls.runUntil(brief('after'), TaskStatus.TASK_STATUS_STOPPED);
      await record.until('after stopped', () => record.stoppedTask('after'));
      const after = record.events.slice(before);
      assert.ok(after.length > 0);
      assertConsecutive(after, snapshot.sequence + 1, after.at(-1)!.sequence);
      assert.ok(
        record.events.slice(0, before).every((e) => e.sequence <= seen),
        'nothing from the gap was delivered as an event',
      );
    } finally {
      stop.abort();
      client.close();
    }
  });

  it('waits: runAndWait answers with the running task; a task that stops instead fails with its reasons; a deadline names where the task is', async () => {
    await agent?.stop();
    agent = await start();
    const client = connect({ address: agent.socketPath });
    try {
      const serve = task('wait-serve', [container('app', env.image, { registryCredentials: env.credentials, command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done'] })]);
      const running = await client.runAndWait(serve, { timeoutMs: 60_000 });
      assert.equal(running.knownStatus, TaskStatus.TASK_STATUS_RUNNING);
      // Idempotent on the id: the same definition again answers with the same task.
      assert.equal((await client.runAndWait(serve, { timeoutMs: 60_000 })).definition?.id, 'wait-serve');
      const stopped = await client.stopAndWait('wait-serve', 'done with it', { timeoutMs: 60_000 });
      assert.equal(stopped.knownStatus, TaskStatus.TASK_STATUS_STOPPED);
      assert.equal(stopped.reason, 'done with it');

      // Containers that never run: a command that cannot start, an image the registry does not have.
      const cannotStart = task('wait-cannot-start', [container('app', env.image, { registryCredentials: env.credentials, command: ['/no/such/binary'] })]);
      const missing = task('wait-missing', [container('app', `${env.image.split('/')[0]}/no-such-image:1`, { registryCredentials: env.credentials })]);
      for (const definition of [cannotStart, missing]) {
        await assert.rejects(client.runAndWait(definition, { timeoutMs: 60_000 }), (error) => {
          assert.ok(error instanceof TaskStoppedError, String(error));
          assert.equal(error.task.knownStatus, TaskStatus.TASK_STATUS_STOPPED);
          const reason = error.task.containers[0]?.reason ?? '';
          assert.ok(reason.length > 0);
          assert.ok(error.message.startsWith(`task ${definition.id} stopped before it was TASK_STATUS_RUNNING: `), error.message);
          assert.ok(error.message.includes(reason), `the container's reason is in the message: ${error.message}`);
          return true;
        });
      }

      const held = task('wait-held', [container('app', env.image, { registryCredentials: env.credentials, command: ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done'] })]);
      await client.runTask(held);
      await assert.rejects(client.waitForTask('wait-held', TaskStatus.TASK_STATUS_STOPPED, { timeoutMs: 300 }), (error) => {
        assert.ok(error instanceof TaskWaitTimeoutError, String(error));
        assert.match(error.message, /was not TASK_STATUS_STOPPED within 300 ms: it is TASK_STATUS_/);
        return true;
      });
      await client.stopAndWait('wait-held', '', { timeoutMs: 60_000 });
    } finally {
      client.close();
    }
  });
});
