import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cgroupMembership, cgroupUsage } from '../../src/runtime/cgroup-usage.js';

const HOST = 8 * 1024 ** 3;
const root = mkdtempSync(join(tmpdir(), 'berth-cgroup-usage-'));
after(() => rmSync(root, { recursive: true, force: true }));

function files(dir: string, content: Record<string, string>): void {
  mkdirSync(join(root, dir), { recursive: true });
  for (const [name, text] of Object.entries(content)) writeFileSync(join(root, dir, name), text);
}

describe('cgroup usage read from the cgroup files', () => {
  it('reads a cgroup v1 hierarchy, cpu and cpuacct mounted together or apart, an unlimited memory as the host memory', async () => {
    files('memory/docker/abc', { 'memory.usage_in_bytes': '5000000\n', 'memory.stat': 'cache 100\ntotal_inactive_file 1000000\n', 'memory.limit_in_bytes': '9223372036854771712\n' });
    files('cpu,cpuacct/docker/abc', { 'cpuacct.usage': '123456789\n' });
    files('pids/docker/abc', { 'pids.current': '3\n' });
    const membership = '12:pids:/docker/abc\n4:memory:/docker/abc\n2:cpu,cpuacct:/docker/abc\n1:name=systemd:/docker/abc\n0::/docker/abc\n';
    assert.deepEqual(await cgroupUsage(membership, HOST, root), { cpuUsageNanos: 123456789, memoryUsageBytes: 4000000, memoryLimitBytes: HOST, pids: 3 });
    files('memory/limited', { 'memory.usage_in_bytes': '10\n', 'memory.stat': 'total_inactive_file 20\n', 'memory.limit_in_bytes': '67108864\n' });
    files('cpuacct/limited', { 'cpuacct.usage': '7\n' });
    assert.deepEqual(await cgroupUsage('4:memory:/limited\n3:cpuacct:/limited\n', HOST, root), { cpuUsageNanos: 7, memoryUsageBytes: 0, memoryLimitBytes: 67108864, pids: 0 });
  });

  it('reads a cgroup v2 hierarchy: usage_usec in nanoseconds, "max" as the host memory', async () => {
    files('unified/system.slice/docker-abc.scope', {
      'memory.current': '3000000\n',
      'memory.stat': 'anon 100\ninactive_file 500000\n',
      'memory.max': 'max\n',
      'cpu.stat': 'usage_usec 2500\nuser_usec 2000\n',
      'pids.current': '2\n',
    });
    const unified = join(root, 'unified');
    assert.deepEqual(await cgroupUsage('0::/system.slice/docker-abc.scope\n', HOST, unified), { cpuUsageNanos: 2_500_000, memoryUsageBytes: 2_500_000, memoryLimitBytes: HOST, pids: 2 });
  });

  it('answers undefined for a cgroup that is gone and for a process that is gone', async () => {
    assert.equal(await cgroupUsage('4:memory:/gone\n', HOST, root), undefined);
    assert.equal(await cgroupUsage('0::/gone\n', HOST, root), undefined);
    assert.equal(await cgroupMembership(2 ** 22 + 1), undefined);
    assert.match((await cgroupMembership(process.pid)) ?? '', /^\d+:[^:]*:\//m);
  });
});
