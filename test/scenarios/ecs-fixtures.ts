import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { loadTaskFile } from '../../src/cli/task-file.js';
import { startTestAgent, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { NetworkMode, taskId, TaskStatus } from '../harness/task-builders.js';

const FIXTURES = new URL('../fixtures/ecs/', import.meta.url);
/** The label of a container whose fixture checks it from inside while it runs (a shell script). */
const CHECK_LABEL = 'test.check';
/** The producer leaves data in a shared volume that the consumer reads: it runs first. */
const ORDER = (name: string) => (name.startsWith('shared-volume-producer') ? 0 : name.startsWith('shared-volume-consumer') ? 2 : 1);

/**
 * Realistic ECS task definitions (test/fixtures/ecs, written for these tests), converted by
 * berthctl's conversion and run unchanged. Each checks itself from inside its containers: a
 * container labelled `test.check` runs until the test has run that script in it; a task without
 * one is a batch job whose essential containers must exit 0.
 */
export function ecsFixtureScenarios(kind: RuntimeKind): void {
  describe(`ECS task definitions of test/fixtures/ecs, converted and run unchanged on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    const sharedVolume = `fixtures-shared-${process.pid}-${kind}`;

    before(async () => {
      env = await startRuntimeEnvironment('ecs-fixtures', kind);
      // ECS task definitions carry no registry credentials: the agent has them per registry.
      // Containers that ignore SIGTERM (sleep as PID 1) are killed after a second, not ten.
      agent = await startTestAgent(env, { images: { registryCredentials: { [env.registry.address]: env.credentials } }, engine: { defaultStopTimeout: '1s' } });
    });
    after(async () => {
      await agent?.agent.parts.runtime.removeVolume(sharedVolume).catch(() => undefined);
      await agent?.stop();
      await env?.stop();
    });

    const files = readdirSync(FIXTURES)
      .filter((f) => f.endsWith('.json'))
      .sort((a, b) => ORDER(a) - ORDER(b) || a.localeCompare(b));
    it('has at least 20 fixtures', () => assert.ok(files.length >= 20, `${files.length} fixtures`));

    for (const file of files) {
      it(file, async () => {
        const text = readFileSync(new URL(file, FIXTURES), 'utf8').replaceAll('IMAGE', env.image).replaceAll('SHARED_VOLUME', sharedVolume);
        const loaded = loadTaskFile(file, text, taskId(file.replace('.json', '')));
        assert.deepEqual(loaded.changesBehaviour, [], 'every field that matters is applied');
        const definition = loaded.definition;
        const id = definition.id;
        const checked = definition.containers.filter((c) => c.labels[CHECK_LABEL]);
        const target = checked.length > 0 ? TaskStatus.TASK_STATUS_RUNNING : TaskStatus.TASK_STATUS_STOPPED;
        const task = await agent.calls.runUntil(definition, target);
        const reasons = `${task.reason}: ${task.containers.map((c) => `${c.name} ${c.exitCode ?? ''} ${c.reason}`).join('; ')}`;
        if (checked.length === 0) {
          for (const c of definition.containers.filter((c) => c.essential !== false)) {
            assert.equal(task.containers.find((s) => s.name === c.name)?.exitCode, 0, `${c.name}: ${reasons}`);
          }
          return;
        }
        // Every port mapping (each port of a range) has a host port of its own.
        for (const c of definition.containers.filter((c) => definition.networkMode !== NetworkMode.NETWORK_MODE_NONE && c.portMappings.length > 0)) {
          const expected = c.portMappings.reduce((n, p) => n + (p.containerPortRange ? Number(p.containerPortRange.split('-')[1]) - Number(p.containerPortRange.split('-')[0]) + 1 : 1), 0);
          const bindings: { hostPort: number }[] = task.containers.find((s) => s.name === c.name)?.portBindings ?? [];
          assert.equal(new Set(bindings.map((b) => b.hostPort)).size, expected, `${c.name}: ${JSON.stringify(bindings)}`);
        }
        for (const c of checked) {
          // Polls for 5 s at most: what it checks may still be starting (a server, a health check).
          const script = `i=0; until (${c.labels[CHECK_LABEL]}); do i=$((i+1)); [ $i -ge 50 ] && exit 1; sleep 0.1; done`;
          const result = await agent.calls.exec(id, c.name, ['sh', '-c', script]);
          assert.equal(result.exitCode, 0, `${c.name}: ${c.labels[CHECK_LABEL]}: ${Buffer.from(result.output).toString('utf8')}`);
        }
        await agent.calls.stopAndWait(id);
      });
    }
  });
}
