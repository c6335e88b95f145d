import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { Etcd3, Lease } from 'etcd3';
import { pino } from 'pino';
import { Controller } from '../../src/cluster/controller/controller.js';
import { connectFleet, type FleetClient } from '../../src/cluster/fleet-client.js';
import { ClusterKeys } from '../../src/cluster/keys.js';
import { ContainerDefinition, TaskDefinition } from '../../src/gen/berth/agent/v1/task_definition.js';
import { NodeLedger, Placement, PlacementState } from '../../src/gen/berth/cluster/v1/cluster_task.js';
import { Assignment, Node } from '../../src/gen/berth/cluster/v1/node.js';
import { EtcdCluster } from '../harness/etcd.js';

const AGENTS = ['n1', 'n2', 'n3'];
const CAPACITY = 100;

describe('two controllers that both act as leader, against a real etcd: the transactions alone keep placements single and agents within capacity', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  let fleet: FleetClient;
  let lease: Lease;
  const keys = new ClusterKeys(`/fencing-${process.pid}/`);
  const stop = new AbortController();
  const controllers: Controller[] = [];
  const running: Promise<void>[] = [];
  const closers: (() => void)[] = [];

  before(async () => {
    etcd = await EtcdCluster.start(1);
    client = etcd.client();
    fleet = connectFleet({ endpoints: etcd.endpoints, prefix: keys.prefix });
    lease = client.lease(60);
    for (const agentId of AGENTS) {
      const resources = { cpuUnits: CAPACITY, memoryMib: 10_000, tcpPorts: [], udpPorts: [], gpuIds: [], dynamicTcpPortsFree: 0, dynamicUdpPortsFree: 0 };
      const node = Node.fromPartial({ agentId, address: 'unix:///nowhere', capacity: resources, free: resources, runtimeAvailable: true });
      await lease.put(keys.node(agentId)).value(Buffer.from(Node.encode(node).finish()));
    }
    for (const id of ['c1', 'c2']) {
      const own = connectFleet({ endpoints: etcd.endpoints, prefix: keys.prefix });
      closers.push(() => own.close());
      const controller = new Controller(own, { id, electionTtlSeconds: 5, nodeLossGraceMs: 60_000 }, pino({ level: 'silent' }));
      controllers.push(controller);
      running.push(controller.cache.run(stop.signal));
    }
  });
  after(async () => {
    stop.abort();
    await Promise.all(running);
    for (const close of closers) close();
    lease?.release();
    fleet?.close();
    client?.close();
    await etcd?.close();
  });

  it('places 30 tasks that exactly fill 3 agents once each, and leaves the 31st pending with the reason', async () => {
    const definition = TaskDefinition.fromPartial({ family: 'f', containers: [ContainerDefinition.fromPartial({ name: 'app', image: 'busybox', cpuUnits: 10, memoryMib: 8 })] });
    const ids = Array.from({ length: 31 }, (_, i) => `t-${i}`);
    for (const id of ids) await fleet.submit({ id, definition });
    await Promise.all(controllers.map((c) => c.cache.ready));
    // Both decide from the same view at once, again and again, until nothing is left to do.
    for (let round = 0; round < 20; round++) {
      await Promise.all(controllers.map((c) => c.passAsLeader()));
      const tasks = await fleet.listTasks();
      if (tasks.every((t) => t.placement?.state === PlacementState.PLACEMENT_STATE_ASSIGNED || t.placement?.state === PlacementState.PLACEMENT_STATE_PENDING)) break;
    }
    const placements = (await fleet.listTasks()).map((t) => t.placement!);
    const assigned = placements.filter((p) => p.state === PlacementState.PLACEMENT_STATE_ASSIGNED);
    assert.equal(assigned.length, 30);
    const pending = placements.filter((p) => p.state === PlacementState.PLACEMENT_STATE_PENDING);
    assert.equal(pending.length, 1);
    assert.match(pending[0]!.reason, /3 by cpu/);
    assert.ok(
      assigned.every((p) => p.attempt === 1),
      'each placed once',
    );
    const assignments = await client.getAll().prefix(`${keys.prefix}assignments/`).buffers();
    assert.equal(Object.keys(assignments).length, 30, 'one assignment per placed task');
    const byCluster = new Set(Object.values(assignments).map((v) => Assignment.decode(v).clusterTaskId));
    assert.equal(byCluster.size, 30);
    for (const agentId of AGENTS) {
      const ledger = NodeLedger.decode((await client.get(keys.ledger(agentId)).buffer())!);
      assert.equal(ledger.cpuUnits, CAPACITY, `${agentId} full, not over`);
      assert.equal(ledger.tasks, assigned.filter((p) => p.agentId === agentId).length);
    }
    const raw = await client.getAll().prefix(keys.placements).buffers();
    assert.equal(Object.keys(raw).length, 31);
    for (const value of Object.values(raw)) assert.ok(Placement.decode(value).clusterTaskId);
  });
});
