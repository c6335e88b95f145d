import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import { after, describe, it } from 'node:test';
import { HostTaskCgroups } from '../../src/runtime/task-cgroups.js';

const MIB = 1024 * 1024;

// The machine's own cgroup file system (cgroup v1 here; see notes/test-infra.md), no runtime.
describe("task cgroups in the host's cgroup file system", () => {
  const cgroups = new HostTaskCgroups();
  const agentId = `test-cgroups-${process.pid}`;
  const path = cgroups.pathOf(agentId, 'task-1');
  const v1 = existsSync('/sys/fs/cgroup/memory/cgroup.procs');
  const memoryDir = v1 ? `/sys/fs/cgroup/memory${path}` : `/sys/fs/cgroup${path}`;

  after(async () => {
    await cgroups.remove(path).catch(() => undefined);
    for (const h of v1 ? ['memory', 'cpu'] : ['']) {
      try {
        // The agent's own level, which the agent leaves in place.
        rmdirSync(`/sys/fs/cgroup/${h}/berth/${agentId}`);
      } catch {
        // already gone
      }
    }
  });

  it("makes the task's cgroup with its limits in force, refuses to remove it while a process is inside, then removes it", async () => {
    await cgroups.prepare(path, { cpuUnits: 256, memoryBytes: 48 * MIB });
    if (v1) {
      assert.equal(readFileSync(`${memoryDir}/memory.limit_in_bytes`, 'utf8').trim(), String(48 * MIB));
      assert.equal(readFileSync(`/sys/fs/cgroup/cpu${path}/cpu.cfs_quota_us`, 'utf8').trim(), '25000');
    } else {
      assert.equal(readFileSync(`${memoryDir}/memory.max`, 'utf8').trim(), String(48 * MIB));
      assert.equal(readFileSync(`${memoryDir}/cpu.max`, 'utf8').trim(), '25000 100000');
    }
    assert.deepEqual(await cgroups.list(agentId), ['task-1']);

    const sleeper = spawn('sleep', ['300'], { stdio: 'ignore' });
    writeFileSync(`${memoryDir}/cgroup.procs`, String(sleeper.pid));
    await assert.rejects(cgroups.remove(path), /still holds processes/);
    sleeper.kill('SIGKILL');
    await once(sleeper, 'exit');
    await cgroups.remove(path);
    assert.equal(existsSync(memoryDir), false);
    if (v1) assert.equal(existsSync(`/sys/fs/cgroup/cpu${path}`), false);
    assert.deepEqual(await cgroups.list(agentId), []);
  });
});
