import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/engine/tasks/labels.js';
import { isRuntimeError } from '../../src/runtime/errors.js';
import type { Event } from '../../src/gen/berth/agent/v1/event.js';
import { EventCollector } from '../harness/agent.js';
import { startAgentProcess, type AgentProcess } from '../harness/agent-process.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, containerOf, ContainerStatus, DependencyCondition, dependsOn, is, task, taskId, TaskStatus } from '../harness/task-builders.js';
import { containersSeenByDaemon } from '../harness/daemon-witness.js';
import { exitOf } from '../harness/container-exit.js';

/** A shell that exits at once on SIGTERM, so stops take no stop timeout. */
const SERVE = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done'];

type Phase = 'launch' | 'stop' | 'cleanup';

/**
 * Where the agent is killed, and in which phase of the task's life. Each point is a step whose
 * effect on the runtime and whose record in the store can be separated by a crash.
 */
const CASES: { point: string; phase: Phase }[] = [
  { point: 'task-saved', phase: 'launch' },
  { point: 'event-saved:4', phase: 'launch' },
  { point: 'before-create:2', phase: 'launch' },
  { point: 'after-create:1', phase: 'launch' },
  { point: 'after-create:3', phase: 'launch' },
  { point: 'before-start:2', phase: 'launch' },
  { point: 'after-start:1', phase: 'launch' },
  { point: 'after-start:3', phase: 'launch' },
  { point: 'before-stop:1', phase: 'stop' },
  { point: 'after-stop:1', phase: 'stop' },
  { point: 'after-stop:2', phase: 'stop' },
  { point: 'after-remove:2', phase: 'cleanup' },
];

export function crashRecoveryScenarios(kind: RuntimeKind): void {
  describe(`crash recovery: the agent SIGKILLed at every step of a task (real ${kind})`, () => {
    let env: RuntimeEnvironment;
    let counter = 0;

    before(async () => {
      env = await startRuntimeEnvironment('crash', kind);
    });
    after(async () => {
      await env?.stop();
    });

    /** init runs to completion, app waits for it, side waits for app. */
    const definition = (id: string) => {
      const creds = { registryCredentials: env.credentials };
      return task(id, [
        container('init', env.image, { ...creds, command: ['sh', '-c', 'exit 0'], essential: false }),
        container('app', env.image, { ...creds, command: SERVE, dependsOn: [dependsOn('init', DependencyCondition.DEPENDENCY_CONDITION_SUCCESS)] }),
        container('side', env.image, { ...creds, command: SERVE, dependsOn: [dependsOn('app', DependencyCondition.DEPENDENCY_CONDITION_START)] }),
      ]);
    };

    const labelled = (agentId: string) => env.runtime.listContainers({ [LABELS.agentId]: agentId });
    const removeAll = async (agentId: string) => {
      for (const c of await labelled(agentId)) await env.runtime.removeContainer(c.id);
    };

    /** Waits until the task shows `status`, whether it already does or an event will say so. */
    async function reach(agent: AgentProcess, watch: EventCollector, id: string, status: TaskStatus): Promise<void> {
      const current = await agent.calls.get(id).catch(() => undefined);
      if (current?.knownStatus === status) return;
      await watch.waitForEvent(`task ${TaskStatus[status]}`, is.task(id, status), 60_000);
    }

    /** The known statuses a container's events reported, in order. */
    function statusesOf(events: Event[], id: string, name: string): string[] {
      return events.flatMap((e) =>
        e.taskId === id && e.change?.$case === 'container' && e.change.value.container?.name === name ? [ContainerStatus[e.change.value.container.knownStatus].replace('CONTAINER_STATUS_', '')] : [],
      );
    }

    function assertGapless(events: Event[]): void {
      events.forEach((e, i) => assert.equal(e.sequence, i + 1, `event ${i + 1} of the combined streams has sequence ${e.sequence}`));
    }

    for (const { point, phase } of CASES) {
      it(`${phase}: killed at ${point}, restarted: no duplicate, no orphan, no lost or repeated event`, async () => {
        const dir = mkdtempSync(join(env.dir, 'agent-'));
        const agentId = `crash${counter++}`;
        const config = { engine: { taskCleanupWait: phase === 'cleanup' ? '1s' : '1h' } };
        const id = taskId('crash');
        const def = definition(id);
        const run = (agent: AgentProcess) => agent.calls.run(def);
        const stop = (agent: AgentProcess) => agent.calls.stop(id, 'test');

        let agent = await startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig, crashPoint: point, config });
        const before = new EventCollector(agent.client, { fromSequence: 1 });
        try {
          if (phase === 'launch') {
            // The crash may take the answer with it; the client retries below.
            await run(agent).catch(() => undefined);
          } else {
            await run(agent);
            await reach(agent, before, id, TaskStatus.TASK_STATUS_RUNNING);
            if (phase === 'stop') await stop(agent).catch(() => undefined);
            else await stop(agent);
          }
          const signal = await Promise.race([agent.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 60_000))]);
          assert.equal(signal, 'SIGKILL', `the agent was to crash at ${point}`);
        } finally {
          before.close();
        }
        const seenBefore = before.events;

        agent = await startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig, config });
        const resumed = new EventCollector(agent.client, { fromSequence: (seenBefore.at(-1)?.sequence ?? 0) + 1 });
        try {
          if (phase === 'launch') {
            // The client repeats the request it may not have had an answer to: RunTask is idempotent.
            await run(agent);
            await reach(agent, resumed, id, TaskStatus.TASK_STATUS_RUNNING);
          } else if (phase === 'stop') {
            await stop(agent);
            await reach(agent, resumed, id, TaskStatus.TASK_STATUS_STOPPED);
          } else {
            await resumed.waitForEvent('task removed', (e) => e.taskId === id && e.change?.$case === 'removed', 60_000);
          }

          // No duplicate and no orphan, as the daemon's own client sees it: each container of the
          // task exists once (none after cleanup), and the agent's label is on nothing else.
          const containers = await containersSeenByDaemon(env, [LABELS.agentId, agentId]);
          const names = containers.map((c) => c.labels[LABELS.containerName]).sort();
          assert.deepEqual(names, phase === 'cleanup' ? [] : ['app', 'init', 'side']);
          assert.ok(containers.every((c) => c.labels[LABELS.taskId] === id));
          if (phase === 'launch') {
            const running = Object.fromEntries(containers.map((c) => [c.labels[LABELS.containerName], c.running]));
            assert.deepEqual(running, { init: false, app: true, side: true });
          } else if (phase === 'stop') {
            assert.ok(containers.every((c) => !c.running));
          }

          // No lost or repeated event: what the client saw before the crash and after the restart
          // is one gapless run from 1, and what it saw before matches what the store replays.
          const combined = [...seenBefore, ...resumed.events];
          assertGapless(combined);
          // Each container went through its statuses once each, in order, across the crash.
          if (phase === 'launch') {
            assert.deepEqual(statusesOf(combined, id, 'init'), ['PULLED', 'CREATED', 'RUNNING', 'STOPPED']);
            for (const name of ['app', 'side']) assert.deepEqual(statusesOf(combined, id, name), ['PULLED', 'CREATED', 'RUNNING'], name);
          } else {
            for (const name of ['app', 'side']) assert.equal(statusesOf(combined, id, name).filter((s) => s === 'STOPPED').length, 1, `${name} STOPPED once`);
          }
          const replay = new EventCollector(agent.client, { fromSequence: 1 });
          try {
            const lastSequence = combined.at(-1)!.sequence;
            await replay.waitForEvent('replay to the last sequence seen', (e) => e.sequence === lastSequence);
            assert.deepEqual(
              replay.events.slice(0, combined.length).map((e) => JSON.stringify(e)),
              combined.map((e) => JSON.stringify(e)),
            );
          } finally {
            replay.close();
          }
        } catch (error) {
          // What the agent said, both runs, for whoever reads a failure.
          console.log(readFileSync(join(dir, 'agent.log'), 'utf8').split('\n').slice(-60).join('\n'));
          throw error;
        } finally {
          resumed.close();
          await agent.stop();
          await removeAll(agentId);
        }
      });
    }

    it("removes a container with its agent id that no task owns after the grace period; leaves other agents' alone", async () => {
      const dir = mkdtempSync(join(env.dir, 'agent-'));
      const agentId = `crash${counter++}`;
      await env.runtime.pullImage(env.image, { auth: env.credentials });
      const make = async (name: string, agent: string) => {
        const id = await env.runtime.createContainer({
          name,
          image: env.image,
          command: SERVE,
          env: {},
          labels: { [LABELS.agentId]: agent, [LABELS.taskId]: 'never-recorded', [LABELS.containerName]: 'app' },
          cpuShares: 0,
          memoryBytes: 0,
          memoryReservationBytes: 0,
          network: 'none',
          ports: [],
        });
        await env.runtime.startContainer(id);
        return id;
      };
      // As if an earlier run of this agent created it and died before recording it.
      const orphan = await make(`berth-${agentId}-never-recorded-app`, agentId);
      const foreign = await make(`berth-other${agentId}-never-recorded-app`, `other${agentId}`);
      const agent = await startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig, config: { engine: { orphanGracePeriod: '1s' } } });
      const watch = new EventCollector(agent.client, { fromSequence: 1 });
      try {
        const event = await watch.waitForEvent('orphan removed', (e) => e.change?.$case === 'orphanRemoved');
        assert.equal(event.taskId, 'never-recorded');
        assert.deepEqual(event.change?.$case === 'orphanRemoved' && event.change.value, { runtimeId: orphan, runtimeName: `berth-${agentId}-never-recorded-app`, containerName: 'app' });
        await assert.rejects(env.runtime.inspectContainer(orphan), (error) => isRuntimeError(error, 'not-found'));
        assert.equal((await env.runtime.inspectContainer(foreign)).state, 'running', "another agent's container is left alone");
      } finally {
        watch.close();
        await agent.stop();
        await env.runtime.removeContainer(foreign);
      }
    });

    it('a container that ended while the agent was down is STOPPED with its exit code after the restart; one still running is kept', async () => {
      const dir = mkdtempSync(join(env.dir, 'agent-'));
      const agentId = `crash${counter++}`;
      const id = taskId('down');
      let agent = await startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig });
      try {
        const creds = { registryCredentials: env.credentials };
        await agent.calls.run(task(id, [container('keeper', env.image, { ...creds, command: SERVE }), container('victim', env.image, { ...creds, command: SERVE, essential: false })]));
        const watch = new EventCollector(agent.client, { fromSequence: 1 });
        try {
          await reach(agent, watch, id, TaskStatus.TASK_STATUS_RUNNING);
        } finally {
          watch.close();
        }
        const ids = Object.fromEntries((await labelled(agentId)).map((c) => [c.labels[LABELS.containerName], c.id]));
        if (kind === 'containerd') {
          // The agent saves the tasks it saw running (at most a second after a change): the
          // restarted agent checks those in /proc rather than asking containerd, and must still
          // see the one that ended.
          const saved = join(dir, 'containerd', 'running-tasks.json');
          const both = () => {
            const tasks = (JSON.parse(readFileSync(saved, 'utf8')) as { tasks: Record<string, unknown> }).tasks;
            return ids.keeper! in tasks && ids.victim! in tasks;
          };
          for (let attempt = 0; attempt < 100 && !(existsSync(saved) && both()); attempt++) await new Promise((resolve) => setTimeout(resolve, 100));
          assert.ok(both(), 'both containers are saved as running');
        }
        await agent.kill();
        const pid = (await env.runtime.inspectContainer(ids.victim!)).pid;
        assert.ok(pid);
        const events = new AbortController();
        const stream = await env.runtime.events({ [LABELS.agentId]: agentId }, events.signal);
        process.kill(pid, 'SIGKILL');
        await exitOf(env.runtime, stream, ids.victim!);
        events.abort();

        agent = await startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig });
        const resumed = new EventCollector(agent.client, { fromSequence: 1 });
        try {
          await resumed.waitForEvent('victim STOPPED', is.container(id, 'victim', ContainerStatus.CONTAINER_STATUS_STOPPED), 60_000);
        } finally {
          resumed.close();
        }
        const seen = await agent.calls.get(id);
        assert.equal(containerOf(seen, 'victim').exitCode, 137);
        assert.equal(containerOf(seen, 'keeper').knownStatus, ContainerStatus.CONTAINER_STATUS_RUNNING);
        assert.equal(seen?.knownStatus, TaskStatus.TASK_STATUS_RUNNING);
      } catch (error) {
        console.log(readFileSync(join(dir, 'agent.log'), 'utf8').split('\n').slice(-60).join('\n'));
        throw error;
      } finally {
        await agent.stop();
        await removeAll(agentId);
      }
    });

    it('a watcher streaming across a restart of the agent (SIGTERM, then SIGKILL) resumes with no gap', async () => {
      const dir = mkdtempSync(join(env.dir, 'agent-'));
      const agentId = `crash${counter++}`;
      const id = taskId('stream');
      let agent = await startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig });
      const streams: EventCollector[] = [];
      const watch = (from: number) => {
        const collector = new EventCollector(agent.client, { fromSequence: from });
        streams.push(collector);
        return collector;
      };
      try {
        let current = watch(1);
        await agent.calls.run(definition(id));
        await reach(agent, current, id, TaskStatus.TASK_STATUS_RUNNING);
        const containersBefore = (await labelled(agentId)).map((c) => c.id).sort();

        for (const how of ['SIGTERM', 'SIGKILL'] as const) {
          if (how === 'SIGTERM') await agent.stop();
          else await agent.kill();
          await current.waitForEnd();
          agent = await startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig });
          current = watch((streams.flatMap((s) => s.events).at(-1)?.sequence ?? 0) + 1);
          // New events reach the resumed stream.
          if (how === 'SIGKILL') await agent.calls.stop(id, 'after the restarts');
          const info = { task: await agent.calls.get(id) };
          assert.equal(info.task?.knownStatus, TaskStatus.TASK_STATUS_RUNNING, `the task kept running across the ${how} restart`);
        }
        await reach(agent, current, id, TaskStatus.TASK_STATUS_STOPPED);
        assertGapless(streams.flatMap((s) => s.events));
        assert.deepEqual((await labelled(agentId)).map((c) => c.id).sort(), containersBefore, 'the same containers throughout');
      } finally {
        streams.forEach((s) => s.close());
        await agent.stop();
        await removeAll(agentId);
      }
    });
  });
}
