import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { berthctl, spawnBerthctl, spawnBerthctlOnTerminal, waitForOutput } from '../harness/berthctl.js';
import { startTestAgent, type TestAgent } from '../harness/agent.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { textOnceServed } from '../harness/processes.js';
import { startAgentProcess } from '../harness/agent-process.js';
import { buildPackage } from '../harness/build.js';
import { HealthCheckClient, ReflectionClient } from '../harness/grpc-clients.js';

/** berthctl as a user runs it (its own process), against an agent on a real daemon. */
export function berthctlScenarios(kind: RuntimeKind): void {
  describe(`berthctl against an agent on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    let dir: string;
    let address: string;
    const ctl = (...args: string[]) => berthctl(['--addr', address, ...args]);
    /** A fixture from test/fixtures/task-files with the test image in place of IMAGE, written to a file. */
    const taskFile = (name: string) => {
      const file = join(dir, name);
      writeFileSync(file, readFileSync(new URL(`../fixtures/task-files/${name}`, import.meta.url), 'utf8').replaceAll('IMAGE', env.image));
      return file;
    };

    before(async () => {
      env = await startRuntimeEnvironment('berthctl', kind);
      dir = mkdtempSync(join(tmpdir(), 'berthctl-'));
      // The Secrets Manager ARNs of the ECS definitions are served from a directory here.
      mkdirSync(join(dir, 'secrets'));
      writeFileSync(join(dir, 'secrets', 'orders-db'), 's3cret-orders\n');
      // ECS task definitions carry no registry credentials: the agent's config has them, per registry.
      agent = await startTestAgent(env, {
        images: { registryCredentials: { [env.registry.address]: env.credentials } },
        security: { allowHostPathMounts: true },
        secrets: { providers: [{ prefix: 'arn:aws:secretsmanager:eu-west-1:123456789012:secret:', file: { directory: join(dir, 'secrets') } }] },
      });
      address = `unix://${agent.socketPath}`;
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    it('runs a berth task file, lists it, describes it (text and JSON), reads its logs and execs in it, then stops it', async () => {
      const run = await ctl('run', '-f', taskFile('berth-app.yaml'), '--id', 'greeter-1', '--wait');
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stdout, /^greeter-1\tcreated\tRUNNING$/m);
      assert.equal(run.stderr, '', 'a berth task file has nothing to warn about');

      const ps = await ctl('ps');
      assert.equal(ps.code, 0, ps.stderr);
      assert.match(ps.stdout, /^TASK ID +FAMILY +STATUS +RUNNING +AGE/m);
      assert.match(ps.stdout, /^greeter-1 +greeter +RUNNING +1\/1 /m);

      const text = await ctl('describe', 'greeter-1');
      assert.equal(text.code, 0, text.stderr);
      assert.match(text.stdout, /^Task: +greeter-1$/m);
      assert.match(text.stdout, /^ {2}app +\S+ +RUNNING \((healthy|unknown)\)/m);
      const json = await ctl('describe', 'greeter-1', '-o', 'json');
      const described = JSON.parse(json.stdout) as { definition: { id: string; containers: { name: string }[] }; knownStatus: string };
      assert.equal(described.definition.id, 'greeter-1');
      assert.equal(described.knownStatus, 'TASK_STATUS_RUNNING');

      // logs -f: the lines there are, then one written while it follows.
      const follow = spawnBerthctl(['--addr', address, 'logs', 'greeter-1', '-f']);
      let followedErr = '';
      follow.stderr.on('data', (chunk: Buffer) => (followedErr += chunk.toString('utf8')));
      await waitForOutput(follow, /hello from greeter\n/);
      const exec = await ctl('exec', 'greeter-1', 'app', '--', 'sh', '-c', 'touch /tmp/go; echo exec says hi; exit 7');
      assert.equal(exec.code, 7, 'the exit code of the command');
      assert.equal(exec.stdout, 'exec says hi\n');
      await waitForOutput(follow, /after go\n/);
      follow.kill('SIGINT');
      const code = await new Promise<number | null>((resolve) => follow.on('close', (exitCode) => resolve(exitCode)));
      assert.equal(code, 0, 'Ctrl-C ends logs -f quietly');
      assert.equal(followedErr, 'to stderr\n', 'stderr lines go to stderr');

      const tail = await ctl('logs', 'greeter-1', 'app', '--tail', '1', '--timestamps');
      assert.match(tail.stdout, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z after go\n$/);
      const stats = await ctl('stats', 'greeter-1', '--no-stream', '--interval', '200ms');
      assert.equal(stats.code, 0, stats.stderr);
      assert.match(stats.stdout, /^TASK +CONTAINER +CPU % +MEM USAGE \/ LIMIT +MEM % +NET I\/O +PIDS$/m);
      assert.match(stats.stdout, /^greeter-1 +app +\d+\.\d\d% +[\d.]+ \w?i?B \/ 64\.0 MiB /m);

      const stop = await ctl('stop', 'greeter-1', '--wait');
      assert.equal(stop.code, 0, stop.stderr);
      assert.match(stop.stdout, /^greeter-1\tSTOPPED$/m);
      assert.doesNotMatch((await ctl('ps')).stdout, /greeter-1/);
      assert.match((await ctl('ps', '-a')).stdout, /^greeter-1 +greeter +STOPPED +0\/1 .*stopped by request/m);
      const execStopped = await ctl('exec', 'greeter-1', 'app', '--', 'true');
      assert.equal(execStopped.code, 1);
      assert.match(execStopped.stderr, /not RUNNING/);
    });

    it('runs an ECS web service with a sidecar: refuses to drop its ephemeral storage size unless told, warns of the fields it does not apply, maps the port, waits for health', async () => {
      const refused = await ctl('run', '-f', taskFile('ecs-web-with-sidecar.json'), '--id', 'shop-1');
      assert.equal(refused.code, 2);
      assert.match(
        refused.stderr,
        /refused: without 1 field of this ECS task definition its containers would not do what it says:\n {2}ephemeralStorage: not applied[^\n]*\nrun it without them anyway with --allow-unapplied/,
      );
      const strict = await ctl('run', '-f', taskFile('ecs-web-with-sidecar.json'), '--id', 'shop-1', '--strict');
      assert.equal(strict.code, 2);
      assert.match(strict.stderr, /refused \(--strict\): berth would not apply 5 fields/);
      assert.match(strict.stderr, /executionRoleArn: not applied/);
      assert.equal((await ctl('ps', '-a')).stdout.includes('shop-1'), false, 'nothing was sent');
      const run = await ctl('run', '-f', taskFile('ecs-web-with-sidecar.json'), '--id', 'shop-1', '--wait', '--allow-unapplied');
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /^warning: berth does not apply 5 fields of this ECS task definition:$/m);
      assert.match(run.stderr, /^ {2}ephemeralStorage: not applied \(berth does not size the containers' writable layers\)$/m);
      assert.match(run.stderr, /^ {2}executionRoleArn: not applied/m);
      const json = JSON.parse((await ctl('describe', 'shop-1', '-o', 'json')).stdout) as { containers: { name: string; portBindings?: { hostPort: number }[] }[] };
      const hostPort = json.containers.find((c) => c.name === 'web')?.portBindings?.[0]?.hostPort;
      assert.ok(hostPort && hostPort > 0, 'a dynamic host port');
      assert.equal(await textOnceServed(`http://127.0.0.1:${hostPort}/index.html`), 'shop production\n');
      // The sidecar waits for web to be HEALTHY (ECS dependsOn), so its start proves the health check.
      const watch = spawnBerthctl(['--addr', address, 'watch', 'shop-1']);
      await waitForOutput(watch, /log-router +RUNNING/);
      watch.kill('SIGINT');
      assert.match((await ctl('logs', 'shop-1', 'log-router')).stdout, /^routing logs$/m);
      assert.equal((await ctl('stop', 'shop-1', '--wait')).code, 0);
    });

    it('runs an ECS awsvpc task in its own network namespace with its secret: the containers reach each other on localhost', async () => {
      const run = await ctl('run', '-f', taskFile('ecs-awsvpc-api.json'), '--id', 'orders-1', '--wait');
      assert.equal(run.code, 0, run.stderr);
      assert.doesNotMatch(run.stderr, /secrets/);
      // The probe loops until it has fetched the api's page over localhost, then exits 0.
      const watch = spawnBerthctl(['--addr', address, 'watch', 'orders-1']);
      await waitForOutput(watch, /probe +STOPPED \(exit 0\)/);
      watch.kill('SIGINT');
      // The api's page holds the length of its DB_PASSWORD secret (13 characters, "s3cret-orders").
      assert.match((await ctl('logs', 'orders-1', 'probe')).stdout, /^orders 13$/m);
      const described = JSON.parse((await ctl('describe', 'orders-1', '-o', 'json')).stdout) as { network?: { ipAddresses: string[] }; definition: { cpuUnits: number; memoryMib: string } };
      assert.ok(described.network?.ipAddresses[0], 'the task has an address');
      assert.equal(described.definition.cpuUnits, 512);
      assert.equal(Number(described.definition.memoryMib), 1024);
      assert.equal((await ctl('stop', 'orders-1', '--wait')).code, 0);
    });

    it('runs what describe-task-definition prints (a batch job), and watch shows it through to STOPPED', async () => {
      const watch = spawnBerthctl(['--addr', address, 'watch', 'report-1', '--until-stopped']);
      let output = '';
      watch.stdout.on('data', (chunk: Buffer) => (output += chunk.toString('utf8')));
      const closed = new Promise<number>((resolve) => watch.on('close', (code) => resolve(code ?? -1)));
      await waitForOutput(watch, /no tasks\n/);
      const run = await ctl('run', '-f', taskFile('ecs-described-batch-job.json'), '--id', 'report-1', '--allow-unapplied');
      assert.equal(run.code, 0, run.stderr);
      assert.match(run.stderr, /volumes\[1\] \("shared"\): not applied/);
      assert.equal(await closed, 0, 'watch --until-stopped ends when the task has stopped');
      assert.match(output, /report-1 {2}prepare STOPPED \(exit 0\)/);
      assert.match(output, /report-1 {2}report RUNNING/);
      assert.match(output, /report-1 {2}task STOPPED/);
      assert.match((await ctl('logs', 'report-1', 'report')).stdout, /^report for 2026-11-27$/m);
      const describe = await ctl('describe', 'report-1');
      assert.match(describe.stdout, /^Family: +nightly-report:7$/m);
    });

    it('on a terminal, watch redraws its view in place as the task changes', async () => {
      const watch = spawnBerthctlOnTerminal(['--addr', address, 'watch', 'tty-1']);
      await waitForOutput(watch, /no tasks/);
      const file = join(dir, 'tty.yaml');
      writeFileSync(file, `id: tty-1\nnetwork_mode: none\ncontainers:\n  - name: app\n    image: ${env.image}\n    command: [sleep, "300"]\n`);
      assert.equal((await ctl('run', '-f', file)).code, 0);
      const shown = await waitForOutput(watch, /tty-1 {2}RUNNING/);
      // Each redraw moves the cursor up over the lines drawn before (CSI n F) and clears below (CSI J).
      assert.match(shown, /\x1b\[\d+F\x1b\[J/);
      assert.match(shown, /app +RUNNING/);
      watch.kill('SIGTERM');
      assert.equal((await ctl('stop', 'tty-1', '--wait')).code, 0);
    });

    it('fails with exit codes and messages that say what to do', async () => {
      const missing = await ctl('describe', 'no-such-task');
      assert.equal(missing.code, 1);
      assert.match(missing.stderr, /task "no-such-task" not found\nList the tasks with `berthctl ps -a`/);
      const badFile = join(dir, 'bad.yaml');
      writeFileSync(badFile, 'family: x\ncontainers:\n  - name: a\n    imag: busybox\n');
      const invalid = await ctl('run', '-f', badFile);
      assert.equal(invalid.code, 2);
      assert.match(invalid.stderr, /containers\[0\]\.imag: unknown field \(did you mean "image"\?\)/);
      const refused = await ctl('run', '-f', '-');
      assert.equal(refused.code, 2, 'an empty file');
      const invalidTask = join(dir, 'no-image.json');
      writeFileSync(invalidTask, JSON.stringify({ id: 'no-image', containers: [{ name: 'a' }] }));
      const rejected = await ctl('run', '-f', invalidTask);
      assert.equal(rejected.code, 1);
      assert.match(rejected.stderr, /the agent refused the request:\n {2}task\.containers\[0\]\.image: /);
      const unreachable = await berthctl(['--addr', join(dir, 'nothing.sock'), 'ps']);
      assert.equal(unreachable.code, 3);
      assert.match(unreachable.stderr, /Is the agent running\? Point berthctl at it with --addr or BERTH_ADDR/);
      assert.equal((await ctl('ps', '--bogus')).code, 2);
      assert.equal((await ctl('launch')).code, 2);
      const info = await berthctl(['info'], { env: { BERTH_ADDR: address } });
      assert.equal(info.code, 0, info.stderr);
      assert.match(info.stdout, new RegExp(`^Runtime: +${kind} `, 'm'));
    });

    it("the package's bins, built (npm run build: dist/berth.mjs, dist/berthctl.mjs), serve and drive a task, with reflection and health", async () => {
      await buildPackage();
      const built = await startAgentProcess({
        dir: mkdtempSync(join(tmpdir(), 'berth-built-')),
        agentId: `built-${kind}`,
        runtimeConfig: env.runtimeConfig,
        compiled: true,
        config: { images: { registryCredentials: { [env.registry.address]: env.credentials } } },
      });
      const reflection = new ReflectionClient(built.socketPath);
      const health = new HealthCheckClient(built.socketPath);
      try {
        const builtCtl = (...args: string[]) => berthctl(['--addr', `unix://${built.socketPath}`, ...args], { built: true });
        const run = await builtCtl('run', '-f', taskFile('berth-app.yaml'), '--id', 'built-1', '--wait');
        assert.equal(run.code, 0, run.stderr);
        assert.match(run.stdout, /^built-1\tcreated\tRUNNING$/m);
        assert.match((await builtCtl('ps')).stdout, /^built-1 +greeter +RUNNING +1\/1 /m);
        const logs = await builtCtl('logs', 'built-1', 'app');
        assert.equal(logs.stdout, 'hello from greeter\n', logs.stderr);
        // The dependencies that read files of their own package (.proto files) found them.
        assert.deepEqual((await reflection.listServices()).filter((name) => name.startsWith('berth.') || name.startsWith('grpc.health')).sort(), [
          'berth.agent.v1.TaskService',
          'grpc.health.v1.Health',
        ]);
        assert.equal(await health.check(), 'SERVING');
        const stop = await builtCtl('stop', 'built-1', '--wait');
        assert.equal(stop.code, 0, stop.stderr);
        assert.match(stop.stdout, /^built-1\tSTOPPED$/m);
      } finally {
        reflection.close();
        health.close();
        await built.stop();
      }
    });
  });
}
