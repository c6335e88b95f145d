import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { credentials, status } from '@grpc/grpc-js';
import { readStatusDetails } from '../../src/client/status-details.js';
import { TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { EventCollector, watching, startTestAgent, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, DependencyCondition, dependsOn, is, task, taskId, TaskStatus } from '../harness/task-builders.js';

export function eventStreamScenarios(kind: RuntimeKind): void {
  describe(`the event stream (${kind})`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    const creds = () => ({ registryCredentials: env.credentials });

    before(async () => {
      env = await startRuntimeEnvironment('events', kind);
      agent = await startTestAgent(env, { engine: { taskCleanupWait: '1s' }, events: { retain: 20_000, maxWatcherLag: 100 } });
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const run = (definition: ReturnType<typeof task>) => agent.calls.run(definition);
    const eventLog = () => agent.agent.parts.eventLog;

    it('delivers the same ordered stream to ten watchers at once', async () => {
      const watchers = Array.from({ length: 10 }, () => new EventCollector(agent.client, { includeSnapshot: true }));
      try {
        // The snapshot arrives once the server has registered the watcher.
        await Promise.all(watchers.map((w) => w.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot')));
        const id = taskId('ten');
        await run(
          task(id, [
            container('first', env.image, { ...creds(), command: ['sh', '-c', 'exit 0'], essential: false }),
            container('second', env.image, { ...creds(), command: ['sh', '-c', 'exit 0'], dependsOn: [dependsOn('first', DependencyCondition.DEPENDENCY_CONDITION_COMPLETE)] }),
          ]),
        );
        await Promise.all(watchers.map((w) => w.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED))));
        const reference = watchers[0]!.events.map((e) => e.sequence);
        assert.ok(reference.length >= 8, `only ${reference.length} events`);
        reference.forEach((sequence, i) => i > 0 && assert.equal(sequence, reference[i - 1]! + 1));
        for (const watcher of watchers) {
          const sequences = watcher.events.map((e) => e.sequence);
          // Each stream is a gapless run; all streams agree on every sequence they share.
          const common = sequences.filter((s) => s >= reference[0]!);
          assert.deepEqual(common, reference.slice(0, common.length));
          assert.deepEqual(
            watcher.events.filter((e) => e.taskId === id).map((e) => JSON.stringify(e)),
            watchers[0]!.events.filter((e) => e.taskId === id).map((e) => JSON.stringify(e)),
          );
        }
      } finally {
        watchers.forEach((w) => w.close());
      }
    });

    it('starts with a snapshot, and a client resuming from its last sequence misses nothing', async () => {
      const id = taskId('resume');
      const first = new EventCollector(agent.client, { includeSnapshot: true, taskIds: [id] });
      const snapshot = await first.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot');
      assert.ok(snapshot.kind?.$case === 'snapshot');
      const snapshotSequence = snapshot.kind.value.sequence;
      await run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })]));
      await first.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
      assert.ok(first.events[0]!.sequence > snapshotSequence);
      first.close();
      const lastSeen = first.events[first.events.length - 1]!.sequence;

      await agent.calls.stop(id, '');
      const resumed = new EventCollector(agent.client, { fromSequence: lastSeen + 1, taskIds: [id] });
      try {
        await resumed.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        assert.ok(resumed.events[0]!.sequence > lastSeen, 'nothing delivered twice');
        const replay = new EventCollector(agent.client, { fromSequence: first.events[0]!.sequence, taskIds: [id] });
        await replay.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        replay.close();
        const whole = replay.events.map((e) => e.sequence);
        const joined = [...first.events, ...resumed.events].map((e) => e.sequence).filter((s) => s <= whole[whole.length - 1]!);
        assert.deepEqual(joined, whole.slice(0, joined.length), 'first stream + resumed stream = the replayed log');
      } finally {
        resumed.close();
      }
    });

    it('removes a stopped task and its containers after the cleanup wait', async () => {
      const id = taskId('cleanup');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(task(id, [container('app', env.image, { ...creds(), command: ['sh', '-c', 'exit 0'] })]));
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        assert.equal((await env.runtime.listContainers({ 'berth.task-id': id })).length, 1);
        await watch.waitForEvent('task removed', (e) => e.taskId === id && e.change?.$case === 'removed');
        assert.equal((await env.runtime.listContainers({ 'berth.task-id': id })).length, 0);
        await assert.rejects(agent.calls.get(id), (error: { code: number }) => error.code === status.NOT_FOUND);
      });
    });

    it('answers OUT_OF_RANGE with the oldest retained sequence for a sequence no longer kept', async () => {
      const log = eventLog();
      for (let i = 0; i < 20_100; i++) log.append('synthetic', { type: 'removed' });
      const oldest = log.oldestSequence();
      assert.ok(oldest > 1);
      const watch = new EventCollector(agent.client, { fromSequence: 1 });
      await watch.waitForEnd();
      assert.equal(watch.error?.code, status.OUT_OF_RANGE);
      const { errorInfo } = readStatusDetails(watch.error?.metadata);
      assert.equal(errorInfo?.metadata.oldest_sequence, String(oldest));
    });

    it('ends a watcher that falls too far behind, without slowing the engine, and lets it resume', async () => {
      const log = eventLog();
      // A plain grpc-js client with HTTP/2's default 64 KiB receive window: the project's client
      // takes 4 MiB before it stops the agent's writes, more than these events.
      const plain = new TaskServiceClient(`unix://${agent.socketPath}`, credentials.createInsecure());
      const slow = new EventCollector(plain, { includeSnapshot: true });
      const fast = new EventCollector(agent.client, { includeSnapshot: true });
      try {
        await Promise.all([slow, fast].map((w) => w.waitFor('snapshot', (m) => m.kind?.$case === 'snapshot')));
        // The slow client stops reading; HTTP/2 flow control then stops the server's writes to it.
        slow.stream.pause();
        const start = log.latestSequence() + 1;
        // Appended in chunks smaller than the allowed lag; the reading client keeps up with each.
        for (let chunk = 0; chunk < 100; chunk++) {
          let last = 0;
          for (let i = 0; i < 50; i++) last = log.append('synthetic', { type: 'removed' }).sequence;
          await fast.waitForEvent(`synthetic event ${last}`, (e) => e.sequence === last);
        }
        assert.equal(fast.error, undefined, 'the reading client was not disconnected');
        slow.stream.resume();
        await slow.waitForEnd();
        assert.equal(slow.error?.code, status.RESOURCE_EXHAUSTED);
        assert.match(slow.error?.details ?? '', /fell more than 100 events behind/);
        const resumeFrom = Number(readStatusDetails(slow.error?.metadata).errorInfo?.metadata.resume_from_sequence);
        const received = slow.events.map((e) => e.sequence);
        assert.equal(resumeFrom, (received[received.length - 1] ?? start - 1) + 1, 'resume right after the last event received');
        received.forEach((sequence, i) => i > 0 && assert.equal(sequence, received[i - 1]! + 1));
        const resumed = new EventCollector(agent.client, { fromSequence: resumeFrom });
        const next = await resumed.waitFor('first resumed event', (m) => m.kind?.$case === 'event');
        assert.ok(next.kind?.$case === 'event');
        assert.equal(next.kind.value.sequence, resumeFrom);
        resumed.close();
      } finally {
        slow.close();
        fast.close();
        plain.close();
      }
    });
  });
}
