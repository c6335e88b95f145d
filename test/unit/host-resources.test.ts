import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { discoverGpus, hostCapacity } from '../../src/engine/resources/host-capacity.js';
import { HostResourceManager, needsOf, PORT_RELEASE_GRACE_MS, type ResourceNeeds } from '../../src/engine/resources/host-resources.js';
import { ResourceQueue, type QueuedTask } from '../../src/engine/resources/resource-queue.js';
import type { TaskResources } from '../../src/engine/model/task-snapshot.js';
import { validateTaskDefinition } from '../../src/engine/admission/task-validation.js';
import { UNIT_CAPACITY } from '../harness/engine-harness.js';

const needs = (overrides: Partial<ResourceNeeds>): ResourceNeeds => ({ cpuUnits: 0, memoryMib: 0, tcpPorts: [], udpPorts: [], dynamicTcpPorts: 0, dynamicUdpPorts: 0, gpus: 0, ...overrides });
const manager = (busyPorts: number[] = []) => new HostResourceManager(UNIT_CAPACITY, async (port) => !busyPorts.includes(port));

class Waiter implements QueuedTask {
  granted: TaskResources | undefined;
  reasons: string[] = [];
  withdrawn = false;
  constructor(
    readonly id: string,
    readonly needs: ResourceNeeds,
  ) {}
  grant(resources: TaskResources) {
    this.granted = resources;
  }
  waiting(shortfall: string) {
    this.reasons.push(shortfall);
  }
  refusal: string | undefined;
  refuse(reason: string) {
    this.refusal = reason;
  }
}

describe('host resource manager', () => {
  it('computes needs by ECS rules: task values first, else the containers’ reservations, else limits', () => {
    const def = validateTaskDefinition({
      id: 't',
      networkMode: 'BRIDGE',
      containers: [
        { name: 'a', image: 'x', cpuUnits: 256, memoryMib: 512, memoryReservationMib: 128, portMappings: [{ containerPort: 80, hostPort: 8080 }, { containerPort: 81 }], gpuCount: 1 },
        { name: 'b', image: 'x', cpuUnits: 128, memoryMib: 64, portMappings: [{ containerPort: 53, protocol: 'udp' }] },
      ],
    });
    assert.deepEqual(needsOf(def), { cpuUnits: 384, memoryMib: 192, tcpPorts: [8080], udpPorts: [], dynamicTcpPorts: 1, dynamicUdpPorts: 1, gpus: 1 });
    assert.equal(needsOf({ ...def, cpuUnits: 1024, memoryMib: 700 }).memoryMib, 700);
  });

  it('consumes all or nothing, idempotently, and releases idempotently', async () => {
    const hrm = manager();
    const first = await hrm.consume('a', needs({ cpuUnits: 4000, memoryMib: 1000, tcpPorts: [80], gpus: 2 }));
    assert.ok('resources' in first);
    assert.deepEqual(await hrm.consume('a', needs({ cpuUnits: 4000 })), first, 'a repeated consume returns what is held');
    const second = await hrm.consume('b', needs({ cpuUnits: 10, memoryMib: 100, tcpPorts: [81] }));
    assert.ok('shortfall' in second);
    assert.equal(second.shortfall, 'needs 100 MiB memory, 24 MiB free');
    assert.equal(hrm.consumed().tcpPorts.includes(81), false, 'nothing was taken for b');
    hrm.release('a');
    hrm.release('a');
    assert.deepEqual(hrm.consumed(), { cpuUnits: 0, memoryMib: 0, tcpPorts: [22], udpPorts: [], gpuIds: [] });
  });

  it('refuses a host port held by another task and names it', async () => {
    const hrm = manager();
    await hrm.consume('a', needs({ tcpPorts: [8080] }));
    const result = await hrm.consume('b', needs({ tcpPorts: [8080] }));
    assert.ok('shortfall' in result && /host port 8080\/tcp, held by another task/.test(result.shortfall));
  });

  it("reserves the agent's own listening ports with the configured ones", async () => {
    const capacity = await hostCapacity(
      { cpuUnits: 1024, memoryMib: 512, reservedMemoryMib: 0, reservedTcpPorts: [22], reservedUdpPorts: [], dynamicPortRange: { first: 50000, last: 50009 }, gpuIds: [] },
      [7000, 9464, 51679, 22],
      async () => [],
    );
    assert.deepEqual(capacity.reservedTcpPorts, [22, 7000, 9464, 51679]);
    const hrm = new HostResourceManager(capacity, async () => true);
    assert.deepEqual(hrm.neverFits(needs({ tcpPorts: [9464] })), ['needs host port 9464/tcp, which is reserved']);
  });

  it("asks nvidia-smi for the GPUs only while NVIDIA's driver is loaded", async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-gpus-'));
    const path = process.env.PATH;
    try {
      // An nvidia-smi of the test's own, first on the PATH.
      writeFileSync(join(dir, 'nvidia-smi'), '#!/bin/sh\necho GPU-0aa1\necho "No devices were found"\necho GPU-0bb2\n');
      chmodSync(join(dir, 'nvidia-smi'), 0o755);
      process.env.PATH = `${dir}:${path}`;
      assert.deepEqual(await discoverGpus(10_000, dir), ['GPU-0aa1', 'GPU-0bb2'], 'the driver is there: its GPUs');
      assert.deepEqual(await discoverGpus(10_000, join(dir, 'no-driver')), [], 'no driver: none, without asking');
      rmSync(join(dir, 'nvidia-smi'));
      assert.deepEqual(await discoverGpus(10_000, dir), [], 'the driver without nvidia-smi: none');
    } finally {
      process.env.PATH = path;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a static host port that something other than a task listens on, without holding up the queue', async () => {
    const hrm = manager([8080]);
    const result = await hrm.consume('a', needs({ tcpPorts: [8080] }));
    assert.ok('refused' in result && /host port 8080\/tcp is in use on the host by something other than a task/.test(result.refused));
    assert.deepEqual(hrm.consumed().tcpPorts, [22], 'nothing taken');
    const queue = new ResourceQueue(hrm);
    const blocked = new Waiter('blocked', needs({ tcpPorts: [8080] }));
    const behind = new Waiter('behind', needs({ cpuUnits: 10 }));
    queue.enqueue(blocked);
    queue.enqueue(behind);
    await queue.wake();
    assert.match(blocked.refusal ?? '', /8080\/tcp/);
    assert.ok(behind.granted, 'the task behind it was served');
    assert.deepEqual(queue.ids(), []);
  });

  it('lets a task wait a while for a static port the host still holds after the task that had it stopped, then refuses it', async () => {
    const busy = new Set<number>();
    let now = 1_000;
    const hrm = new HostResourceManager(
      UNIT_CAPACITY,
      async (port) => !busy.has(port),
      undefined,
      () => now,
    );
    assert.ok('resources' in (await hrm.consume('first', needs({ tcpPorts: [8080] }))));
    hrm.release('first');
    // What served the port (Docker's proxy) lets go of it after the container's exit is reported.
    busy.add(8080);
    const settling = await hrm.consume('second', needs({ tcpPorts: [8080] }));
    assert.ok('shortfall' in settling && settling.retryAfterMs !== undefined, JSON.stringify(settling));
    assert.match(settling.shortfall, /host port 8080\/tcp, still held since the task that had it stopped/);
    now += PORT_RELEASE_GRACE_MS + 1;
    const refused = await hrm.consume('second', needs({ tcpPorts: [8080] }));
    assert.ok('refused' in refused && /8080\/tcp is in use on the host by something other than a task/.test(refused.refused), 'held past the grace: refused');
  });

  it('serves a task waiting for such a port once the host lets go of it, with nothing else waking the queue', async () => {
    const busy = new Set<number>();
    const hrm = new HostResourceManager(UNIT_CAPACITY, async (port) => !busy.has(port));
    assert.ok('resources' in (await hrm.consume('first', needs({ tcpPorts: [8080] }))));
    hrm.release('first');
    busy.add(8080);
    const queue = new ResourceQueue(hrm);
    const granted = new Promise<TaskResources>((resolve) => {
      const second = new Waiter('second', needs({ tcpPorts: [8080] }));
      second.grant = resolve;
      queue.enqueue(second);
    });
    await queue.wake();
    assert.deepEqual(queue.ids(), ['second'], 'waiting, not refused');
    busy.delete(8080);
    // The queue's retry timer does not hold the process open (the agent has its own reasons to run).
    const open = setTimeout(() => undefined, 5_000);
    try {
      assert.deepEqual((await granted).tcpPorts, [8080]);
    } finally {
      clearTimeout(open);
    }
  });

  it('picks distinct dynamic ports from the range, skipping held, reserved and busy ones', async () => {
    const hrm = manager([50001]);
    const a = await hrm.consume('a', needs({ dynamicTcpPorts: 2 }));
    const b = await hrm.consume('b', needs({ dynamicTcpPorts: 2 }));
    assert.ok('resources' in a && 'resources' in b);
    assert.deepEqual(a.resources.tcpPorts, [50000, 50002]);
    assert.deepEqual(b.resources.tcpPorts, [50003, 50004]);
    assert.equal(hrm.free().dynamicTcpPorts, 6);
    const tooMany = await hrm.consume('c', needs({ dynamicTcpPorts: 7 }));
    assert.ok('shortfall' in tooMany);
  });

  it('says what can never fit', () => {
    const hrm = manager();
    assert.deepEqual(hrm.neverFits(needs({ memoryMib: 2048, gpus: 3, tcpPorts: [22] })), [
      'needs 2048 MiB memory, the host has 1024 MiB for tasks',
      'needs 3 GPUs, the host has 2',
      'needs host port 22/tcp, which is reserved',
    ]);
    assert.deepEqual(hrm.neverFits(needs({ memoryMib: 1024 })), []);
  });
});

describe('resource queue', () => {
  it('serves tasks first in, first out, and wakes on release', async () => {
    const hrm = manager();
    const queue = new ResourceQueue(hrm);
    const big = new Waiter('big', needs({ memoryMib: 800 }));
    const large = new Waiter('large', needs({ memoryMib: 600 }));
    const small = new Waiter('small', needs({ memoryMib: 100 }));
    queue.enqueue(big);
    await queue.wake();
    queue.enqueue(large);
    queue.enqueue(small);
    await queue.wake();
    assert.ok(big.granted);
    assert.equal(large.granted, undefined);
    assert.equal(small.granted, undefined, 'small fits, but waits behind large (FIFO)');
    assert.match(large.reasons.at(-1)!, /needs 600 MiB memory, 224 MiB free/);
    assert.match(small.reasons.at(-1)!, /queued behind task "large"/);
    assert.deepEqual(queue.ids(), ['large', 'small']);
    hrm.release('big');
    await queue.wake();
    assert.ok(large.granted && small.granted);
    assert.deepEqual(queue.ids(), []);
  });

  it('lets a withdrawn task leave without consuming', async () => {
    const hrm = manager();
    const queue = new ResourceQueue(hrm);
    const holder = new Waiter('holder', needs({ memoryMib: 1000 }));
    const quitter = new Waiter('quitter', needs({ memoryMib: 500 }));
    const next = new Waiter('next', needs({ memoryMib: 10 }));
    queue.enqueue(holder);
    queue.enqueue(quitter);
    queue.enqueue(next);
    await queue.wake();
    quitter.withdrawn = true;
    await queue.wake();
    assert.equal(quitter.granted, undefined);
    assert.ok(next.granted, 'the task behind the withdrawn one is served');
    assert.equal(hrm.holding('quitter'), undefined);
  });
});
