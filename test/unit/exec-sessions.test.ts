import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { status } from '@grpc/grpc-js';
import { BerthError } from '../../src/client/errors.js';
import { TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { signalByName, execSessionViolations } from '../../src/engine/admission/session-validation.js';
import { DEFAULT_REQUEST_LIMITS } from '../../src/engine/admission/request-limits.js';
import { parsePortPair } from '../../src/cli/commands/sessions.js';
import { containerInput, engineUnderTest, serveOverGrpc, taskInput, type EngineUnderTest, type ServedEngine } from '../harness/engine-harness.js';

describe('ExecSession rules (the engine on the fake runtime, over gRPC)', () => {
  let t: EngineUnderTest;
  let served: ServedEngine;
  before(async () => {
    t = await engineUnderTest({ sessionIdleTimeoutMs: 1000, limits: { concurrentExecs: 2 } });
    t.runtime.registry.add('registry.test/app:1');
    served = await serveOverGrpc(t);
    t.engine.runTask(taskInput('sess', [containerInput('app')]));
    await served.berth.waitForTask('sess', TaskStatus.TASK_STATUS_RUNNING, { timeoutMs: 10_000 });
  });
  after(async () => {
    await served?.stop();
  });
  const start = (extra: Record<string, unknown> = {}) => served.berth.execSession({ taskId: 'sess', containerName: 'app', command: ['cat'], stdin: true, ...extra });
  const failure = async (promise: Promise<unknown>) => {
    const error = await promise.then(
      () => undefined,
      (e: unknown) => e,
    );
    assert.ok(error instanceof BerthError, String(error));
    return error;
  };

  it('carries stdin to the process and its output back, in order, then the exit code; resizes and signals reach the runtime', async () => {
    const session = await start({ tty: true, terminalSize: { columns: 100, rows: 30 }, environment: { A: '1' }, user: 'nobody', workingDirectory: '/tmp' });
    const opened = t.runtime.sessions.at(-1)!;
    assert.deepEqual(opened.options, { tty: true, stdin: true, terminalSize: { columns: 100, rows: 30 }, env: { A: '1' }, user: 'nobody', workingDir: '/tmp' });
    for (let i = 0; i < 50; i++) await session.write(Buffer.from(`line ${i}\n`));
    await session.resize({ columns: 120, rows: 40 });
    await session.signal('int');
    await session.closeStdin();
    let text = '';
    for await (const piece of session.output()) {
      assert.equal(piece.stream, 'stdout');
      text += piece.data.toString('utf8');
    }
    assert.equal(text, Array.from({ length: 50 }, (_, i) => `line ${i}\n`).join(''));
    assert.equal(session.exitCode, 0);
    assert.deepEqual(opened.resizes, [{ columns: 120, rows: 40 }]);
    assert.deepEqual(opened.signals, ['SIGINT']);
    assert.equal(opened.closed, true, 'the runtime session was closed after the exit');
  });

  it('refuses a bad resize or signal, and stdin to a process without one, naming the field; the process is ended', async () => {
    for (const [extra, send, field] of [
      [{ tty: true }, (s: Awaited<ReturnType<typeof start>>) => s.resize({ columns: 0, rows: 5 }), /resize: columns and rows/],
      [{}, (s: Awaited<ReturnType<typeof start>>) => s.signal('SIGNOPE'), /signal: "SIGNOPE" is not a signal name/],
      [{ stdin: false }, (s: Awaited<ReturnType<typeof start>>) => s.write(Buffer.from('x')), /stdin: the process has no standard input/],
    ] as const) {
      const session = await start(extra);
      const opened = t.runtime.sessions.at(-1)!;
      await send(session);
      const error = await failure(
        (async () => {
          for await (const _ of session.output());
        })(),
      );
      assert.equal(error.code, status.INVALID_ARGUMENT);
      assert.match(error.message, field);
      assert.equal(opened.closed, true);
    }
  });

  it('counts sessions against limits.concurrentExecs and gives the slot back when one ends', async () => {
    const first = await start();
    const second = await start();
    const third = await failure(start());
    assert.equal(third.code, status.RESOURCE_EXHAUSTED);
    assert.match(third.message, /limits\.concurrentExecs/);
    first.cancel();
    // The slot comes back once the agent has seen the cancel and closed the process.
    const deadline = Date.now() + 10_000;
    let again;
    while (!again && Date.now() < deadline) again = await start().catch(() => undefined);
    assert.ok(again, 'a slot was given back');
    again.cancel();
    second.cancel();
  });

  it('ends a session through which nothing passed for the idle timeout with DEADLINE_EXCEEDED', async () => {
    const session = await start();
    const opened = t.runtime.sessions.at(-1)!;
    const error = await failure(
      (async () => {
        for await (const _ of session.output());
      })(),
    );
    assert.equal(error.code, status.DEADLINE_EXCEEDED);
    assert.match(error.message, /engine\.sessionIdleTimeout/);
    assert.equal(opened.closed, true);
  });

  it('attach: one client at a time holds the input, the others only read; a detach frees it', async () => {
    const writer = await served.berth.attach({ taskId: 'sess', containerName: 'app', stdin: true });
    const second = await failure(served.berth.attach({ taskId: 'sess', containerName: 'app', stdin: true }));
    assert.equal(second.code, status.FAILED_PRECONDITION);
    const reader = await served.berth.attach({ taskId: 'sess', containerName: 'app' });
    await reader.write(Buffer.from('x'));
    const refused = await failure(
      (async () => {
        for await (const _ of reader.output());
      })(),
    );
    assert.equal(refused.code, status.INVALID_ARGUMENT);
    assert.match(refused.message, /stdin: attached without stdin/);
    writer.cancel();
    const deadline = Date.now() + 10_000;
    let again;
    while (!again && Date.now() < deadline) again = await served.berth.attach({ taskId: 'sess', containerName: 'app', stdin: true }).catch(() => undefined);
    assert.ok(again, 'the input was given back');
    again.cancel();
  });

  it('refuses a stream whose first message is not start', async () => {
    const call = served.client.execSession();
    call.write({ kind: { $case: 'stdin', value: Buffer.from('x') } });
    const error = await new Promise<{ code: number; details: string }>((resolve) => call.on('error', resolve));
    assert.equal(error.code, status.INVALID_ARGUMENT);
    assert.match(error.details, /start: the first message must be start/);
  });
});

describe('ExecSession start validation', () => {
  const base = { taskId: 't', containerName: 'c', command: ['sh'], tty: false, env: {}, user: '', workingDir: '', stdin: false };
  it('names each bad field', () => {
    const fields = (extra: Partial<typeof base> & { terminalSize?: { columns: number; rows: number } }) => execSessionViolations({ ...base, ...extra }, DEFAULT_REQUEST_LIMITS).map((v) => v.field);
    assert.deepEqual(fields({}), []);
    assert.deepEqual(fields({ command: [] }), ['start.command']);
    assert.deepEqual(fields({ terminalSize: { columns: 10_001, rows: 1 } }), ['start.terminal_size']);
    assert.deepEqual(fields({ env: { 'A=B': 'x' } }), ['start.environment["A=B"]']);
    assert.deepEqual(fields({ env: Object.fromEntries(Array.from({ length: 101 }, (_, i) => [`V${i}`, ''])) }), ['start.environment']);
    assert.deepEqual(fields({ user: 'a:b:c' }), ['start.user']);
    assert.deepEqual(fields({ user: 'x'.repeat(5000) }), ['start.user']);
    assert.deepEqual(fields({ workingDir: 'relative' }), ['start.working_directory']);
  });
  it('knows signals by name, with or without SIG, in any case', () => {
    assert.equal(signalByName('SIGTERM'), 'SIGTERM');
    assert.equal(signalByName('hup'), 'SIGHUP');
    assert.equal(signalByName('SIGNOPE'), undefined);
    assert.equal(signalByName('constructor'), undefined);
  });
  it('berthctl port-forward reads LOCAL:REMOTE, REMOTE and :REMOTE', () => {
    assert.deepEqual(parsePortPair('8080:80'), { local: 8080, remote: 80 });
    assert.deepEqual(parsePortPair('80'), { local: 80, remote: 80 });
    assert.deepEqual(parsePortPair(':80'), { local: 0, remote: 80 });
    assert.throws(() => parsePortPair('0'), /ports are 1 to 65535/);
    assert.throws(() => parsePortPair('a:b'), /LOCAL:REMOTE/);
    assert.throws(() => parsePortPair('1:70000'), /ports are 1 to 65535/);
  });
});
