import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { V1Metrics, V2Metrics } from '../../src/gen/containerd/cgroups/metrics.js';
import { TaskExit, TaskOOM } from '../../src/gen/containerd/events/task.js';
import { decodeCgroupMetrics, oomKillsIn } from '../../src/runtime/containerd/cgroup-metrics.js';
import { runtimeEventsOf, type EventEnvelope } from '../../src/runtime/containerd/containerd-events.js';

const HOST = 8 * 1024 ** 3;

describe('containerd cgroup metrics and events (recorded v1 and v2 layouts)', () => {
  it('decodes cgroup v1 and v2 metrics alike: page cache left out, no limit shown as the host', () => {
    const v1 = V1Metrics.encode({ pids: { current: 3 }, cpu: { usage: { total: 5_000_000 } }, memory: { totalInactiveFile: 1000, usage: { usage: 51_000, limit: '9223372036854771712' } } }).finish();
    assert.deepEqual(decodeCgroupMetrics({ typeUrl: 'types.containerd.io/io.containerd.cgroups.v1.Metrics', value: v1 }, HOST, 'stats'), {
      cpuUsageNanos: 5_000_000,
      memoryUsageBytes: 50_000,
      memoryLimitBytes: HOST,
      pids: 3,
    });
    const v2 = V2Metrics.encode({ pids: { current: 2 }, cpu: { usageUsec: 7000 }, memory: { inactiveFile: 4096, usage: 1_052_672, usageLimit: String(64 << 20) } }).finish();
    assert.deepEqual(decodeCgroupMetrics({ typeUrl: 'types.containerd.io/io.containerd.cgroups.v2.Metrics', value: v2 }, HOST, 'stats'), {
      cpuUsageNanos: 7_000_000,
      memoryUsageBytes: 1_048_576,
      memoryLimitBytes: 64 << 20,
      pids: 2,
    });
    assert.throws(() => decodeCgroupMetrics({ typeUrl: 'types.containerd.io/io.containerd.cgroups.v3.Metrics', value: new Uint8Array() }, HOST, 'stats'), /metrics of an unknown type/);
  });

  it('finds OOM kills in memory.oom_control (v1) and memory.events (v2)', async () => {
    const root = mkdtempSync(join(tmpdir(), 'berth-cgroup-'));
    mkdirSync(join(root, 'memory/berth/v1-killed'), { recursive: true });
    writeFileSync(join(root, 'memory/berth/v1-killed/memory.oom_control'), 'oom_kill_disable 0\nunder_oom 0\noom_kill 1\n');
    mkdirSync(join(root, 'berth/v2-killed'), { recursive: true });
    writeFileSync(join(root, 'berth/v2-killed/memory.events'), 'low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\noom_group_kill 0\n');
    mkdirSync(join(root, 'berth/v2-fine'), { recursive: true });
    writeFileSync(join(root, 'berth/v2-fine/memory.events'), 'low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\n');
    assert.equal(await oomKillsIn('/berth/v1-killed', root), true);
    assert.equal(await oomKillsIn('/berth/v2-killed', root), true);
    assert.equal(await oomKillsIn('/berth/v2-fine', root), false);
    assert.equal(await oomKillsIn('/berth/gone', root), false);
  });

  it('turns task events into runtime events: exec exits and exits of earlier processes left out, an OOM told once and before its exit', async () => {
    const any = (type: string, value: Uint8Array) => ({ typeUrl: `containerd.events.${type}`, value: Buffer.from(value) });
    const time = new Date('2026-01-01T00:00:00Z');
    const envelopes: EventEnvelope[] = [
      { topic: '/tasks/exit', timestamp: time, event: any('TaskExit', TaskExit.encode({ containerId: 'a', id: 'exec-1', pid: 9, exitStatus: 1, exitedAt: time }).finish()) },
      // A process of a cut-short create, killed: not the one that runs.
      { topic: '/tasks/exit', timestamp: time, event: any('TaskExit', TaskExit.encode({ containerId: 'a', id: 'a', pid: 5, exitStatus: 137, exitedAt: time }).finish()) },
      { topic: '/tasks/exit', timestamp: time, event: any('TaskExit', TaskExit.encode({ containerId: 'a', id: 'a', pid: 8, exitStatus: 137, exitedAt: time }).finish()) },
      { topic: '/tasks/oom', timestamp: time, event: any('TaskOOM', TaskOOM.encode({ containerId: 'a' }).finish()) },
      { topic: '/tasks/exit', timestamp: time, event: any('TaskExit', TaskExit.encode({ containerId: 'other', id: 'other', pid: 7, exitStatus: 0, exitedAt: time }).finish()) },
    ];
    async function* stream() {
      yield* envelopes;
    }
    const seen = [];
    for await (const event of runtimeEventsOf(stream(), { matches: async (id) => id === 'a', isCurrentProcess: async (_id, pid) => pid === 8, cgroupSawOom: async () => true, oomKilled: new Set() }))
      seen.push(event);
    assert.deepEqual(seen, [
      { type: 'oom', containerId: 'a', time },
      { type: 'exit', containerId: 'a', exitCode: 137, time },
    ]);
  });
});
