import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startTestAgent, watching, type TestAgent } from '../harness/agent.js';
import { freeLoopbackPort, waitUntil } from '../harness/processes.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, is, task, taskId, TaskStatus } from '../harness/task-builders.js';

/** The value of one sample of a Prometheus text exposition; undefined when absent. */
function sample(text: string, name: string, labels = ''): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `));
  return line === undefined ? undefined : Number(line.split(' ').at(-1));
}

/** The Prometheus endpoint, scraped while a real runtime runs tasks. */
export function metricsScenarios(kind: RuntimeKind): void {
  describe(`metrics on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    let url: string;
    const creds = () => ({ registryCredentials: env.credentials });

    before(async () => {
      env = await startRuntimeEnvironment('metrics', kind);
      const address = `127.0.0.1:${await freeLoopbackPort()}`;
      url = `http://${address}/metrics`;
      agent = await startTestAgent(env, { metrics: { address } });
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const scrape = async () => {
      const response = await fetch(url);
      assert.equal(response.status, 200);
      assert.match(response.headers.get('content-type') ?? '', /^text\/plain/);
      return response.text();
    };

    it('counts launches in the RunTask → RUNNING histogram, tasks by status, runtime calls and pulls', async () => {
      const before = await scrape();
      assert.equal(sample(before, 'berth_task_launch_seconds_count'), 0);
      assert.equal(sample(before, 'berth_tasks', 'status="RUNNING"'), 0);
      const id = taskId('metrics');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await agent.calls.run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })]));
        await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
      });
      // The launch is counted once the metrics' reader of the event log has seen the RUNNING event.
      const text = await waitForSample(scrape, 'berth_task_launch_seconds_count', 1);
      assert.ok((sample(text, 'berth_task_launch_seconds_sum') ?? 0) > 0);
      assert.equal(sample(text, 'berth_task_launch_seconds_bucket', 'le="+Inf"'), 1);
      assert.equal(sample(text, 'berth_tasks', 'status="RUNNING"'), 1);
      assert.ok((sample(text, 'berth_runtime_call_duration_seconds_count', 'operation="create_container"') ?? 0) >= 1);
      assert.ok((sample(text, 'berth_runtime_call_duration_seconds_count', 'operation="start_container"') ?? 0) >= 1);
      assert.equal(sample(text, 'berth_image_pull_duration_seconds_count', 'result="success"'), 1);
      assert.equal(sample(text, 'berth_runtime_available'), 1);
      assert.ok((sample(text, 'berth_event_sequence') ?? 0) > 0);
      // The agent synchronized with the runtime at least once, after subscribing to its events.
      assert.ok((sample(text, 'berth_runtime_syncs_total') ?? 0) >= 1);
      assert.ok((sample(text, 'berth_runtime_sync_last_duration_seconds') ?? 0) > 0);
      // The test's own watch stream was written events: their times from commit to the stream.
      assert.ok((sample(text, 'berth_event_delivery_seconds_count') ?? 0) >= 1);
      assert.equal(sample(text, 'berth_event_delivery_seconds_bucket', 'le="+Inf"'), sample(text, 'berth_event_delivery_seconds_count'));
      // The launch's commits were put on the disk before its events went out: their fsyncs' times.
      assert.ok((sample(text, 'berth_state_store_fsync_seconds_count') ?? 0) >= 1);
      assert.ok((sample(text, 'berth_state_store_fsync_seconds_sum') ?? 0) > 0);
      // The worker thread copied the launch's commits into the database, a second after the last.
      await waitUntil('a checkpoint of the state store', 10_000, async () => ((sample(await scrape(), 'berth_state_store_checkpoint_seconds_count') ?? 0) >= 1 ? true : undefined));
      assert.equal(sample(text, 'berth_resource_queue_length'), 0);
      // The tests' agents log to their output, read as it comes: nothing dropped.
      assert.equal(sample(text, 'berth_log_lines_dropped_total'), 0);
      assert.ok(sample(text, 'berth_host_resources', 'resource="memory_mib",state="free"') !== undefined);
      assert.ok(sample(text, 'berth_process_resident_memory_bytes') !== undefined);
      await agent.calls.stop(id, 'test');
    });

    it('counts a failed pull as a runtime call error of its kind and a failed pull', async () => {
      const id = taskId('metrics-missing');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await agent.calls.run(task(id, [container('app', env.missingImage, creds())]));
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
      });
      const text = await scrape();
      assert.ok(
        (sample(text, 'berth_runtime_call_errors_total', 'operation="pull_image",kind="not-found"') ?? 0) >= 1,
        text
          .split('\n')
          .filter((l) => l.includes('errors_total'))
          .join('\n'),
      );
      assert.ok((sample(text, 'berth_image_pull_duration_seconds_count', 'result="failure"') ?? 0) >= 1);
    });

    if (kind === 'containerd') {
      it('counts the log messages the syslog driver dropped while its destination was down', async () => {
        const id = taskId('dropped-logs');
        // A socket nobody made: every message is dropped.
        const socket = `/run/berth-test-no-such-syslog-${process.pid}.sock`;
        await watching(agent.client, { taskIds: [id] }, async (watch) => {
          await agent.calls.run(
            task(id, [
              container('app', env.image, {
                ...creds(),
                // 100 lines, then it waits: the writer reports its drops at least once a second, and at exit.
                command: ['sh', '-c', 'i=0; while [ $i -lt 100 ]; do echo "line $i"; i=$((i+1)); done; exec sleep 300'],
                logConfiguration: { logDriver: 'syslog', options: { 'syslog-address': `unixgram://${socket}` }, secretOptions: [] },
              }),
            ]),
          );
          await watch.waitForEvent('RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING));
          await agent.calls.stopAndWait(id);
        });
        // The writer reports within a second of its last drop.
        await waitForSample(scrape, 'berth_log_messages_dropped', 100);
      });
    }

    it('answers 404 to anything but GET /metrics', async () => {
      const response = await fetch(url.replace('/metrics', '/'));
      assert.equal(response.status, 404);
    });
  });
}

async function waitForSample(scrape: () => Promise<string>, name: string, value: number): Promise<string> {
  const deadline = Date.now() + 10_000;
  let text = '';
  while (Date.now() < deadline) {
    text = await scrape();
    if (sample(text, name) === value) return text;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error(
    `${name} did not reach ${value}:\n${text
      .split('\n')
      .filter((l) => l.startsWith(name))
      .join('\n')}`,
  );
}
