import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { Event } from '../../src/gen/berth/agent/v1/event.js';
import type { TaskServiceClient } from '../../src/gen/berth/agent/v1/task_service.js';
import { EventCollector } from '../harness/agent.js';
import { waitUntil } from '../harness/processes.js';
import { watchEvents } from '../../src/client/event-watch.js';
import { containerInput, engineUnderTest, serveOverGrpc, taskInput, type EngineUnderTest, type ServedEngine } from '../harness/engine-harness.js';

describe('WatchEvents (the engine on the fake runtime, over gRPC)', () => {
  let t: EngineUnderTest;
  let served: ServedEngine;
  let client: TaskServiceClient;
  before(async () => {
    t = await engineUnderTest();
    t.runtime.registry.add('registry.test/app:1');
    served = await serveOverGrpc(t, { events: { heartbeatInterval: '100ms' } });
    client = served.client;
  });
  after(async () => {
    await served?.stop();
  });

  it('sends heartbeats with the position of the stream while nothing happens, and events when something does', async () => {
    const watch = new EventCollector(client, { fromSequence: 1 });
    try {
      const heartbeats = () => watch.messages.filter((m) => m.kind?.$case === 'heartbeat');
      await watch.waitFor('two heartbeats', () => heartbeats().length >= 2, 10_000);
      const position = (m: (typeof watch.messages)[number]) => (m.kind?.$case === 'heartbeat' ? m.kind.value.sequence : -1);
      assert.ok(
        heartbeats().every((m) => position(m) === position(heartbeats()[0]!)),
        'the position does not move while nothing happens',
      );
      t.engine.runTask(taskInput('t', [containerInput('app')]));
      const event = await watch.waitForEvent('the task admitted', (e) => e.taskId === 't');
      await watch.waitFor('a heartbeat after it', (m) => position(m) >= event.sequence, 10_000);
    } finally {
      watch.close();
    }
  });

  it('encodes each event once, whatever the number of live watchers, and delivers all of them to each', async () => {
    const encode = Event.encode.bind(Event);
    const encodedEvents: number[] = [];
    Event.encode = (message, writer) => {
      encodedEvents.push(message.sequence);
      return encode(message, writer);
    };
    // Two of them take their events in batches, which are made of the same encodings.
    const watchers = Array.from({ length: 5 }, (_, i) => new EventCollector(client, { includeSnapshot: true, maxEventsPerMessage: i < 2 ? 20 : 0 }));
    try {
      await Promise.all(watchers.map((w) => w.waitFor('the snapshot', (m) => m.kind?.$case === 'snapshot')));
      for (let i = 0; i < 3; i++) t.engine.runTask(taskInput(`fan-${i}`, [containerInput('app')]));
      const running = (id: string) => (e: Event) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === TaskStatus.TASK_STATUS_RUNNING;
      await Promise.all(watchers.flatMap((w) => [0, 1, 2].map((i) => w.waitForEvent(`fan-${i} running`, running(`fan-${i}`)))));
      const sequences = watchers.map((w) => w.events.map((e) => e.sequence));
      for (const seen of sequences.slice(1)) assert.deepEqual(seen, sequences[0], 'every watcher got the same events');
      const kinds = (w: EventCollector) => new Set(w.messages.map((m) => m.kind?.$case).filter((k) => k !== 'snapshot' && k !== 'heartbeat'));
      assert.deepEqual([...kinds(watchers[0]!)], ['events'], 'a watcher that asked for batches gets batches only');
      assert.deepEqual([...kinds(watchers[4]!)], ['event'], 'the others get single events');
      assert.ok(
        watchers[0]!.messages.some((m) => m.kind?.$case === 'events' && m.kind.value.events.length > 1),
        'events appended together travel together',
      );
      assert.deepEqual(
        watchers[0]!.events.map((e) => Event.toJSON(e)),
        watchers[4]!.events.map((e) => Event.toJSON(e)),
        'a batch carries the same events',
      );
      const delivered = sequences[0]!;
      assert.ok(delivered.length >= 6, `events were delivered (${delivered.length})`);
      const firstEncodings = encodedEvents.filter((s) => delivered.includes(s));
      assert.deepEqual(
        firstEncodings.sort((a, b) => a - b),
        delivered,
        `each event was encoded once for 5 watchers (encoded: ${encodedEvents.join(',')})`,
      );
    } finally {
      Event.encode = encode;
      for (const w of watchers) w.close();
    }
  });

  it('refuses more than 1000 events per message, naming the field', async () => {
    const watch = new EventCollector(client, { maxEventsPerMessage: 1001 });
    await watch.waitForEnd();
    assert.equal(watch.error?.code, 3);
    assert.match(watch.error?.message ?? '', /max_events_per_message/);
  });

  it('holds a message for max_batch_delay_ms: events ready shortly after its first travel in it, the same events in fewer messages', async () => {
    const held = new EventCollector(client, { includeSnapshot: true, maxEventsPerMessage: 100, maxBatchDelayMs: 400 });
    const prompt = new EventCollector(client, { includeSnapshot: true, maxEventsPerMessage: 100 });
    try {
      await Promise.all([held, prompt].map((w) => w.waitFor('the snapshot', (m) => m.kind?.$case === 'snapshot')));
      const ids = ['held-0', 'held-1', 'held-2'];
      const running = (id: string) => (e: Event) => e.taskId === id && e.change?.$case === 'task' && e.change.value.knownStatus === TaskStatus.TASK_STATUS_RUNNING;
      // One launch after the other: each one's events are ready apart from the others', and the
      // prompt watcher gets them in messages of their own.
      const started = Date.now();
      for (const id of ids) {
        t.engine.runTask(taskInput(id, [containerInput('app')]));
        await prompt.waitForEvent(`${id} running`, running(id));
      }
      const launchedMs = Date.now() - started;
      await held.waitForEvent('the last running', running(ids[2]!));
      const batches = (w: EventCollector) => w.messages.filter((m) => m.kind?.$case === 'events');
      assert.deepEqual(
        held.events.map((e) => e.sequence),
        prompt.events.map((e) => e.sequence),
        'both got the same events',
      );
      assert.ok(prompt.events.length >= 6, `events were delivered (${prompt.events.length})`);
      // Within one delay the held stream sends one message; the launches took launchedMs.
      const bound = Math.ceil(launchedMs / 400) + 1;
      assert.ok(batches(held).length <= bound, `held: ${batches(held).length} messages for ${launchedMs} ms of launches (at most ${bound})`);
      assert.ok(batches(held).length < batches(prompt).length, `fewer messages held (${batches(held).length}) than prompt (${batches(prompt).length})`);
    } finally {
      held.close();
      prompt.close();
    }
  });

  it('does not hold a stream that is behind: it sends full messages at once, and keeps up with a backlog', async () => {
    const from = t.engine.agentInfo().latestSequence + 1;
    // A backlog of several messages' worth of events, more than the watcher reads at a time (256).
    for (let i = 0; i < 300; i++) t.engine.runTask(taskInput(`backlog-${i}`, [containerInput('app')]));
    const last = await waitUntil('the backlog', 30_000, async () => (t.engine.agentInfo().latestSequence >= from + 1500 ? t.engine.agentInfo().latestSequence : undefined));
    const started = Date.now();
    const watch = new EventCollector(client, { fromSequence: from, maxEventsPerMessage: 1000, maxBatchDelayMs: 1000 });
    try {
      await watch.waitFor('the backlog delivered', () => watch.events.some((e) => e.sequence >= last), 30_000);
      const tookMs = Date.now() - started;
      // Held once at most, for the end of the backlog: a stream held for each read of 256 events
      // would take a second for every 512.
      assert.ok(tookMs < 2500, `${last - from + 1} events in ${tookMs} ms`);
      assert.deepEqual(
        watch.events.filter((e) => e.sequence <= last).map((e) => e.sequence),
        Array.from({ length: last - from + 1 }, (_, i) => from + i),
      );
    } finally {
      watch.close();
    }
  });

  it("the client library's watch asks for the batch delay, and refuses one out of range before it calls", async () => {
    const connection = {
      raw: client,
      getAgentInfo: () => new Promise<never>(() => assert.fail('not called for a watch with a snapshot')),
    };
    await assert.rejects(async () => {
      for await (const item of watchEvents(connection, { snapshot: true, maxBatchDelayMs: 1001 })) assert.fail(`got ${item.kind}`);
    }, /maxBatchDelayMs must be a whole number from 0 to 1000/);
    // It is sent: the agent refuses a delay without batches, naming the request's field.
    await assert.rejects(async () => {
      for await (const item of watchEvents(connection, { snapshot: true, maxEventsPerMessage: 1, maxBatchDelayMs: 10 })) assert.fail(`got ${item.kind}`);
    }, /max_batch_delay_ms/);
    const stop = new AbortController();
    const seen: number[] = [];
    const watching = (async () => {
      for await (const item of watchEvents(connection, { snapshot: true, maxBatchDelayMs: 50, taskIds: ['lib-0'], signal: stop.signal })) {
        if (item.kind === 'snapshot') t.engine.runTask(taskInput('lib-0', [containerInput('app')]));
        if (item.kind === 'event') {
          seen.push(item.event.sequence);
          if (item.event.change?.$case === 'task' && item.event.change.value.knownStatus === TaskStatus.TASK_STATUS_RUNNING) stop.abort();
        }
      }
    })();
    await watching.catch((error: unknown) => assert.ok(stop.signal.aborted, String(error)));
    assert.ok(seen.length >= 2, `the task's events arrived (${seen.join(', ')})`);
  });

  it('refuses a batch delay above 1000 ms, or without batches, naming the field', async () => {
    for (const request of [
      { maxEventsPerMessage: 100, maxBatchDelayMs: 1001 },
      { maxEventsPerMessage: 1, maxBatchDelayMs: 10 },
    ]) {
      const watch = new EventCollector(client, request);
      await watch.waitForEnd();
      assert.equal(watch.error?.code, 3, JSON.stringify(request));
      assert.match(watch.error?.message ?? '', /max_batch_delay_ms/);
    }
  });
});
