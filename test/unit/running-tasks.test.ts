import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, describe, it, mock } from 'node:test';
import { Status, type Process } from '../../src/gen/containerd/types/task.js';
import { RunningTasks } from '../../src/runtime/containerd/running-tasks.js';
import { startTimeIn } from '../../src/runtime/proc-stat.js';

/** The cgroup this process is in, as /proc/<pid>/cgroup names it (the unified hierarchy's line, else the first). */
function ownCgroup(): string {
  const lines = readFileSync('/proc/self/cgroup', 'utf8').trim().split('\n');
  const line = lines.find((l) => l.startsWith('0::')) ?? lines[0]!;
  return line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
}

const running = (pid: number): Process => ({ ...processOf(pid), status: Status.RUNNING });
function processOf(pid: number): Process {
  return { id: 'c', pid, status: Status.STOPPED, stdin: '', stdout: '', stderr: '', terminal: false, exitStatus: 0, containerId: '' } as Process;
}

/** A child process of a shell that never reaps it: a zombie until the shell ends (at most 20 s). */
async function zombie(): Promise<{ pid: number; end(): void }> {
  const shell = spawn('sh', ['-c', 'sleep 0.05 & echo $!; exec sleep 20'], { stdio: ['ignore', 'pipe', 'ignore'] });
  const [chunk] = (await once(shell.stdout, 'data')) as [Buffer];
  const pid = Number(chunk.toString().trim());
  for (let i = 0; i < 200; i++) {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    if (stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z')) return { pid, end: () => shell.kill('SIGKILL') };
    await sleep(10);
  }
  shell.kill('SIGKILL');
  throw new Error(`process ${pid} did not become a zombie within 2 s`);
}

describe('tasks last seen running (containerd listings)', () => {
  it('reads the start time of a live process, counting fields after the last parenthesis of its name', () => {
    const rest = 'S 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 424242 19 20';
    assert.equal(startTimeIn(`77 (sleep) ${rest}`), '424242');
    assert.equal(startTimeIn(`77 (a) b (c) d) ${rest}`), '424242');
    assert.equal(startTimeIn(`77 (sleep) Z${rest.slice(1)}`), undefined, 'a zombie is not alive');
    assert.equal(startTimeIn('not a stat line'), undefined);
    assert.equal(startTimeIn(`77 (sleep) S 1 2`), undefined);
  });

  it('answers a remembered task while its process lives, and forgets it once the process ended', async () => {
    const child = spawn('sleep', ['20'], { stdio: 'ignore' });
    await once(child, 'spawn');
    const tasks = new RunningTasks();
    try {
      tasks.remember({ containerId: 'live', cgroupPath: ownCgroup(), labels: { agent: 'a' }, process: running(child.pid!) });
      tasks.remember({ containerId: 'self', cgroupPath: ownCgroup(), labels: { agent: 'a' }, process: running(process.pid) });
      assert.equal(tasks.size, 2);
      const first = await tasks.stillRunning(['live', 'self', 'never-seen']);
      assert.deepEqual([...first.keys()].sort(), ['live', 'self']);
      assert.equal(first.get('live')?.pid, child.pid);
    } finally {
      child.kill('SIGKILL');
    }
    await once(child, 'exit');
    const second = await tasks.stillRunning(['live', 'self']);
    assert.deepEqual([...second.keys()], ['self']);
    assert.equal(tasks.size, 1, 'the ended process is forgotten');
  });

  it('does not remember a task that is not running, whose process is elsewhere or is a zombie', async () => {
    const tasks = new RunningTasks();
    tasks.remember({ containerId: 'stopped', cgroupPath: ownCgroup(), labels: {}, process: processOf(process.pid) });
    tasks.remember({ containerId: 'created', cgroupPath: ownCgroup(), labels: {}, process: { ...running(process.pid), status: Status.CREATED } });
    tasks.remember({ containerId: 'none', cgroupPath: ownCgroup(), labels: {}, process: undefined });
    tasks.remember({ containerId: 'other cgroup', cgroupPath: '/berth-test/not-this-one', labels: {}, process: running(process.pid) });
    tasks.remember({ containerId: 'no pid', cgroupPath: ownCgroup(), labels: {}, process: running(0) });
    const dead = zombie();
    const { pid, end } = await dead;
    try {
      tasks.remember({ containerId: 'zombie', cgroupPath: ownCgroup(), labels: {}, process: running(pid) });
    } finally {
      end();
    }
    assert.equal(tasks.size, 0);
    // A task remembered earlier and now seen otherwise is forgotten.
    tasks.remember({ containerId: 'self', cgroupPath: ownCgroup(), labels: {}, process: running(process.pid) });
    tasks.remember({ containerId: 'self', cgroupPath: ownCgroup(), labels: {}, process: processOf(process.pid) });
    assert.equal(tasks.size, 0);
  });

  it('forgets the containers a listing with their labels no longer returns', () => {
    const tasks = new RunningTasks();
    tasks.remember({ containerId: 'a', cgroupPath: ownCgroup(), labels: { agent: 'one' }, process: running(process.pid) });
    tasks.remember({ containerId: 'b', cgroupPath: ownCgroup(), labels: { agent: 'one' }, process: running(process.pid) });
    tasks.remember({ containerId: 'c', cgroupPath: ownCgroup(), labels: { agent: 'two' }, process: running(process.pid) });
    tasks.forgetUnlisted({ agent: 'one' }, new Set(['a']));
    assert.equal(tasks.size, 2, 'b is gone; c was not in that listing and stays');
    tasks.forgetUnlisted({}, new Set(['c']));
    assert.equal(tasks.size, 1);
  });

  describe('saved for the next run', () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-running-tasks-'));
    after(() => rmSync(dir, { recursive: true, force: true }));
    const bootId = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

    it('are answered by the next instance (a restarted agent) once /proc shows the same process', async () => {
      const file = join(dir, 'restart.json');
      const child = spawn('sleep', ['20'], { stdio: 'ignore' });
      await once(child, 'spawn');
      const first = new RunningTasks({ file });
      await first.rememberAll([
        { containerId: 'self', cgroupPath: ownCgroup(), labels: { agent: 'a' }, process: running(process.pid) },
        { containerId: 'ended', cgroupPath: ownCgroup(), labels: { agent: 'a' }, process: running(child.pid!) },
      ]);
      first.close();
      child.kill('SIGKILL');
      await once(child, 'exit');
      const next = new RunningTasks({ file });
      assert.equal(next.size, 2);
      const answered = await next.stillRunning(['self', 'ended']);
      assert.deepEqual([...answered.keys()], ['self'], 'the process that ended meanwhile is asked about');
      assert.equal(answered.get('self')?.pid, process.pid);
      assert.equal(answered.get('self')?.status, Status.RUNNING);
      next.forgetUnlisted({ agent: 'a' }, new Set());
      next.close();
      assert.equal(new RunningTasks({ file }).size, 0, 'what was forgotten is saved too');
    });

    it('are written a second after a change, not at every change', () => {
      const file = join(dir, 'later.json');
      mock.timers.enable({ apis: ['setTimeout'] });
      try {
        const tasks = new RunningTasks({ file });
        tasks.remember({ containerId: 'self', cgroupPath: ownCgroup(), labels: {}, process: running(process.pid) });
        assert.equal(existsSync(file), false);
        mock.timers.tick(1000);
        assert.equal(new RunningTasks({ file }).size, 1);
      } finally {
        mock.timers.reset();
      }
    });

    it('are not read from a file of another boot, one that is not theirs, or one too large; bad entries are left out', () => {
      const file = join(dir, 'saved.json');
      const self = { pid: process.pid, startTime: '1', labels: {} };
      const loaded = (content: string) => {
        writeFileSync(file, content);
        return new RunningTasks({ file }).size;
      };
      assert.equal(loaded(JSON.stringify({ bootId: 'another boot', tasks: { a: self } })), 0);
      assert.equal(loaded('{"bootId": "'), 0);
      assert.equal(loaded('null'), 0);
      assert.equal(loaded(JSON.stringify({ bootId, tasks: [] })), 0);
      assert.equal(loaded(JSON.stringify({ bootId, tasks: { a: self } }) + ' '.repeat(33 * 1024 * 1024)), 0);
      const bad = [{ ...self, pid: -1 }, { ...self, pid: 1.5 }, { ...self, startTime: '12x' }, { ...self, labels: { a: 1 } }, { ...self, labels: null }, 'text', null];
      const tasks = Object.fromEntries([...bad.map((task, i) => [`bad-${i}`, task]), ['good', self]]);
      assert.equal(loaded(JSON.stringify({ bootId, tasks })), 1);
    });
  });
});
