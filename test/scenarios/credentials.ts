import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ServiceError } from '@grpc/grpc-js';
import { EventCollector, startTestAgent, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, is, task, taskId, TaskStatus } from '../harness/task-builders.js';

const WRONG_PASSWORD = 'wrong-Secret-4711';

/** Registry credentials go to the registry and nowhere else: not to logs, events, answers or errors. */
export function credentialScenarios(kind: RuntimeKind): void {
  describe(`registry credentials stay secret on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    const logs: string[] = [];
    before(async () => {
      env = await startRuntimeEnvironment('secrets', kind);
      // The agent also has the registry's credentials in its config, for containers that bring none.
      agent = await startTestAgent(env, { logLevel: 'trace', images: { registryCredentials: { [env.registry.address]: env.credentials } } }, (line) => logs.push(line));
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    it('never shows the password in logs (at trace level), events, GetTask, ListTasks or errors', async () => {
      const seen: string[] = [];
      const keep = (value: unknown) => seen.push(typeof value === 'string' ? value : JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v)));
      const keepError = (error: ServiceError) => {
        keep(error.message);
        keep(error.details);
        for (const [key, values] of Object.entries(error.metadata.getMap())) keep(`${key}: ${Buffer.isBuffer(values) ? values.toString('utf8') : String(values)}`);
      };
      const watch = new EventCollector(agent.client, { fromSequence: 1 });
      try {
        const good = taskId('secret-ok');
        const bad = taskId('secret-bad');
        keep(await agent.calls.run(task(good, [container('app', env.privateImage, { registryCredentials: env.credentials, command: ['sleep', '300'] })])));
        // Another image than the good task's: with the default pull behaviour a failed pull of an
        // image already present falls back to it, and this pull is to fail for everyone to see.
        keep(await agent.calls.run(task(bad, [container('app', env.image, { registryCredentials: { username: env.credentials.username, password: WRONG_PASSWORD } })])));
        // No credentials in the definition: the agent's, from its config.
        const configured = taskId('secret-config');
        keep(await agent.calls.run(task(configured, [container('app', env.privateImage, { command: ['sleep', '300'] })])));
        await watch.waitForEvent('good RUNNING', is.task(good, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        await watch.waitForEvent('configured RUNNING', is.task(configured, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        await agent.calls.stop(configured, '');
        await watch.waitForEvent('bad STOPPED', is.task(bad, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        // Errors that quote the request: an invalid definition, a different one under a used id.
        await agent.calls.run(task('bad id!', [container('', env.privateImage, { registryCredentials: env.credentials })])).then(keep, keepError);
        await agent.calls.run(task(good, [container('app', env.privateImage, { registryCredentials: { username: 'x', password: WRONG_PASSWORD } })])).then(keep, keepError);
        keep(await agent.calls.get(good));
        const failed = await agent.calls.get(bad);
        keep(failed);
        assert.match(failed?.reason ?? '', /unauthorized|authentication|credentials/i, 'the failed pull says why');
        keep(await agent.calls.listPage({}));
        await agent.calls.stop(good, '');
        await watch.waitForEvent('good STOPPED', is.task(good, TaskStatus.TASK_STATUS_STOPPED), 60_000);
      } finally {
        watch.close();
      }
      keep(watch.messages);
      const everything = [...seen, ...logs].join('\n');
      assert.ok(logs.length > 20 && everything.includes(env.privateImage), 'the search covers the logs of both pulls');
      for (const password of [env.credentials.password, WRONG_PASSWORD]) {
        const where = [...seen, ...logs].filter((text) => text.includes(password));
        assert.deepEqual(where, [], `"${password}" appears`);
      }
    });
  });
}
