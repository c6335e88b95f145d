import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { after, afterEach, describe, it } from 'node:test';
import { compileConfig, defaultConfigInput } from '../../src/config/config.js';
import { InvalidArgumentError } from '../../src/engine/errors.js';
import { validateTaskDefinition } from '../../src/engine/admission/task-validation.js';
import { MAX_SECRET_BYTES, parseEnvironmentFile, type SecretRequester } from '../../src/engine/tasks/container-environment.js';
import { StateStore } from '../../src/engine/store/state-store.js';
import { SecretProviders } from '../../src/secrets/secret-providers.js';
import { containerInput, engineUnderTest, taskInput, taskStatus, type EngineUnderTest } from '../harness/engine-harness.js';

const IMAGE = 'registry.test/app:1';
const requester: SecretRequester = { taskId: 't1', family: 'f', revision: 3, containerName: 'app' };
const scratch = mkdtempSync(join(tmpdir(), 'berth-secrets-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

describe('environment files: the ECS line format', () => {
  it('reads VARIABLE=VALUE lines as they are, skips comments and blank lines, and keeps the first definition', () => {
    assert.deepEqual(parseEnvironmentFile('# db\nDB_HOST=db.internal\r\n\n  # indented comment\nDB_OPTS=a=b c "quoted"\nDB_HOST=other\nEMPTY=\n'), {
      variables: { DB_HOST: 'db.internal', DB_OPTS: 'a=b c "quoted"', EMPTY: '' },
    });
  });

  it('names the number of a malformed line, not its text', () => {
    assert.deepEqual(parseEnvironmentFile('A=1\npassword-without-name\n'), { badLine: 2 });
    assert.deepEqual(parseEnvironmentFile('=value\n'), { badLine: 1 });
    assert.deepEqual(parseEnvironmentFile('MY VAR=1\n'), { badLine: 1 });
  });
});

describe('secret providers: files in a directory, exec plugins, routing by prefix', () => {
  const secretsDir = join(scratch, 'secrets');
  mkdirSync(join(secretsDir, 'team'), { recursive: true });
  writeFileSync(join(secretsDir, 'db'), 'hunter2\n');
  writeFileSync(join(secretsDir, 'team', 'api'), 'k3y');
  writeFileSync(join(secretsDir, 'big'), 'x'.repeat(MAX_SECRET_BYTES + 1));
  writeFileSync(join(scratch, 'outside'), 'not yours');
  symlinkSync(join(scratch, 'outside'), join(secretsDir, 'escape'));
  execFileSync('mkfifo', [join(secretsDir, 'fifo')]);

  const plugin = join(scratch, 'plugin.sh');
  // Answers by the reference: a value, an error, a bad answer, a crash, or silence.
  writeFileSync(
    plugin,
    [
      '#!/bin/sh',
      'request=$(cat)',
      'case "$request" in',
      '  *\'"reference":"vault:ok"\'*) printf \'{"value":"from-plugin for %s"}\' "$(echo "$request" | sed \'s/.*"id":"\\([^"]*\\)".*/\\1/\')" ;;',
      '  *\'"reference":"vault:denied"\'*) echo \'{"error":"permission denied for this task"}\' ;;',
      '  *\'"reference":"vault:garbage"\'*) echo not json ;;',
      '  *\'"reference":"vault:crash"\'*) echo "the value would be here" >&2; exit 3 ;;',
      '  *\'"reference":"vault:hang"\'*) exec sleep 30 ;;',
      'esac',
    ].join('\n'),
  );
  chmodSync(plugin, 0o755);
  const providers = new SecretProviders([
    { prefix: 'file:', file: { directory: secretsDir } },
    { prefix: 'vault:', exec: { command: plugin, args: [], timeoutMs: 2000 } },
  ]);
  const fails = (reference: string, pattern: RegExp) => assert.rejects(providers.resolve(reference, 'secret', requester), pattern);

  it('reads a file of the directory, subdirectories too, without one trailing newline', async () => {
    assert.equal(await providers.resolve('file:db', 'secret', requester), 'hunter2');
    assert.equal(await providers.resolve('file:team/api', 'secret', requester), 'k3y');
    assert.equal(await providers.resolve('file:db', 'environment-file', requester), 'hunter2\n', 'an environment file is given whole');
  });

  it('reaches nothing outside the directory, reads no FIFO, and refuses a file over the limit', async () => {
    await fails('file:../outside', /outside the secret directory/);
    await fails('file:escape', /outside the secret directory/);
    await fails('file:/etc/passwd', /must name a file inside the secret directory/);
    await fails('file:nope', /no such file in the secret directory/);
    await fails('file:fifo', /is not a regular file/);
    await fails('file:big', new RegExp(`larger than ${MAX_SECRET_BYTES} bytes`));
  });

  it("runs a plugin with the reference and the task's identity, and takes its value or its error", async () => {
    assert.equal(await providers.resolve('vault:ok', 'secret', requester), 'from-plugin for t1');
    await fails('vault:denied', /the secret plugin says: permission denied for this task/);
    await fails('vault:garbage', /did not answer with JSON/);
    await fails('vault:crash', /^Error: the secret plugin exited with code 3$/);
    await fails('vault:hang', /did not answer within 2000 ms/);
  });

  it('routes by the longest prefix, and says so when no provider serves a reference', async () => {
    await fails('ssm:x', /no secret provider serves this reference/);
    await assert.rejects(new SecretProviders([]).resolve('x', 'secret', requester), /the agent has no secret providers/);
    const nested = new SecretProviders([
      { prefix: '', file: { directory: join(secretsDir, 'team') } },
      { prefix: 'db', file: { directory: secretsDir } },
    ]);
    assert.equal(await nested.resolve('api', 'secret', requester), 'k3y');
    assert.equal(await nested.resolve('db', 'secret', requester).catch((e: Error) => e.message), 'must name a file inside the secret directory', '"db" with its prefix removed names nothing');
  });

  it('is configured under secrets.providers: one of file and exec each, absolute paths, each prefix once', () => {
    const compile = (providers: unknown) => compileConfig({ ...defaultConfigInput({}), secrets: { providers } });
    assert.deepEqual(compile([{ prefix: 'arn:aws:ssm:', exec: { command: '/usr/libexec/ssm', timeout: '5s' } }]).secrets.providers, [
      { prefix: 'arn:aws:ssm:', exec: { command: '/usr/libexec/ssm', args: [], timeoutMs: 5000 } },
    ]);
    assert.throws(() => compile([{ file: { directory: 'relative' } }]), /secrets\.providers\[0\]\.file\.directory: must be an absolute path/);
    assert.throws(() => compile([{ file: { directory: '/a' }, exec: { command: '/b' } }]), /needs exactly one of "file" and "exec"/);
    assert.throws(() => compile([{ file: { directory: '/a' } }, { prefix: '', file: { directory: '/b' } }]), /secrets\.providers\[1\]\.prefix: "" is served by an earlier provider/);
    assert.throws(() => compile([{ prefix: 'x', exec: { command: '/b', timeout: '1h' } }]), /timeout: must be a duration from 100ms to 5m/);
  });
});

describe('secrets and environment files: validation', () => {
  it('refuses malformed, repeated and duplicated names, empty references, and too many of either', () => {
    try {
      validateTaskDefinition({
        id: 't',
        containers: [
          {
            name: 'app',
            image: IMAGE,
            environment: { DB_HOST: 'x' },
            secrets: [
              { name: 'A=B', valueFrom: 'file:a' },
              { name: 'TOKEN', valueFrom: 'file:t' },
              { name: 'TOKEN', valueFrom: 'file:u' },
              { name: 'DB_HOST', valueFrom: 'file:h' },
              { name: 'EMPTY', valueFrom: '' },
            ],
            environmentFiles: [''],
          },
        ],
      });
      assert.fail('admitted');
    } catch (error) {
      assert.ok(error instanceof InvalidArgumentError);
      assert.deepEqual(
        error.violations.map((v) => v.field),
        [
          'task.containers[0].secrets[0].name',
          'task.containers[0].secrets[2].name',
          'task.containers[0].secrets[3].name',
          'task.containers[0].secrets[4].value_from',
          'task.containers[0].environment_files[0]',
        ],
      );
    }
    assert.throws(
      () => validateTaskDefinition({ id: 't', containers: [{ name: 'app', image: IMAGE, environmentFiles: Array.from({ length: 11 }, (_, i) => `file:${i}`) }] }),
      /environment_files: must have at most 10 entries/,
    );
  });
});

describe('secrets and environment files: the engine (fake runtime and secrets)', () => {
  let t: EngineUnderTest;
  afterEach(async () => {
    await t?.stop();
  });

  it('gives the container its files, environment and secrets, in that order of precedence, resolved at create', async () => {
    t = await engineUnderTest();
    t.runtime.registry.add(IMAGE);
    t.secrets.values.set('file:base.env', '# shared\nLEVEL=from-file\nONLY_FILE=1\n');
    t.secrets.values.set('file:more.env', 'LEVEL=second-file\nSECOND=2\n');
    t.secrets.values.set('vault:db', 'hunter2');
    t.engine.runTask(
      taskInput('t', [
        containerInput('app', { environment: { LEVEL: 'from-environment' }, environmentFiles: ['file:base.env', 'file:more.env'], secrets: [{ name: 'DB_PASSWORD', valueFrom: 'vault:db' }] }),
      ]),
    );
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    const env = [...t.runtime.containers.values()][0]!.spec.env;
    assert.deepEqual(
      { LEVEL: env.LEVEL, ONLY_FILE: env.ONLY_FILE, SECOND: env.SECOND, DB_PASSWORD: env.DB_PASSWORD },
      { LEVEL: 'from-environment', ONLY_FILE: '1', SECOND: '2', DB_PASSWORD: 'hunter2' },
    );
    assert.deepEqual(
      t.secrets.requests.map((r) => [r.reference, r.purpose, r.requester]),
      [
        ['file:base.env', 'environment-file', { taskId: 't', family: 'unit', revision: 1, containerName: 'app' }],
        ['file:more.env', 'environment-file', { taskId: 't', family: 'unit', revision: 1, containerName: 'app' }],
        ['vault:db', 'secret', { taskId: 't', family: 'unit', revision: 1, containerName: 'app' }],
      ],
    );
  });

  it('fails the container with a reason naming the secret, never its value, and the task by its rules; nothing is created', async () => {
    t = await engineUnderTest();
    t.runtime.registry.add(IMAGE);
    t.secrets.values.set('file:bad.env', 'OK=1\nthis line holds hunter2\n');
    t.engine.runTask(taskInput('a', [containerInput('app', { secrets: [{ name: 'DB_PASSWORD', valueFrom: 'vault:missing' }] })]));
    t.engine.runTask(taskInput('b', [containerInput('app', { environmentFiles: ['file:bad.env'] })]));
    await t.waitFor('a STOPPED', taskStatus('a', 'STOPPED'));
    await t.waitFor('b STOPPED', taskStatus('b', 'STOPPED'));
    assert.equal(t.engine.getTask('a').containers[0]?.reason, 'cannot resolve secret "DB_PASSWORD" (from "vault:missing"): no such secret in the test store');
    assert.equal(t.engine.getTask('b').containers[0]?.reason, 'environment file 1 ("file:bad.env"), line 2: not VARIABLE=VALUE');
    assert.equal(t.runtime.containers.size, 0);
  });

  it('keeps the values out of the state store and the events, and resolves them again for a new container', async () => {
    const path = join(scratch, 'state.db');
    const store = new StateStore(path, { count: 10_000, maxAgeMs: 3_600_000 });
    t = await engineUnderTest({ store, taskCleanupWaitMs: 10 });
    t.runtime.registry.add(IMAGE);
    const value = `value-${process.pid}-never-stored`;
    t.secrets.values.set('vault:token', value);
    t.runtime.exitOnStart.set('app', 0);
    t.engine.runTask(taskInput('once', [containerInput('app', { secrets: [{ name: 'TOKEN', valueFrom: 'vault:token' }] })]));
    await t.waitFor('once removed', (e) => e.taskId === 'once' && e.change.type === 'removed');
    t.engine.runTask(taskInput('twice', [containerInput('app', { secrets: [{ name: 'TOKEN', valueFrom: 'vault:token' }] })]));
    await t.waitFor('twice STOPPED', taskStatus('twice', 'STOPPED'));
    assert.equal(t.secrets.requests.length, 2, 'one resolution per create');
    const events = JSON.stringify(store.events.readFrom(1, 100_000));
    assert.ok(!events.includes(value), 'no event holds the value');
    for (const file of [path, `${path}-wal`]) if (existsSync(file)) assert.ok(!readFileSync(file).includes(value), `${file} does not hold the value`);
  });

  it('pulls with registry credentials resolved from a reference, and fails the container naming the reference when they are not {"username","password"}', async () => {
    t = await engineUnderTest();
    const image = 'registry.test/private:1';
    t.runtime.registry.add(image);
    t.runtime.privateImages.set(image, 'right');
    t.secrets.values.set('vault:registry', JSON.stringify({ username: 'deploy', password: 'right' }));
    t.secrets.values.set('vault:garbled', 'right');
    t.engine.runTask(taskInput('ok', [containerInput('app', { image, registryCredentialsParameter: 'vault:registry' })]));
    t.engine.runTask(taskInput('bad', [containerInput('app', { image, registryCredentialsParameter: 'vault:garbled' })]));
    await t.waitFor('ok RUNNING', taskStatus('ok', 'RUNNING'));
    await t.waitFor('bad STOPPED', taskStatus('bad', 'STOPPED'));
    assert.equal(t.engine.getTask('bad').containers[0]?.reason, 'the registry credentials (from "vault:garbled") are not a JSON object {"username": …, "password": …}');
    assert.deepEqual(
      t.secrets.requests.filter((r) => r.requester.taskId === 'ok').map((r) => r.purpose),
      ['registry-credentials'],
    );
    assert.throws(
      () => validateTaskDefinition({ id: 't', containers: [{ name: 'app', image, registryCredentials: { username: 'u', password: 'p' }, registryCredentialsParameter: 'vault:registry' }] }),
      /registry_credentials_parameter: either registry_credentials or registry_credentials_parameter, not both/,
    );
  });

  it("gives the runtime the log driver's options with its secret options resolved, and fails the container naming one that cannot be", async () => {
    t = await engineUnderTest();
    t.runtime.registry.add(IMAGE);
    t.secrets.values.set('vault:splunk', 'hec-token');
    const logConfiguration = (valueFrom: string) => ({ logDriver: 'splunk', options: { 'splunk-url': 'https://splunk.example:8088' }, secretOptions: [{ name: 'splunk-token', valueFrom }] });
    t.engine.runTask(taskInput('ok', [containerInput('app', { logConfiguration: logConfiguration('vault:splunk') })]));
    t.engine.runTask(taskInput('bad', [containerInput('app', { logConfiguration: logConfiguration('vault:none') })]));
    await t.waitFor('ok RUNNING', taskStatus('ok', 'RUNNING'));
    await t.waitFor('bad STOPPED', taskStatus('bad', 'STOPPED'));
    assert.deepEqual([...t.runtime.containers.values()][0]?.spec.logConfiguration, { driver: 'splunk', options: { 'splunk-url': 'https://splunk.example:8088', 'splunk-token': 'hec-token' } });
    assert.equal(t.engine.getTask('bad').containers[0]?.reason, 'cannot resolve the log option "splunk-token" (from "vault:none"): no such secret in the test store');
  });
});
