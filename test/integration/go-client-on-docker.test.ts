import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { connect } from '../../src/client/berth-client.js';
import type { Event } from '../../src/gen/berth/agent/v1/event.js';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { startAgentProcess, type AgentProcess } from '../harness/agent-process.js';
import { TestPki, type Certificate } from '../harness/certificates.js';
import { GoBuilder } from '../harness/go-build.js';
import { freeLoopbackPort } from '../harness/processes.js';
import { startRuntimeEnvironment, type RuntimeEnvironment } from '../harness/runtime-environment.js';
import { container, ContainerStatus, task, TaskStatus } from '../harness/task-builders.js';

const REPO = PACKAGE_ROOT ?? resolve(import.meta.dirname, '../..');

/** A program run to its end, its output kept; `waitFor` resolves once the output satisfies a condition. */
function runProgram(file: string, args: string[], env: NodeJS.ProcessEnv = process.env) {
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const listeners = new Set<() => void>();
  const changed = () => listeners.forEach((listener) => listener());
  child.stdout.on('data', (chunk: Buffer) => ((stdout += chunk.toString('utf8')), changed()));
  child.stderr.on('data', (chunk: Buffer) => ((stderr += chunk.toString('utf8')), changed()));
  const done = new Promise<{ code: number | null; stdout: string; stderr: string }>((resolveDone, reject) => {
    child.on('error', reject);
    child.on('close', (code) => (resolveDone({ code, stdout, stderr }), changed()));
  });
  const waitFor = (what: string, condition: () => boolean, timeoutMs = 60_000) =>
    new Promise<void>((resolveWait, reject) => {
      const check = () => {
        if (condition()) finish();
        else if (child.exitCode !== null) finish(new Error(`the program ended before ${what}:\n${stdout}\n${stderr}`));
      };
      const timer = setTimeout(() => finish(new Error(`timed out waiting for ${what}:\n${stdout}\n${stderr}`)), timeoutMs);
      const finish = (error?: Error) => {
        clearTimeout(timer);
        listeners.delete(check);
        if (error) reject(error);
        else resolveWait();
      };
      listeners.add(check);
      check();
    });
  return { done, waitFor, stdout: () => stdout, stderr: () => stderr };
}

function filesUnder(dir: string): string[] {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => join(entry.parentPath, entry.name).slice(dir.length + 1))
    .sort();
}

describe('the Go client (gen/go, berthclient) and its example against an agent process on real Docker', () => {
  let env: RuntimeEnvironment;
  let dir: string;
  let go: GoBuilder;
  const agentId = `go-client-${process.pid}`;
  let agent: AgentProcess | undefined;
  const pki = new TestPki();
  let ca: Certificate;
  let client: Certificate;
  /** The agent also serves TCP with mTLS here. */
  let tcpAddress: string;
  const start = (events: Record<string, unknown> = {}) =>
    startAgentProcess({
      dir,
      agentId,
      runtimeConfig: env.runtimeConfig,
      config: {
        events: { heartbeatInterval: '1s', ...events },
        grpc: { tcpAddress, tls: { certFile: server.certFile, keyFile: server.keyFile, clientCaFile: clientCa.certFile } },
      },
    });
  let server: Certificate;
  let clientCa: Certificate;

  before(async () => {
    env = await startRuntimeEnvironment('go-client', 'docker');
    env.agentIds.add(agentId);
    dir = mkdtempSync(join(tmpdir(), 'berth-go-client-'));
    go = new GoBuilder();
    ca = pki.authority('server-ca');
    server = pki.issue(ca, 'berth-server', 'server');
    clientCa = pki.authority('client-ca');
    client = pki.issue(clientCa, 'control-plane', 'client');
    tcpAddress = `127.0.0.1:${await freeLoopbackPort()}`;
  });
  after(async () => {
    await agent?.stop();
    await env?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    go?.remove();
  });

  it("gen/go is what buf generates from proto/berth today, and the module, the example, a test's watcher and the benchmarks' Go programs pass go vet", async () => {
    const out = mkdtempSync(join(tmpdir(), 'berth-gen-go-'));
    try {
      await promisify(execFile)(join(REPO, 'node_modules/.bin/buf'), ['generate', '--template', 'buf.gen.go.yaml', '-o', out], { cwd: REPO });
      const generated = join(out, 'gen/go/berth');
      const committed = join(REPO, 'gen/go/berth');
      assert.deepEqual(filesUnder(committed), filesUnder(generated), 'the same files');
      for (const file of filesUnder(generated)) {
        assert.ok(readFileSync(join(committed, file)).equals(readFileSync(join(generated, file))), `gen/go/berth/${file} is out of date: run buf generate --template buf.gen.go.yaml`);
      }
    } finally {
      rmSync(out, { recursive: true, force: true });
    }
    await go.vet('gen/go/...', 'examples/go', 'test/go/watch-events', 'bench/go/event-watcher', 'bench/go/list-tasks');
  });

  it("berthclient's own tests pass (the flow-control windows it grants, no PING drawn by a stream's data, Watch's batch delay)", async () => {
    await go.test('gen/go/berthclient');
  });

  it('the example control plane: agent info, a two-container task until RUNNING, Exec, StopTask until STOPPED', async () => {
    agent = await start();
    const example = await go.build('examples/go');
    const id = 'go-example';
    const result = await runProgram(example, ['-addr', `unix://${agent.socketPath}`, '-image', env.image, '-registry-user', env.credentials.username, '-id', id], {
      ...process.env,
      REGISTRY_PASSWORD: env.credentials.password,
    }).done;
    assert.equal(result.code, 0, `the example failed:\n${result.stdout}\n${result.stderr}`);
    const info = await agent.calls.info();
    assert.match(result.stdout, new RegExp(`^agent ${agentId} \\(berth ${info.version.replaceAll('.', '\\.')}\\) on docker `, 'm'));
    assert.match(result.stdout, /^task go-example is TASK_STATUS_RUNNING with 2 containers$/m);
    assert.match(result.stdout, /^exec exit code 7: hello from web$/m);
    assert.match(result.stdout, /^task go-example is TASK_STATUS_STOPPED: the example is done$/m);
    // The watch printed the task's events, in order, the last being its stop.
    const sequences = [...result.stdout.matchAll(/^event (\d+) /gm)].map((m) => Number(m[1]));
    assert.ok(sequences.length >= 6, result.stdout);
    assert.deepEqual(
      sequences,
      [...sequences].sort((a, b) => a - b),
    );
    assert.equal(new Set(sequences).size, sequences.length, 'no event twice');
    assert.match(result.stdout, /^event \d+ container sidecar CONTAINER_STATUS_RUNNING/m);
    assert.match(result.stdout, /^event \d+ task TASK_STATUS_STOPPED/m);
    // As the agent sees it: the task stopped, with both containers.
    const final = await agent.calls.get(id);
    assert.equal(final?.knownStatus, TaskStatus.TASK_STATUS_STOPPED);
    assert.deepEqual(final?.containers.map((c) => [c.name, c.knownStatus]).sort(), [
      ['sidecar', ContainerStatus.CONTAINER_STATUS_STOPPED],
      ['web', ContainerStatus.CONTAINER_STATUS_STOPPED],
    ]);
  });

  it('berthclient.Dial over TCP with mTLS: refused without a client certificate', async () => {
    agent ??= await start();
    const example = await go.build('examples/go');
    const result = await runProgram(example, ['-addr', tcpAddress, '-cacert', ca.certFile, '-image', env.image, '-id', 'go-no-cert']).done;
    assert.equal(result.code, 1, result.stdout);
    assert.match(result.stderr, /^example: GetAgentInfo: rpc error: code = Unavailable/m);
    assert.equal(result.stdout, '');
  });

  it('berthclient.Watch over TCP with mTLS: every event exactly once and in order across SIGKILLs of the agent', async () => {
    agent ??= await start();
    const watcher = await go.build('test/go/watch-events');
    const brief = (taskId: string) => task(taskId, [container('app', env.image, { registryCredentials: env.credentials, command: ['sh', '-c', 'exit 0'] })]);
    const first = (await agent.calls.info()).latestSequence + 1;
    const tls = ['-cacert', ca.certFile, '-cert', client.certFile, '-key', client.keyFile, '-server-name', 'localhost'];
    const program = runProgram(watcher, ['-addr', tcpAddress, ...tls, '-from', String(first), '-until', 'go-watch-last']);
    const seenTask = (taskId: string) => program.stdout().includes(` ${taskId} `);
    const reconnects = () => (program.stderr().match(/^reconnect \d+: .+$/gm) ?? []).length;
    for (let round = 0; round < 2; round++) {
      const ids = Array.from({ length: 3 }, (_, i) => `go-watch-${round}-${i}`);
      for (const taskId of ids) await agent.calls.run(brief(taskId));
      await program.waitFor(`an event of round ${round}`, () => seenTask(ids[0]!));
      const before = reconnects();
      await agent.kill();
      await program.waitFor('a failed attempt to reconnect', () => reconnects() > before);
      agent = await start();
    }
    await agent.calls.runUntil(brief('go-watch-last'), TaskStatus.TASK_STATUS_STOPPED);
    const result = await program.done;
    assert.equal(result.code, 0, result.stderr);
    assert.doesNotMatch(result.stdout, /^snapshot/m, 'nothing was missed, so no resync');
    const delivered = [...result.stdout.matchAll(/^event (\d+) (\S+) (\S+)$/gm)].map((m) => `${m[1]} ${m[2]} ${m[3]}`);
    const last = Number(delivered.at(-1)!.split(' ')[0]);
    assert.deepEqual(
      delivered.map((line) => Number(line.split(' ')[0])),
      Array.from({ length: last - first + 1 }, (_, i) => first + i),
      'every sequence once, in order, none missing',
    );
    // The same events as one stream replaying them from the store (the TypeScript client).
    const replayer = connect({ address: agent.socketPath });
    try {
      const replay: Event[] = [];
      for await (const message of replayer.watchEvents({ fromSequence: first, maxEventsPerMessage: 100 })) {
        if (message.kind?.$case === 'events') replay.push(...message.kind.value.events);
        if ((replay.at(-1)?.sequence ?? 0) >= last) break;
      }
      assert.deepEqual(
        delivered,
        replay.slice(0, delivered.length).map((e) => `${e.sequence} ${e.taskId} ${e.change?.$case}`),
      );
    } finally {
      replayer.close();
    }
    assert.ok(reconnects() >= 2, result.stderr);
  });

  it('berthclient.Watch from a sequence the agent no longer keeps: a resync snapshot, then gapless events', async () => {
    await agent?.stop();
    agent = await start({ retain: 12, maxWatcherLag: 12, keepInMemory: 12 });
    const brief = (taskId: string) => task(taskId, [container('app', env.image, { registryCredentials: env.credentials, command: ['sh', '-c', 'exit 0'] })]);
    for (let i = 0; i < 3; i++) await agent.calls.runUntil(brief(`go-resync-${i}`), TaskStatus.TASK_STATUS_STOPPED);
    const oldest = (await agent.calls.info()).oldestSequence;
    assert.ok(oldest > 1, `sequence 1 is gone (oldest ${oldest})`);
    const watcher = await go.build('test/go/watch-events');
    const program = runProgram(watcher, ['-addr', agent.socketPath, '-from', '1', '-until', 'go-resync-last']);
    await program.waitFor('the resync snapshot', () => /^snapshot \d+ resync$/m.test(program.stdout()));
    await agent.calls.runUntil(brief('go-resync-last'), TaskStatus.TASK_STATUS_STOPPED);
    const result = await program.done;
    assert.equal(result.code, 0, result.stderr);
    const lines = result.stdout.trim().split('\n');
    const snapshot = /^snapshot (\d+) resync$/.exec(lines[0] ?? '');
    assert.ok(snapshot, `the first item is the resync snapshot:\n${result.stdout}`);
    const sequences = lines.slice(1).map((line) => Number(/^event (\d+) /.exec(line)?.[1]));
    assert.deepEqual(
      sequences,
      Array.from({ length: sequences.length }, (_, i) => Number(snapshot[1]) + 1 + i),
      'events follow the snapshot, each once, none missing',
    );
    assert.match(result.stderr, /OutOfRange/);
  });
});
