/**
 * The fleet on one machine: a 3-member etcd on loopback, 10 agents (the compiled build) sharing one
 * containerd, one controller, each in a process of its own.
 * 1. throughput: N tasks submitted to the fleet until all RUNNING, against the same N tasks sent
 *    straight to the agents over gRPC (round robin, 50 at once) until all RUNNING, in one run;
 * 2. node loss: one agent SIGKILLed; the time until its tasks' placements say it was lost, and until
 *    they run elsewhere (lease TTL 5 s here);
 * 3. etcd writes per agent per minute at steady state (every task running; lease keep-alives are
 *    not writes): the puts and deletes a watch of the whole prefix sees over 60 s;
 * 4. the controller's memory (RSS, settled) with T cluster tasks placed on 10 registered agents of
 *    the benchmark's own (records only, no containers), against the same controller idle.
 *
 * Usage: npm run build && node dist/bench/fleet.js [N=200] [T=10000]. Needs root.
 */
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connectFleet } from '../src/cluster/fleet-client.js';
import { TaskStatus } from '../src/gen/berth/agent/v1/task.js';
import { Placement, PlacementState, PlacementStrategy } from '../src/gen/berth/cluster/v1/cluster_task.js';
import { Node } from '../src/gen/berth/cluster/v1/node.js';
import { startAgentProcess, type AgentProcess } from '../test/harness/agent-process.js';
import { startControllerProcess } from '../test/harness/controller-process.js';
import { EtcdCluster } from '../test/harness/etcd.js';
import { EtcdView } from '../test/harness/etcd-view.js';
import { startRuntimeEnvironment } from '../test/harness/runtime-environment.js';
import { container, task } from '../test/harness/task-builders.js';
import { settledRssMib } from './parts/forked-parts.js';

const [N, T] = [200, 10_000].map((fallback, i) => Number(process.argv[2 + i] ?? fallback)) as [number, number];
const AGENTS = 10;
const TTL_S = 5;

async function inBatches<T>(items: T[], size: number, run: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += size) await Promise.all(items.slice(i, i + size).map(run));
}

const env = await startRuntimeEnvironment('bench-fleet', 'containerd');
const dir = mkdtempSync(join(tmpdir(), 'berth-bench-fleet-'));
const etcd = await EtcdCluster.start(3);
const client = etcd.client();
const prefix = '/bench/';
const cluster = { endpoints: etcd.endpoints, prefix, leaseTtl: `${TTL_S}s` };
const agentIds = Array.from({ length: AGENTS }, (_, i) => `bench-${i}`);
for (const id of agentIds) env.agentIds.add(id);
const agents: AgentProcess[] = [];
try {
  for (const [i, id] of agentIds.entries()) {
    mkdirSync(join(dir, id));
    agents.push(
      await startAgentProcess({
        dir: join(dir, id),
        agentId: id,
        runtimeConfig: env.runtimeConfig,
        compiled: true,
        config: { cluster: { ...cluster, attributes: { zone: i % 2 ? 'b' : 'a' } }, images: { registryCredentials: { [env.registry.address]: env.credentials } } },
      }),
    );
  }
  const controller = startControllerProcess(join(dir, 'controller'), 'bench-controller', cluster);
  const fleet = connectFleet({ endpoints: etcd.endpoints, prefix });
  const placements = await EtcdView.open(client, `${prefix}placements/`);
  const sleeper = () => task('x', [container('app', env.image, { command: ['sleep', '3600'], cpuUnits: 16, memoryMib: 8 })], { family: 'bench' });

  // 1. Straight to the agents, then through the fleet.
  const direct = Array.from({ length: N }, (_, i) => `direct-${i}`);
  let started = performance.now();
  await inBatches(direct, 50, async (id) => {
    const agent = agents[direct.indexOf(id) % AGENTS]!;
    await agent.berth.runAndWait({ ...sleeper(), id }, { awaited: TaskStatus.TASK_STATUS_RUNNING, timeoutMs: 300_000 });
  });
  const directS = (performance.now() - started) / 1000;
  await inBatches(direct, 50, (id) => agents[direct.indexOf(id) % AGENTS]!.berth.stopTask(id));

  const viaFleet = Array.from({ length: N }, (_, i) => `fleet-${i}`);
  started = performance.now();
  // Spread over the agents, as the direct launches are sent round robin; placed again on node loss.
  await inBatches(viaFleet, 50, (id) => fleet.submit({ id, definition: sleeper(), strategy: PlacementStrategy.PLACEMENT_STRATEGY_SPREAD, spreadAttribute: 'agent', replaceOnNodeLoss: true }));
  const placementOf = (id: string) => {
    const entry = placements.values.get(`${prefix}placements/${id}`);
    return entry && Placement.decode(entry.value);
  };
  await placements.until('all fleet tasks running', () => (viaFleet.every((id) => placementOf(id)?.state === PlacementState.PLACEMENT_STATE_RUNNING) ? true : undefined), 600_000);
  const fleetS = (performance.now() - started) / 1000;

  // 3. Steady state: writes seen over a minute.
  const writes = new Map<string, number>();
  const watcher = await client.watch().prefix(prefix).create();
  const count = (kv: { key: Buffer }) => {
    const key = kv.key.toString().slice(prefix.length);
    const kind = key.split('/')[0]!;
    writes.set(kind, (writes.get(kind) ?? 0) + 1);
  };
  watcher.on('put', count).on('delete', count);
  await new Promise((resolve) => setTimeout(resolve, 60_000));
  await watcher.cancel();
  const steadyWrites = [...writes.values()].reduce((a, b) => a + b, 0);

  // 2. Node loss.
  const victim = agentIds[3]!;
  const moved = viaFleet.filter((id) => placementOf(id)!.agentId === victim);
  const killedAt = performance.now();
  await agents[3]!.kill();
  await placements.until('the lost tasks seen lost', () => (moved.every((id) => placementOf(id)!.lostOn.includes(victim)) ? true : undefined), 120_000);
  const detectedS = (performance.now() - killedAt) / 1000;
  await placements.until('the lost tasks running elsewhere', () => (moved.every((id) => placementOf(id)!.state === PlacementState.PLACEMENT_STATE_RUNNING) ? true : undefined), 300_000);
  const replacedS = (performance.now() - killedAt) / 1000;

  await controller.stop();
  for (const agent of agents) await agent.stop().catch(() => undefined);

  // 4. The controller's memory with T tasks on agents that are only records.
  const bigPrefix = '/bench-memory/';
  const big = connectFleet({ endpoints: etcd.endpoints, prefix: bigPrefix });
  const lease = client.lease(60);
  for (let i = 0; i < AGENTS; i++) {
    const resources = { cpuUnits: 1_000_000, memoryMib: 1_000_000, tcpPorts: [], udpPorts: [], gpuIds: [], dynamicTcpPortsFree: 0, dynamicUdpPortsFree: 0 };
    const node = Node.fromPartial({ agentId: `fake-${i}`, address: 'unix:///nowhere', attributes: { zone: 'a' }, capacity: resources, free: resources, runtimeAvailable: true });
    await lease.put(`${bigPrefix}nodes/fake-${i}`).value(Buffer.from(Node.encode(node).finish()));
  }
  const bigController = startControllerProcess(join(dir, 'controller-memory'), 'memory-controller', { ...cluster, prefix: bigPrefix, leaseTtl: '30s' });
  await new Promise((resolve) => setTimeout(resolve, 3000));
  const idleMib = await settledRssMib(bigController.daemon.child.pid!, 5, 20);
  const bigPlacements = await EtcdView.open(client, `${bigPrefix}placements/`);
  started = performance.now();
  const bigIds = Array.from({ length: T }, (_, i) => `t-${i}`);
  await inBatches(bigIds, 100, (id) => big.submit({ id, definition: { ...sleeper(), containers: [container('app', env.image, { cpuUnits: 1, memoryMib: 4 })] } }));
  await bigPlacements.until(
    `${T} placed`,
    () => ([...bigPlacements.values.values()].filter((v) => Placement.decode(v.value).state === PlacementState.PLACEMENT_STATE_ASSIGNED).length === T ? true : undefined),
    1_800_000,
  );
  const placeS = (performance.now() - started) / 1000;
  const loadedMib = await settledRssMib(bigController.daemon.child.pid!, 10, 60);
  await bigController.stop();
  await bigPlacements.close();
  await placements.close();
  lease.release();
  big.close();
  fleet.close();

  console.log(`fleet of ${AGENTS} agents on one containerd, 3 etcd members, lease TTL ${TTL_S} s; ${new Date().toISOString()}`);
  console.log(
    `1. ${N} tasks to RUNNING: straight to the agents ${directS.toFixed(1)} s (${(N / directS).toFixed(1)}/s); through the fleet ${fleetS.toFixed(1)} s (${(N / fleetS).toFixed(1)}/s); ratio ${(directS / fleetS).toFixed(2)}`,
  );
  console.log(`2. node loss (${moved.length} tasks): seen lost after ${detectedS.toFixed(1)} s, all running elsewhere after ${replacedS.toFixed(1)} s`);
  console.log(`3. steady state, 60 s: ${steadyWrites} writes (${[...writes].map(([k, v]) => `${k} ${v}`).join(', ') || 'none'}); ${(steadyWrites / AGENTS).toFixed(1)} per agent per minute`);
  console.log(`4. controller RSS idle ${idleMib.toFixed(0)} MiB; with ${T} tasks placed ${loadedMib.toFixed(0)} MiB (placed in ${placeS.toFixed(0)} s, ${(T / placeS).toFixed(0)}/s)`);
} finally {
  for (const agent of agents) await agent.stop().catch(() => undefined);
  client.close();
  await etcd.close();
  await env.stop();
  rmSync(dir, { recursive: true, force: true });
}
