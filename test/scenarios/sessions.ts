import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { request } from 'node:http';
import { mkdtempSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import { status } from '@grpc/grpc-js';
import { BerthError } from '../../src/client/errors.js';
import { spawnBerthctl, spawnBerthctlOnTerminal, waitForExit, waitForOutput } from '../harness/berthctl.js';
import { startTestAgent, type TestAgent } from '../harness/agent.js';
import { startAgentProcess } from '../harness/agent-process.js';
import { waitUntil } from '../harness/processes.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, NetworkMode, task, taskId, TaskStatus } from '../harness/task-builders.js';

const run = promisify(execFile);

/** GET over a connection of its own (no keep-alive pool): the body as bytes. */
function get(url: string): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const req = request(url, { agent: false, timeout: 30_000 }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => (response.statusCode === 200 ? resolve(Buffer.concat(chunks)) : reject(new Error(`${url}: HTTP ${response.statusCode}`))));
      response.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`${url}: no answer within 30 s`)));
    req.on('error', reject);
    req.end();
  });
}

/** Interactive sessions (ExecSession, PortForward) through berthctl and the client, on a real daemon. */
export function sessionScenarios(kind: RuntimeKind): void {
  describe(`interactive sessions on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    let address: string;
    const agentLog: string[] = [];
    /** A port the tests' servers listen on in the containers, one per runtime (both lanes run at once). */
    const port = kind === 'docker' ? 8081 : 8082;

    before(async () => {
      env = await startRuntimeEnvironment('sessions', kind);
      // Every log line, at debug level: nothing a session carries may be in one.
      agent = await startTestAgent(env, { logLevel: 'debug', images: { registryCredentials: { [env.registry.address]: env.credentials } } }, (line) => agentLog.push(line));
      address = `unix://${agent.socketPath}`;
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const shellTask = (id: string, networkMode = NetworkMode.NETWORK_MODE_TASK) =>
      agent.calls.runUntil(task(id, [container('app', env.image, { command: ['sleep', '600'] })], { networkMode, family: 'sessions' }));
    /** A task whose container serves /www over HTTP on `port`: index.html, and `big` (1 MiB of random bytes). */
    const webTask = (id: string, networkMode: NetworkMode) =>
      agent.calls.runUntil(
        task(
          id,
          [
            container('web', env.image, {
              command: ['sh', '-c', `mkdir -p /www && echo "hello from ${id}" > /www/index.html && head -c 1048576 /dev/urandom > /www/big && exec httpd -f -p ${port} -h /www`],
            }),
          ],
          {
            networkMode,
            family: 'sessions',
          },
        ),
      );
    /**
     * The command lines of the processes running in a container. Zombies are left out: a killed
     * process whose parent was killed too waits for the container's first process to reap it,
     * which `sleep` never does.
     */
    const processesIn = async (id: string, name: string) =>
      (await agent.calls.shell(id, name, 'ps -o stat,args')).output
        .split('\n')
        .filter((line) => !/^\s*Z/.test(line))
        .map((line) => line.replace(/^\s*\S+\s+/, ''))
        .join('\n')
        .concat('\n');

    it('drives a shell through a terminal: stty size follows a resize, keys reach it (Ctrl-C included), and its exit code is berthctl’s', async () => {
      const id = taskId('tty');
      await shellTask(id);
      const ctl = spawnBerthctlOnTerminal(['--addr', address, 'exec', '-it', id, 'app', '--', 'sh'], 120);
      ctl.stdin.write('stty size\r');
      await waitForOutput(ctl, /\n50 120\r*\n/);

      // The local terminal is resized as a terminal emulator would (TIOCSWINSZ on it): berthctl
      // gets SIGWINCH and passes the new size on.
      const scriptPid = ctl.pid!;
      const berthctlPid = await waitUntil('berthctl under script', 10_000, async () => {
        const { stdout } = await run('pgrep', ['-P', String(scriptPid)]);
        return Number(stdout.trim().split('\n')[0]) || undefined;
      });
      const pts = readlinkSync(`/proc/${berthctlPid}/fd/0`);
      await run('stty', ['-F', pts, 'rows', '40', 'cols', '100']);
      ctl.stdin.write('stty size\r');
      await waitForOutput(ctl, /\n40 100\r*\n/);

      ctl.stdin.write('read line; echo "got:$line"\r');
      ctl.stdin.write('typed by hand\r');
      await waitForOutput(ctl, /got:typed by hand\r*\n/);

      // Ctrl-C is a key like any other: the remote terminal turns it into SIGINT for the sleep.
      ctl.stdin.write('sleep 601\r');
      await waitUntil('sleep running', 10_000, async () => ((await processesIn(id, 'app')).includes('sleep 601\n') ? true : undefined));
      ctl.stdin.write('\x03');
      await waitForOutput(ctl, /\^C/);
      ctl.stdin.write('echo "sleep ended: $?"\r');
      await waitForOutput(ctl, /\nsleep ended: 130\r*\n/);

      ctl.stdin.write('exit 3\r');
      assert.equal(await waitForExit(ctl), 3, 'the remote exit code is berthctl’s');

      // Ctrl-D at an empty prompt is the shell's end-of-file, as at a local terminal. It is typed
      // once the prompt shows: the shell's line editor has the terminal in raw mode then. Typed
      // while the terminal is still in canonical mode (the shell between a command and its next
      // prompt), the terminal would turn it into an empty read that the line editor ignores.
      const again = spawnBerthctlOnTerminal(['--addr', address, 'exec', '-it', '-e', 'PS1=at-prompt> ', id, 'app', '--', 'sh'], 120);
      again.stdin.write('echo ready-$((1+1))\r');
      // The line editor may follow its prompt with a query of the cursor's position (ESC [ 6 n).
      await waitForOutput(again, /ready-2\r*\nat-prompt> (?:\x1b\[[0-9;]*[A-Za-z])*$/);
      again.stdin.write('\x04');
      assert.equal(await waitForExit(again), 0);
      await agent.calls.stopAndWait(id);
    });

    it('pipes 10 MiB of stdin through sha256sum, with stdout and stderr apart', async () => {
      const id = taskId('pipe');
      await shellTask(id);
      const input = randomBytes(10 * 1024 * 1024);
      const ctl = spawnBerthctl(['--addr', address, 'exec', '-i', id, 'app', '--', 'sh', '-c', 'sha256sum; echo to-stderr >&2; exit 5']);
      let stderr = '';
      ctl.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString('utf8')));
      ctl.stdin.end(input);
      const [code] = (await once(ctl, 'close')) as [number | null];
      assert.equal(code, 5);
      const output = await waitForOutput(ctl, /\n/);
      assert.equal(output, `${createHash('sha256').update(input).digest('hex')}  -\n`);
      assert.equal(stderr, 'to-stderr\n');
      await agent.calls.stopAndWait(id);
    });

    it('a killed client leaves no process behind', async () => {
      const id = taskId('killed');
      await shellTask(id);
      const ctl = spawnBerthctl(['--addr', address, 'exec', '-i', id, 'app', '--', 'sh', '-c', 'echo ready; sleep 4321 & sleep 4322']);
      await waitForOutput(ctl, /ready\n/);
      assert.match(await processesIn(id, 'app'), /sleep 4321\n[\s\S]*sleep 4322\n|sleep 4322\n[\s\S]*sleep 4321\n/);
      ctl.kill('SIGKILL');
      await waitUntil('the session’s processes gone', 20_000, async () => (/sleep 432[12]/.test(await processesIn(id, 'app')) ? undefined : true));
      await agent.calls.stopAndWait(id);
    });

    it('refuses bad starts and frames with the field named; runs as the user, in the directory, with the variables asked for', async () => {
      const id = taskId('refusals');
      await shellTask(id);
      const refused = async (options: Parameters<typeof agent.berth.execSession>[0]) => {
        const error = await agent.berth.execSession(options).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(error instanceof BerthError, String(error));
        return error;
      };
      const base = { taskId: id, containerName: 'app', command: ['true'] };
      const badSize = await refused({ ...base, tty: true, terminalSize: { columns: 0, rows: 24 } });
      assert.equal(badSize.code, status.INVALID_ARGUMENT);
      assert.match(badSize.message, /start\.terminal_size/);
      const badUser = await refused({ ...base, user: 'nobody-here' });
      assert.equal(badUser.code, status.INVALID_ARGUMENT);
      assert.match(badUser.message, /no user "nobody-here"/);
      const badDir = await refused({ ...base, workingDirectory: '/no/such/dir' });
      assert.equal(badDir.code, status.INVALID_ARGUMENT);
      assert.match(badDir.message, /working directory "\/no\/such\/dir"/);
      assert.equal((await refused({ ...base, command: [] })).code, status.INVALID_ARGUMENT);
      assert.equal((await refused({ ...base, containerName: 'nope' })).code, status.NOT_FOUND);

      // A user, a working directory and variables of the session's own.
      const session = await agent.berth.execSession({ ...base, command: ['sh', '-c', 'echo "$(id -u):$(pwd):$GREETING"'], user: 'nobody', workingDirectory: '/tmp', environment: { GREETING: 'hi' } });
      let text = '';
      for await (const piece of session.output()) text += piece.data.toString('utf8');
      assert.equal(text, '65534:/tmp:hi\n');
      assert.equal(session.exitCode, 0);

      // A frame over 1 MiB ends the session with INVALID_ARGUMENT, and its process with it.
      const big = await agent.berth.execSession({ ...base, command: ['sh', '-c', 'cat > /dev/null; sleep 4323'], stdin: true });
      await big.write(Buffer.alloc(1024 * 1024 + 1));
      const failed = await (async () => {
        try {
          for await (const _ of big.output());
        } catch (error) {
          return error;
        }
        return undefined;
      })();
      assert.ok(failed instanceof BerthError);
      assert.equal(failed.code, status.INVALID_ARGUMENT);
      assert.match(failed.message, /stdin: must carry at most 1048576 bytes/);
      let left = '';
      await waitUntil('the refused session’s process gone', 20_000, async () => (/cat|sleep 4323/.test((left = await processesIn(id, 'app'))) ? undefined : true)).catch((error: Error) => {
        throw new Error(`${error.message}; processes:\n${left}`);
      });
      await agent.calls.stopAndWait(id);
    });

    it('attach: several readers and one writer on an interactive container with a terminal; a detach leaves it running; its exit ends them all', async () => {
      const id = taskId('attach');
      await agent.calls.runUntil(task(id, [container('app', env.image, { command: ['sh'], interactive: true, pseudoTerminal: true })], { family: 'sessions' }));
      const read = async (attachment: Awaited<ReturnType<typeof agent.berth.attach>>, until: RegExp) => {
        let text = '';
        const iterator = attachment.output()[Symbol.asyncIterator]();
        for (;;) {
          const next = await iterator.next();
          if (next.done) return { text, ended: true };
          text += next.value.data.toString('utf8');
          if (until.test(text)) return { text, ended: false, iterator };
        }
      };
      const readers = await Promise.all([0, 1].map(() => agent.berth.attach({ taskId: id, containerName: 'app' })));
      const writer = await agent.berth.attach({ taskId: id, containerName: 'app', stdin: true });
      const second = await agent.berth.attach({ taskId: id, containerName: 'app', stdin: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(second instanceof BerthError);
      assert.equal(second.code, status.FAILED_PRECONDITION);
      assert.match(second.message, /another client holds the standard input/);

      const seen = Promise.all([...readers, writer].map((a) => read(a, /hello-42\r?\n/)));
      await writer.write(Buffer.from('echo hello-$((6*7))\r'));
      for (const result of await seen) assert.match(result.text, /hello-42\r?\n/);

      // A detach leaves the container running and its input free for another writer.
      writer.cancel();
      const next = await waitUntil('the input free again', 10_000, () => agent.berth.attach({ taskId: id, containerName: 'app', stdin: true }).catch(() => undefined));
      const exits = readers.map(async (reader) => {
        for await (const _ of reader.output());
        return reader.exitCode;
      });
      await next.write(Buffer.from('exit 7\r'));
      assert.deepEqual(await Promise.all(exits), [7, 7], 'every reader gets the exit code');
      next.cancel();
      await agent.calls.stopAndWait(id);

      const plain = taskId('attach-plain');
      await shellTask(plain);
      const refused = await agent.berth.attach({ taskId: plain, containerName: 'app', stdin: true }).then(
        () => undefined,
        (e: unknown) => e,
      );
      assert.ok(refused instanceof BerthError);
      assert.equal(refused.code, status.FAILED_PRECONDITION);
      assert.match(refused.message, /not started with an open standard input/);
      await agent.calls.stopAndWait(plain);
    });

    it('berthctl attach on a terminal: what is typed reaches the container, Ctrl-P Ctrl-Q detaches and leaves it running', async () => {
      const id = taskId('attach-ctl');
      await agent.calls.runUntil(task(id, [container('app', env.image, { command: ['sh'], interactive: true, pseudoTerminal: true })], { family: 'sessions' }));
      const ctl = spawnBerthctlOnTerminal(['--addr', address, 'attach', id], 120);
      // Typed before berthctl has attached, the keys wait in its terminal until it reads them.
      ctl.stdin.write('echo typed-$((20+1))\r');
      await waitForOutput(ctl, /typed-21\r*\n/);
      ctl.stdin.write('\x10\x11');
      assert.equal(await waitForExit(ctl), 0);
      assert.equal((await agent.calls.get(id))?.knownStatus, TaskStatus.TASK_STATUS_RUNNING, 'the container runs on');
      await agent.calls.stopAndWait(id);
    });

    it('an agent SIGKILLed during a session, a one-shot exec and a forwarded connection: the agent after it ends the processes they left, and the relay ends with its agent', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'berth-sessions-crash-'));
      const agentId = `sessions-crash-${process.pid}`;
      env.agentIds.add(agentId);
      const start = () =>
        startAgentProcess({
          dir,
          agentId,
          runtimeConfig: env.runtimeConfig,
          networkConfig: env.networkConfig,
          config: { images: { registryCredentials: { [env.registry.address]: env.credentials } } },
        });
      let crashing = await start();
      const id = taskId('crash');
      try {
        // A server that holds each connection open whatever its client does (its handler, sleep, never reads).
        await crashing.calls.runUntil(
          task(id, [container('app', env.image, { command: ['sh', '-c', `nc -ll -p ${port} -e sleep 1000 & exec sleep 600`] })], { networkMode: NetworkMode.NETWORK_MODE_TASK, family: 'sessions' }),
        );
        const session = await crashing.berth.execSession({ taskId: id, containerName: 'app', command: ['sh', '-c', 'echo ready; sleep 4329'], stdin: true });
        const iterator = session.output()[Symbol.asyncIterator]();
        assert.match((await iterator.next()).value?.data.toString('utf8') ?? '', /ready/);
        // And a one-shot Exec still running (its answer never comes: the agent dies first).
        const oneShot = crashing.calls.exec(id, 'app', ['sleep', '4331'], 600).catch(() => undefined);
        await waitUntil('the one-shot exec runs', 15_000, async () => (/sleep 4331/.test((await crashing.calls.shell(id, 'app', 'ps -o args')).output) ? true : undefined));
        // An idle forwarded connection: nothing but the agent's end would end its relay.
        await waitUntil('nc listens', 15_000, () => crashing.berth.portForward({ taskId: id, port }).catch(() => undefined));
        const relays = async () => (await run('pgrep', ['-f', `berth-port-relay ${port}$`]).catch(() => ({ stdout: '' }))).stdout.trim();
        assert.notEqual(await relays(), '', 'the relay runs');
        await crashing.kill();
        await waitUntil('the relay ended with its agent', 15_000, async () => ((await relays()) === '' ? true : undefined));
        const after = await start();
        crashing = after;
        const inside = async () => (await after.calls.shell(id, 'app', 'ps -o stat,args')).output;
        let left = '';
        await waitUntil('the processes the session and the one-shot exec left ended', 30_000, async () => (/^\s*[^Z\s]\S*\s+sleep 43(29|31)/m.test((left = await inside())) ? undefined : true)).catch(
          (error: Error) => {
            throw new Error(`${error.message}; processes:\n${left}`);
          },
        );
        await oneShot;
        assert.match(left, /sleep 600/, 'the container itself runs on');
        await after.calls.stopAndWait(id);
      } finally {
        await crashing.stop();
      }
    });

    it('logs nothing a session carries either way, at debug level', async () => {
      const id = taskId('quiet');
      await agent.calls.runUntil(
        task(id, [container('app', env.image, { command: ['sh', '-c', `mkdir -p /www && exec httpd -f -p ${port} -h /www`], interactive: true, pseudoTerminal: true })], { family: 'sessions' }),
      );
      const session = await agent.berth.execSession({ taskId: id, containerName: 'app', command: ['sh', '-c', 'read secret; echo "out-$secret"; echo "page-$secret" > /www/index.html'], stdin: true });
      await session.write(Buffer.from('in-5e2d\n'));
      let text = '';
      for await (const piece of session.output()) text += piece.data.toString('utf8');
      assert.equal(text, 'out-in-5e2d\n');
      const attached = await agent.berth.attach({ taskId: id, containerName: 'app', stdin: true });
      await attached.write(Buffer.from('typed-9b7a\r'));
      attached.cancel();
      const forward = await waitUntil('httpd answers', 15_000, () => agent.berth.portForward({ taskId: id, port }).catch(() => undefined));
      await forward.send(Buffer.from('GET /index.html HTTP/1.0\r\n\r\n'));
      let page = '';
      for await (const data of forward.received()) page += data.toString('utf8');
      forward.closeWrite();
      await forward.finished();
      assert.match(page, /page-in-5e2d/);
      await agent.calls.stopAndWait(id);
      assert.ok(agentLog.length > 0, 'the agent logged at debug level');
      for (const marker of ['in-5e2d', 'typed-9b7a', 'GET /index.html']) {
        assert.equal(agentLog.filter((line) => line.includes(marker)).length, 0, `no log line carries "${marker}"`);
      }
    });

    it('port-forward: 20 connections at once to httpd in a task of network mode task, nothing published', async () => {
      const id = taskId('fwd');
      await webTask(id, NetworkMode.NETWORK_MODE_TASK);
      const ctl = spawnBerthctl(['--addr', address, 'port-forward', id, `:${port}`]);
      const listening = await waitForOutput(ctl, /Forwarding from 127\.0\.0\.1:(\d+) -> \d+\n/);
      const local = Number(/127\.0\.0\.1:(\d+)/.exec(listening)![1]);
      // httpd may not listen yet when the task is RUNNING: the first answer is waited for.
      await waitUntil('httpd answers through the forward', 15_000, async () => (await get(`http://127.0.0.1:${local}/index.html`).catch(() => undefined)) && true);
      const expectedBig = (await agent.calls.shell(id, 'web', 'sha256sum /www/big')).output.split(' ')[0];
      const bodies = await Promise.all(Array.from({ length: 20 }, (_, i) => get(`http://127.0.0.1:${local}/${i % 2 === 0 ? 'index.html' : 'big'}`)));
      for (const [i, body] of bodies.entries()) {
        if (i % 2 === 0) assert.equal(body.toString('utf8'), `hello from ${id}\n`);
        else assert.equal(createHash('sha256').update(body).digest('hex'), expectedBig);
      }
      ctl.kill('SIGINT');
      const [code] = (await once(ctl, 'close')) as [number | null];
      assert.equal(code, 0);
      await waitUntil('no relay left', 10_000, async () => ((await run('pgrep', ['-f', `berth-port-relay ${port}$`]).catch(() => ({ stdout: '' }))).stdout.trim() === '' ? true : undefined));
      await agent.calls.stopAndWait(id);
    });

    it('port-forward reaches network modes bridge and none alike, half-closes both ways, and says why when nothing listens', async () => {
      for (const mode of [NetworkMode.NETWORK_MODE_BRIDGE, NetworkMode.NETWORK_MODE_NONE]) {
        const id = taskId(mode === NetworkMode.NETWORK_MODE_BRIDGE ? 'fwd-bridge' : 'fwd-none');
        await webTask(id, mode);
        const fetchOnce = async () => {
          const forward = await agent.berth.portForward({ taskId: id, port });
          await forward.send(Buffer.from('GET /index.html HTTP/1.0\r\n\r\n'));
          // HTTP/1.0: the server answers and closes its side; ours closes after.
          const chunks: Buffer[] = [];
          for await (const data of forward.received()) chunks.push(data);
          forward.closeWrite();
          await forward.finished();
          return Buffer.concat(chunks).toString('utf8');
        };
        const answer = await waitUntil(`httpd in mode ${NetworkMode[mode]} answers`, 15_000, () => fetchOnce().catch(() => undefined));
        assert.match(answer, /^HTTP\/1\.[01] 200 OK\r\n/);
        assert.match(answer, new RegExp(`hello from ${id}\\n$`));
        const refused = await agent.berth.portForward({ taskId: id, port: port + 100 }).then(
          () => undefined,
          (e: unknown) => e,
        );
        assert.ok(refused instanceof BerthError);
        assert.equal(refused.code, status.FAILED_PRECONDITION);
        assert.match(refused.message, new RegExp(`cannot forward to port ${port + 100}: .*Connection refused`));
        await agent.calls.stopAndWait(id);
      }
    });
  });
}
