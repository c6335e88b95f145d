import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, it } from 'node:test';
import { InvalidArgumentError } from '../../src/engine/errors.js';
import { validateTaskDefinition } from '../../src/engine/admission/task-validation.js';
import { cpuQuotaOf, cpuWeightOf, HostTaskCgroups, parseCgroupMounts } from '../../src/runtime/task-cgroups.js';
import { containerInput, engineUnderTest, taskInput, taskStatus, type EngineUnderTest } from '../harness/engine-harness.js';
import { FakeTaskCgroups } from '../harness/fake-task-cgroups.js';

const IMAGE = 'registry.test/app:1';
const MIB = 1024 * 1024;

/** This machine's kind of mountinfo: cgroup v1 controllers, the v2 hierarchy beside them (hybrid). */
const HYBRID = [
  '31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755',
  '32 31 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct',
  '35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory',
  '40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd',
  '41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw',
  '42 31 0:39 /docker/abc /sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids',
].join('\n');

describe('task cgroups: the host file system (directory models of v1 and v2)', () => {
  const dirs: string[] = [];
  const scratch = () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-cgroups-'));
    dirs.push(dir);
    return dir;
  };
  afterEach(() => {
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  it('reads the hierarchies from mountinfo, skipping mounts of part of one', () => {
    assert.deepEqual(parseCgroupMounts(HYBRID), [
      { mountPoint: '/sys/fs/cgroup/cpu,cpuacct', version: 1, controllers: ['cpu', 'cpuacct'] },
      { mountPoint: '/sys/fs/cgroup/memory', version: 1, controllers: ['memory'] },
      { mountPoint: '/sys/fs/cgroup/systemd', version: 1, controllers: ['xattr', 'name=systemd'] },
      { mountPoint: '/sys/fs/cgroup/unified', version: 2, controllers: [] },
    ]);
  });

  it('turns CPU units into a CFS quota and a v2 weight as runc does', () => {
    assert.equal(cpuQuotaOf(1024), 100_000, 'one core');
    assert.equal(cpuQuotaOf(256), 25_000);
    assert.equal(cpuQuotaOf(1), 1000, "the kernel's smallest quota");
    assert.equal(cpuWeightOf(2), 1);
    assert.equal(cpuWeightOf(1024), 39);
    assert.equal(cpuWeightOf(262_144), 10_000);
  });

  it('on v1: writes the limits in the memory and cpu hierarchies and removes the cgroup from every hierarchy', async () => {
    const root = scratch();
    for (const h of ['memory', 'cpu', 'pids']) mkdirSync(join(root, h));
    const mountinfo = join(root, 'mountinfo');
    writeFileSync(mountinfo, ['memory', 'cpu', 'pids'].map((h, i) => `${30 + i} 1 0:${i} / ${root}/${h} rw - cgroup cgroup rw,${h}`).join('\n'));
    const cgroups = new HostTaskCgroups(mountinfo);
    const path = cgroups.pathOf('agent-1', 'web.1');
    assert.equal(path, '/berth/agent-1/web.1');
    await cgroups.prepare(path, { cpuUnits: 512, memoryBytes: 64 * MIB });
    assert.equal(readFileSync(join(root, 'memory', path, 'memory.limit_in_bytes'), 'utf8'), String(64 * MIB));
    assert.equal(readFileSync(join(root, 'cpu', path, 'cpu.cfs_quota_us'), 'utf8'), '50000');
    assert.equal(readFileSync(join(root, 'cpu', path, 'cpu.cfs_period_us'), 'utf8'), '100000');
    assert.equal(readFileSync(join(root, 'cpu', path, 'cpu.shares'), 'utf8'), '512');
    // Memory only: the CPU is left unlimited, with the default weight.
    await cgroups.prepare(path, { cpuUnits: 0, memoryBytes: 64 * MIB });
    assert.equal(readFileSync(join(root, 'cpu', path, 'cpu.cfs_quota_us'), 'utf8'), '-1');
    assert.equal(readFileSync(join(root, 'cpu', path, 'cpu.shares'), 'utf8'), '1024');
    assert.deepEqual(await cgroups.list('agent-1'), ['web.1']);
    assert.deepEqual(await cgroups.list('agent-2'), []);

    // runc made the task's cgroup in the pids hierarchy too: it goes as well. (A directory model:
    // the real kernel removes a cgroup's files with it; here they are removed first.)
    mkdirSync(join(root, 'pids', path), { recursive: true });
    for (const [h, files] of [
      ['memory', ['memory.limit_in_bytes']],
      ['cpu', ['cpu.cfs_quota_us', 'cpu.cfs_period_us', 'cpu.shares']],
    ] as const) {
      for (const file of files) rmSync(join(root, h, path, file));
    }
    await cgroups.remove(path);
    for (const h of ['memory', 'cpu', 'pids']) assert.equal(existsSync(join(root, h, path)), false, h);
    await cgroups.remove(path);
  });

  it('on v2: enables the controllers from the root down and writes memory.max, cpu.max and cpu.weight', async () => {
    const root = scratch();
    writeFileSync(join(root, 'cgroup.controllers'), 'cpuset cpu io memory hugetlb pids rdma misc\n');
    const mountinfo = join(root, 'mountinfo');
    writeFileSync(mountinfo, `30 1 0:26 / ${root} rw - cgroup2 cgroup2 rw,nsdelegate\n`);
    // The kernel fills cgroup.controllers of a new cgroup; the model does it before each level is made.
    mkdirSync(join(root, 'berth', 'agent-1'), { recursive: true });
    writeFileSync(join(root, 'berth', 'cgroup.controllers'), 'cpu memory pids\n');
    writeFileSync(join(root, 'berth', 'agent-1', 'cgroup.controllers'), 'cpu memory\n');
    const cgroups = new HostTaskCgroups(mountinfo);
    const path = cgroups.pathOf('agent-1', 't1');
    await cgroups.prepare(path, { cpuUnits: 2048, memoryBytes: 256 * MIB });
    assert.equal(readFileSync(join(root, 'cgroup.subtree_control'), 'utf8'), '+cpu +memory +pids');
    assert.equal(readFileSync(join(root, 'berth', 'cgroup.subtree_control'), 'utf8'), '+cpu +memory +pids');
    assert.equal(readFileSync(join(root, 'berth', 'agent-1', 'cgroup.subtree_control'), 'utf8'), '+cpu +memory');
    assert.equal(readFileSync(join(root, path, 'memory.max'), 'utf8'), String(256 * MIB));
    assert.equal(readFileSync(join(root, path, 'cpu.max'), 'utf8'), '200000 100000');
    assert.equal(readFileSync(join(root, path, 'cpu.weight'), 'utf8'), String(cpuWeightOf(2048)));
    await cgroups.prepare(path, { cpuUnits: 0, memoryBytes: 256 * MIB });
    assert.equal(readFileSync(join(root, path, 'cpu.max'), 'utf8'), 'max 100000');
    assert.deepEqual(await cgroups.list('agent-1'), ['t1']);
  });
});

describe('task cgroups: the engine (fake runtime and cgroups)', () => {
  let t: EngineUnderTest;
  afterEach(async () => {
    await t?.stop();
  });

  it('refuses task-level memory below the minimum and under the reservations of its containers', () => {
    try {
      validateTaskDefinition({ id: 't', memoryMib: 4, containers: [{ name: 'a', image: IMAGE }] });
      assert.fail('admitted');
    } catch (error) {
      assert.ok(error instanceof InvalidArgumentError);
      assert.deepEqual(
        error.violations.map((v) => v.field),
        ['task.memory_mib'],
      );
    }
    try {
      validateTaskDefinition({
        id: 't',
        memoryMib: 100,
        containers: [
          { name: 'a', image: IMAGE, memoryReservationMib: 60 },
          { name: 'b', image: IMAGE, memoryReservationMib: 60 },
        ],
      });
      assert.fail('admitted');
    } catch (error) {
      assert.ok(error instanceof InvalidArgumentError);
      assert.match(error.violations[0]?.description ?? '', /less than the containers' memory_reservation_mib together \(100 < 120\)/);
    }
  });

  it("puts every container of a task with task-level limits in the task's cgroup, and removes it at cleanup", async () => {
    t = await engineUnderTest({ taskCleanupWaitMs: 10 });
    t.runtime.registry.add(IMAGE);
    const removed = t.taskCgroups.removal('/berth/unit/t');
    t.engine.runTask({ ...taskInput('t', [containerInput('app'), containerInput('side', { essential: false })]), cpuUnits: 512, memoryMib: 128 });
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    assert.deepEqual(t.taskCgroups.cgroups.get('/berth/unit/t'), { cpuUnits: 512, memoryBytes: 128 * MIB });
    assert.deepEqual(
      [...t.runtime.containers.values()].map((c) => c.spec.cgroupParent),
      ['/berth/unit/t', '/berth/unit/t'],
    );
    t.engine.stopTask('t', 'done');
    await removed;
    assert.equal(t.taskCgroups.cgroups.size, 0);
  });

  it('gives a task without task-level limits no cgroup of its own', async () => {
    t = await engineUnderTest();
    t.runtime.registry.add(IMAGE);
    t.engine.runTask(taskInput('t', [containerInput('app', { memoryMib: 64 })]));
    await t.waitFor('task RUNNING', taskStatus('t', 'RUNNING'));
    assert.equal(t.taskCgroups.cgroups.size, 0);
    assert.equal([...t.runtime.containers.values()][0]?.spec.cgroupParent, undefined);
  });

  it('fails the container with a reason when the cgroup cannot be made', async () => {
    t = await engineUnderTest();
    t.runtime.registry.add(IMAGE);
    t.taskCgroups.failPrepare = 'EACCES: permission denied';
    t.engine.runTask({ ...taskInput('t', [containerInput('app')]), memoryMib: 64 });
    await t.waitFor('task STOPPED', taskStatus('t', 'STOPPED'));
    assert.match(t.engine.getTask('t').containers[0]?.reason ?? '', /cannot set up the task's cgroup for its task-level cpu and memory: EACCES/);
    assert.equal(t.runtime.containers.size, 0, 'nothing was created outside the limits');
  });

  it('removes the cgroup of a task the agent no longer has at a synchronization', async () => {
    const taskCgroups = new FakeTaskCgroups();
    await taskCgroups.prepare('/berth/unit/lost', { cpuUnits: 0, memoryBytes: 64 * MIB });
    await taskCgroups.prepare('/berth/other-agent/theirs', { cpuUnits: 0, memoryBytes: 64 * MIB });
    const removed = taskCgroups.removal('/berth/unit/lost');
    t = await engineUnderTest({ taskCgroups, relistIntervalMs: 50 });
    await removed;
    assert.deepEqual([...taskCgroups.cgroups.keys()], ['/berth/other-agent/theirs']);
  });
});
