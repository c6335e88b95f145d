import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { ProcessLauncher, withSbinPath } from '../../src/engine/process-launcher.js';
import { waitUntil } from '../harness/processes.js';

const env = { PATH: '/usr/bin:/bin' };
const sh = (script: string, timeoutMs = 10_000) => ({ file: 'sh', args: ['-c', script], env, timeoutMs });

describe('the process launcher (libexec/berth-launcher)', () => {
  const launcher = new ProcessLauncher();

  it("gives a program its arguments, environment and input, and returns its exit code, stdout and stderr's end", async () => {
    const script = 'printf "%s|%s|" "$1" "$GREETING"; cat; echo oops >&2; exit 3';
    const result = await launcher.run({ file: 'sh', args: ['-c', script, 'sh', 'ärg'], env: { ...env, GREETING: 'hé' }, input: 'from stdin', timeoutMs: 10_000 });
    assert.deepEqual(result, { code: 3, signal: null, timedOut: false, stdout: 'ärg|hé|from stdin', stdoutBytes: 19, stderr: 'oops\n' });
  });

  it("gives programs started with withSbinPath the agent's PATH and sbin, and none of the rest of its environment", async () => {
    process.env.BERTH_TEST_OPERATOR_SECRET = 'not-for-programs';
    try {
      const result = await launcher.run({ file: 'sh', args: ['-c', 'env | sort'], env: withSbinPath({ CNI_COMMAND: 'ADD' }), timeoutMs: 10_000 });
      const lines = result.stdout.trim().split('\n');
      // sh itself sets PWD (and may set SHLVL): nothing else is there but what was given.
      assert.deepEqual(
        lines.filter((line) => !/^(PWD|SHLVL|_)=/.test(line)),
        ['CNI_COMMAND=ADD', `PATH=${process.env.PATH ?? ''}:/usr/local/sbin:/usr/sbin:/sbin`],
      );
    } finally {
      delete process.env.BERTH_TEST_OPERATOR_SECRET;
    }
  });

  it('writes an input larger than a pipe holds, and keeps no more stdout than asked while counting all of it', async () => {
    const input = 'x'.repeat(300_000);
    assert.equal((await launcher.run({ file: 'cat', env, input, timeoutMs: 10_000 })).stdout, input);
    const bounded = await launcher.run({ file: 'cat', env, input, timeoutMs: 10_000, maxOutputBytes: 10 });
    assert.deepEqual([bounded.stdout, bounded.stdoutBytes], ['xxxxxxxxxx', 300_000]);
  });

  it('runs programs side by side: one waits for a file that another, started after it, writes', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-launcher-'));
    const flag = join(dir, 'flag');
    const waiter = launcher.run(sh(`for i in $(seq 1 100); do [ -e ${flag} ] && echo seen && exit 0; sleep 0.05; done; exit 1`));
    const writer = launcher.run(sh(`touch ${flag}`));
    assert.deepEqual([(await writer).code, (await waiter).stdout], [0, 'seen\n']);
  });

  it('kills a program that outlives its timeout, and reports one a signal ended', async () => {
    // The shell's own child holds stdout open too: it goes with the shell.
    assert.deepEqual(await launcher.run(sh('sleep 30; echo never', 300)), { code: null, signal: 'SIGKILL', timedOut: true, stdout: '', stdoutBytes: 0, stderr: '' });
    const terminated = await launcher.run(sh('kill -TERM $$'));
    assert.deepEqual([terminated.code, terminated.signal, terminated.timedOut], [null, 'SIGTERM', false]);
  });

  it('checks a run: the exit code when accepted, otherwise what failed and its stderr', async () => {
    assert.equal(await launcher.runChecked(sh('exit 1'), 'probe', [0, 1]), 1);
    await assert.rejects(launcher.runChecked(sh('echo "no such device" >&2; exit 2'), 'ip link show x'), /^Error: ip link show x failed: no such device$/);
    await assert.rejects(launcher.runChecked(sh('sleep 30', 200), 'slow'), /^Error: slow failed: it did not finish within 200 ms and was killed$/);
    await assert.rejects(launcher.runChecked({ file: '/nonexistent', env, timeoutMs: 1000 }, 'missing'), /^Error: missing failed: cannot run \/nonexistent: No such file or directory$/);
  });

  it('rejects a program that cannot be started, saying why', async () => {
    await assert.rejects(launcher.run({ file: '/nonexistent/plugin', env, timeoutMs: 1000 }), /cannot run \/nonexistent\/plugin: No such file or directory/);
    const notExecutable = join(mkdtempSync(join(tmpdir(), 'berth-launcher-')), 'plugin');
    writeFileSync(notExecutable, '#!/bin/sh\n', { mode: 0o644 });
    await assert.rejects(launcher.run({ file: notExecutable, env, timeoutMs: 1000 }), /cannot run .*\/plugin: Permission denied/);
  });

  it('fails what a launcher that died was running, and the next call starts another', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-launcher-'));
    const parent = join(dir, 'ppid');
    const running = launcher.run(sh(`echo $PPID $$ > ${parent}; exec sleep 30`));
    await waitUntil('the program running', 10_000, async () => (existsSync(parent) && readFileSync(parent, 'utf8').endsWith('\n') ? true : undefined));
    const [launcherPid, programPid] = readFileSync(parent, 'utf8').trim().split(' ').map(Number);
    process.kill(launcherPid!, 'SIGKILL');
    await assert.rejects(running, /berth's process launcher \(.*berth-launcher\) exited \(SIGKILL\)/);
    process.kill(programPid!, 'SIGKILL');
    assert.equal((await launcher.run(sh('echo again'))).stdout, 'again\n');
  });

  it("puts the end of a launcher's own stderr in the error of its exit", async () => {
    const broken = join(mkdtempSync(join(tmpdir(), 'berth-launcher-')), 'broken-launcher');
    writeFileSync(broken, 'import sys\nsys.stdin.readline()\nraise SystemExit("the launcher cannot go on")\n');
    const failing = new ProcessLauncher(broken);
    await assert.rejects(failing.run(sh('true')), /berth's process launcher \(.*broken-launcher\) exited \(code 1\): the launcher cannot go on$/);
  });

  it('starts again after it was let go idle', async () => {
    launcher.close();
    assert.equal((await launcher.run(sh('echo back'))).stdout, 'back\n');
    launcher.close();
  });
});
