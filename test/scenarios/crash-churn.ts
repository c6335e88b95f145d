import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { LABELS } from '../../src/engine/tasks/labels.js';
import { EventCollector } from '../harness/agent.js';
import { startAgentProcess, type AgentProcess } from '../harness/agent-process.js';
import { containersSeenByDaemon, leftoversSeenByDaemon } from '../harness/daemon-witness.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, DependencyCondition, dependsOn, task, TaskStatus } from '../harness/task-builders.js';

/** A shell that exits at once on SIGTERM, so stops take no stop timeout. */
const SERVE = ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 1 & wait $!; done'];

const KILLS = 8;
const TASKS_PER_ROUND = 4;
/** After the agent answers, it is killed after a random delay in this range (ms). */
const KILL_WINDOW = [150, 2500] as const;

/** A small seeded generator (mulberry32), so a failing run can be repeated with BERTH_TEST_SEED. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** One task of the run, and what the control plane has had acknowledged for it so far. */
interface PlannedTask {
  id: string;
  round: number;
  /** The control plane stops it once its RunTask was acknowledged, whatever state it is in. */
  stops: boolean;
  runAcknowledged: boolean;
  stopAcknowledged: boolean;
}

export function crashChurnScenario(kind: RuntimeKind): void {
  describe(`crash recovery at random moments: the agent SIGKILLed ${KILLS} times while tasks launch and stop (real ${kind})`, () => {
    let env: RuntimeEnvironment;

    before(async () => {
      env = await startRuntimeEnvironment('churn', kind);
    });
    after(async () => {
      await env?.stop();
    });

    it('brings every task to the status the control plane wants, each container once, nothing left behind', async () => {
      const seed = Number(process.env.BERTH_TEST_SEED ?? Date.now() % 1_000_000);
      const next = random(seed);
      const dir = mkdtempSync(join(env.dir, 'agent-'));
      const agentId = 'churn';
      const creds = { registryCredentials: env.credentials };
      // As in the issue that found it: an init container that must succeed before the app starts.
      const definition = (id: string) =>
        task(id, [
          container('init', env.image, { ...creds, command: ['sh', '-c', 'exit 0'], essential: false }),
          container('app', env.image, { ...creds, command: SERVE, dependsOn: [dependsOn('init', DependencyCondition.DEPENDENCY_CONDITION_SUCCESS)] }),
        ]);
      const plan: PlannedTask[] = [];
      const start = () => startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig, config: { images: { pullBehavior: 'default' } } });

      /** The control plane: sends what has not been acknowledged yet, as a real one retries. */
      const drive = (agent: AgentProcess) =>
        Promise.all(
          plan.map(async (t) => {
            if (!t.runAcknowledged) {
              await agent.calls.run(definition(t.id));
              t.runAcknowledged = true;
            }
            if (t.stops && !t.stopAcknowledged) {
              await agent.calls.stop(t.id, 'the control plane scaled down');
              t.stopAcknowledged = true;
            }
          }),
        );

      const kills: number[] = [];
      let agent: AgentProcess | undefined;
      try {
        for (let round = 0; round <= KILLS; round++) {
          for (let i = 0; i < TASKS_PER_ROUND; i++) plan.push({ id: `churn-${round}-${i}`, round, stops: next() < 0.35, runAcknowledged: false, stopAcknowledged: false });
          agent = await start();
          const driving = drive(agent);
          if (round === KILLS) {
            await driving;
            break;
          }
          // Calls in flight fail with the process (maybe before its exit is seen); the next round
          // sends them again.
          const driven = driving.catch(() => undefined);
          const delay = Math.round(KILL_WINDOW[0] + next() * (KILL_WINDOW[1] - KILL_WINDOW[0]));
          kills.push(delay);
          await new Promise((resolve) => setTimeout(resolve, delay));
          await agent.kill();
          await driven;
        }
        assert.ok(agent);
        const live = agent;

        // Each task ends where the control plane wants it: RUNNING, or STOPPED when it was stopped.
        const watch = new EventCollector(live.client, { fromSequence: 1 });
        try {
          for (const t of plan) {
            const wanted = t.stops ? TaskStatus.TASK_STATUS_STOPPED : TaskStatus.TASK_STATUS_RUNNING;
            const settled = (status: TaskStatus | undefined) => status === wanted || status === TaskStatus.TASK_STATUS_STOPPED;
            const current = await live.calls.get(t.id);
            if (!settled(current?.knownStatus)) {
              await watch.waitForEvent(`${t.id} ${TaskStatus[wanted]}`, (e) => e.taskId === t.id && e.change?.$case === 'task' && settled(e.change.value.knownStatus), 120_000);
            }
            const final = await live.calls.get(t.id);
            assert.equal(final?.knownStatus, wanted, `${t.id} should be ${TaskStatus[wanted]}; it is ${TaskStatus[final?.knownStatus ?? 0]}: ${final?.reason}`);
          }
        } finally {
          watch.close();
        }

        // The daemon's own account: each container at most once (exactly once for tasks that run),
        // running exactly when its task should, and nothing of this agent's outside the plan.
        const seen = await containersSeenByDaemon(env, [LABELS.agentId, agentId]);
        const byKey = new Map<string, typeof seen>();
        for (const c of seen) {
          const key = `${c.labels[LABELS.taskId]}/${c.labels[LABELS.containerName]}`;
          byKey.set(key, [...(byKey.get(key) ?? []), c]);
        }
        const planned = new Set(plan.map((t) => t.id));
        for (const [key, copies] of byKey) {
          assert.equal(copies.length, 1, `${key} exists ${copies.length} times`);
          assert.ok(planned.has(key.split('/')[0]!), `${key} belongs to no task of the plan`);
        }
        for (const t of plan) {
          const init = byKey.get(`${t.id}/init`)?.[0];
          const app = byKey.get(`${t.id}/app`)?.[0];
          if (t.stops) {
            assert.ok(!init?.running && !app?.running, `${t.id} was stopped, yet a container of it runs`);
          } else {
            assert.ok(init && !init.running, `${t.id}/init ran to completion once`);
            assert.ok(app?.running, `${t.id}/app runs`);
          }
        }
        const leftovers = await leftoversSeenByDaemon(env);
        assert.deepEqual(leftovers, { snapshots: [], tasks: [] }, 'no snapshot or shim task outside a container');
      } catch (error) {
        console.log(`seed ${seed} (BERTH_TEST_SEED), kills after ${kills.join(', ')} ms`);
        console.log(readFileSync(join(dir, 'agent.log'), 'utf8').split('\n').slice(-80).join('\n'));
        throw error;
      } finally {
        if (agent) {
          await Promise.all(plan.map((t) => agent!.calls.stop(t.id, 'end of test').catch(() => undefined)));
          await agent.stop();
        }
        for (const c of await env.runtime.listContainers({ [LABELS.agentId]: agentId })) await env.runtime.removeContainer(c.id).catch(() => undefined);
      }
    });
  });
}
