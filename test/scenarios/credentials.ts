import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { ServiceError } from '@grpc/grpc-js';
import { EventCollector, startTestAgent, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, is, task, taskId, TaskStatus } from '../harness/task-builders.js';

const WRONG_PASSWORD = 'wrong-Secret-4711';
/** Values of the secrets and environment files: searched for everywhere the agent speaks. */
const DB_PASSWORD = 'db-Secret-0815';
const API_TOKEN = 'api-Token-2342';
const FILE_VALUE = 'env-file-Value-1701';
const md5 = (text: string) => createHash('md5').update(text).digest('hex');

/**
 * Collects what the agent said to a client (answers, errors, events) as text, and asserts that
 * none of it, nor any log line, holds a secret.
 */
function secretSearch() {
  const seen: string[] = [];
  const keep = (value: unknown) => seen.push(typeof value === 'string' ? value : JSON.stringify(value, (_k, v: unknown) => (v instanceof Uint8Array ? Buffer.from(v).toString('utf8') : v)));
  const keepError = (error: ServiceError) => {
    keep(error.message);
    keep(error.details);
    for (const [key, values] of Object.entries(error.metadata.getMap())) keep(`${key}: ${Buffer.isBuffer(values) ? values.toString('utf8') : String(values)}`);
  };
  const assertNowhere = (secrets: string[], logs: string[]) => {
    for (const secret of secrets) {
      const where = [...seen, ...logs].filter((text) => text.includes(secret));
      assert.deepEqual(where, [], `"${secret}" appears`);
    }
  };
  return { seen, keep, keepError, assertNowhere };
}

/** Registry credentials go to the registry and nowhere else: not to logs, events, answers or errors. */
export function credentialScenarios(kind: RuntimeKind): void {
  describe(`registry credentials and secrets stay secret on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    let dir: string;
    const logs: string[] = [];
    before(async () => {
      env = await startRuntimeEnvironment('secrets', kind);
      dir = mkdtempSync(join(tmpdir(), 'berth-secret-providers-'));
      // A file provider's directory, and an exec plugin that keeps each request it gets.
      mkdirSync(join(dir, 'files'));
      writeFileSync(join(dir, 'files', 'db-password'), `${DB_PASSWORD}\n`);
      writeFileSync(join(dir, 'files', 'app.env'), `# from the file\nLEVEL=from-file\nFROM_FILE=${FILE_VALUE}\n`);
      // Registry credentials as ECS keeps them in Secrets Manager: a JSON object.
      writeFileSync(join(dir, 'files', 'registry.json'), JSON.stringify(env.credentials));
      writeFileSync(join(dir, 'files', 'registry-stale.json'), JSON.stringify({ username: env.credentials.username, password: WRONG_PASSWORD }));
      const plugin = join(dir, 'vault-plugin');
      writeFileSync(
        plugin,
        `#!/bin/sh\nrequest=$(cat)\necho "$request" >> '${join(dir, 'requests.jsonl')}'\ncase "$request" in\n  *'"reference":"vault:api-token"'*) echo '{"value":"${API_TOKEN}"}' ;;\n  *) echo '{"error":"no such secret in this vault"}' ;;\nesac\n`,
      );
      chmodSync(plugin, 0o755);
      // The agent also has the registry's credentials in its config, for containers that bring none.
      agent = await startTestAgent(
        env,
        {
          logLevel: 'trace',
          images: { registryCredentials: { [env.registry.address]: env.credentials } },
          secrets: {
            providers: [
              { prefix: 'file:', file: { directory: join(dir, 'files') } },
              { prefix: 'vault:', exec: { command: plugin, timeout: '10s' } },
            ],
          },
        },
        (line) => logs.push(line),
      );
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
      rmSync(dir, { recursive: true, force: true });
    });

    it('never shows the password in logs (at trace level), events, GetTask, ListTasks or errors', async () => {
      const { seen, keep, keepError, assertNowhere } = secretSearch();
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
      assertNowhere([env.credentials.password, WRONG_PASSWORD], logs);
    });

    it('gives containers their secrets and environment files from the providers, and shows the values nowhere else', async () => {
      const { keep, assertNowhere } = secretSearch();
      const logsBefore = logs.length;
      const watch = new EventCollector(agent.client, { fromSequence: 1 });
      try {
        const good = taskId('secrets-ok');
        const denied = taskId('secrets-denied');
        keep(
          await agent.calls.run(
            task(good, [
              container('app', env.image, {
                registryCredentials: env.credentials,
                command: ['sleep', '300'],
                environment: { LEVEL: 'from-environment' },
                environmentFiles: ['file:app.env'],
                secrets: [
                  { name: 'DB_PASSWORD', valueFrom: 'file:db-password' },
                  { name: 'API_TOKEN', valueFrom: 'vault:api-token' },
                ],
              }),
            ]),
          ),
        );
        keep(await agent.calls.run(task(denied, [container('app', env.image, { registryCredentials: env.credentials, secrets: [{ name: 'DB_PASSWORD', valueFrom: 'vault:db' }] })])));
        // Registry credentials by reference: the stale ones are refused although the agent's config has good ones.
        const [byReference, staleReference] = [taskId('registry-ref'), taskId('registry-ref-stale')];
        keep(await agent.calls.run(task(byReference, [container('app', env.privateImage, { command: ['sleep', '300'], registryCredentialsParameter: 'file:registry.json' })])));
        keep(await agent.calls.run(task(staleReference, [container('app', env.image, { registryCredentialsParameter: 'file:registry-stale.json' })])));
        await watch.waitForEvent('by reference RUNNING', is.task(byReference, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        await watch.waitForEvent('stale reference STOPPED', is.task(staleReference, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        const stale = await agent.calls.get(staleReference);
        keep(stale);
        assert.match(stale?.containers[0]?.reason ?? '', /unauthorized|authentication|credentials/i);
        await agent.calls.stop(byReference, '');
        await watch.waitForEvent('good RUNNING', is.task(good, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        await watch.waitForEvent('denied STOPPED', is.task(denied, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        // Inside: the values (compared by digest, so that no answer kept here holds them), environment over the file.
        const inside = await agent.calls.shell(good, 'app', 'for v in "$DB_PASSWORD" "$API_TOKEN" "$FROM_FILE"; do printf %s "$v" | md5sum | cut -d" " -f1; done; echo "$LEVEL"');
        assert.equal(inside.output, [md5(DB_PASSWORD), md5(API_TOKEN), md5(FILE_VALUE), 'from-environment'].join('\n'));
        const requests = readFileSync(join(dir, 'requests.jsonl'), 'utf8')
          .trim()
          .split('\n')
          .map((line) => JSON.parse(line) as { reference: string });
        assert.deepEqual(
          requests.find((r) => r.reference === 'vault:db'),
          { apiVersion: 'berth.dev/v1', kind: 'SecretRequest', reference: 'vault:db', purpose: 'secret', task: { id: denied, family: 'test', revision: 1 }, container: 'app' },
        );
        const failed = await agent.calls.get(denied);
        keep(failed);
        assert.equal(failed?.containers[0]?.reason, 'cannot resolve secret "DB_PASSWORD" (from "vault:db"): the secret plugin says: no such secret in this vault');
        keep(await agent.calls.get(good));
        keep(await agent.calls.listPage({}));
        await agent.calls.stop(good, '');
        await watch.waitForEvent('good STOPPED', is.task(good, TaskStatus.TASK_STATUS_STOPPED), 60_000);
      } finally {
        watch.close();
      }
      keep(watch.messages);
      const fresh = logs.slice(logsBefore);
      assert.ok(fresh.length > 10 && fresh.some((line) => line.includes('secrets-ok')), 'the search covers the logs of these tasks');
      assertNowhere([DB_PASSWORD, API_TOKEN, FILE_VALUE, env.credentials.password, WRONG_PASSWORD], logs);
    });

    it("pulls with a Docker credential helper's credentials, asks it again when the registry refuses them, and shows them nowhere", async () => {
      // The helper's first answer is a stale password, the later ones the registry's.
      const helper = join(dir, 'docker-credential-berthtest');
      writeFileSync(
        helper,
        `#!/bin/sh\n[ "$1" = get ] || exit 2\nread url\necho "$url" >> '${join(dir, 'helper-asked')}'\nif [ "$(wc -l < '${join(dir, 'helper-asked')}')" -eq 1 ]; then secret='${WRONG_PASSWORD}'; else secret='${env.credentials.password}'; fi\nprintf '{"ServerURL":"%s","Username":"%s","Secret":"%s"}' "$url" '${env.credentials.username}' "$secret"\n`,
      );
      chmodSync(helper, 0o755);
      const dockerConfig = join(dir, 'docker-config.json');
      writeFileSync(dockerConfig, JSON.stringify({ credHelpers: { [env.registry.address]: 'berthtest' } }));
      const helperLogs: string[] = [];
      const helped = await startTestAgent(env, { logLevel: 'trace', images: { dockerConfig, credentialHelperDirs: [dir] } }, (line) => helperLogs.push(line));
      const { keep, assertNowhere } = secretSearch();
      const watch = new EventCollector(helped.client, { fromSequence: 1 });
      try {
        const [first, second] = [taskId('helper-a'), taskId('helper-b')];
        keep(await helped.calls.run(task(first, [container('app', env.privateImage, { command: ['sleep', '300'] })])));
        await watch.waitForEvent('first RUNNING', is.task(first, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        const asked = () => readFileSync(join(dir, 'helper-asked'), 'utf8').trim().split('\n');
        assert.deepEqual(asked(), [env.registry.address, env.registry.address], 'asked once, and again after the registry refused the stale password');
        // Within the cache's TTL the next pull uses the credentials it has.
        keep(await helped.calls.run(task(second, [container('app', env.privateImage, { command: ['sleep', '300'] })])));
        await watch.waitForEvent('second RUNNING', is.task(second, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        assert.equal(asked().length, 2);
        keep(await helped.calls.get(first));
        keep(await helped.calls.listPage({}));
        await helped.calls.stop(first, '');
        await helped.calls.stop(second, '');
        await watch.waitForEvent('second STOPPED', is.task(second, TaskStatus.TASK_STATUS_STOPPED), 60_000);
      } finally {
        watch.close();
        await helped.stop();
      }
      keep(watch.messages);
      assert.ok(
        helperLogs.some((line) => line.includes("refused the credential helper's credentials")),
        'the refresh is logged (without the credentials)',
      );
      assertNowhere([env.credentials.password, WRONG_PASSWORD], helperLogs);
    });
  });
}
