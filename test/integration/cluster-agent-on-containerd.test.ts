import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import type { WatchItem } from '../../src/client/event-watch.js';
import { TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import type { TaskDefinition } from '../../src/gen/berth/agent/v1/task_definition.js';
import { Assignment, Node, TaskReport } from '../../src/gen/berth/cluster/v1/node.js';
import { ClusterKeys } from '../../src/cluster/keys.js';
import { startAgentProcess, type AgentProcess } from '../harness/agent-process.js';
import { TestPki } from '../harness/certificates.js';
import { EtcdCluster } from '../harness/etcd.js';
import { EtcdView } from '../harness/etcd-view.js';
import { freeLoopbackPort, waitUntil } from '../harness/processes.js';
import { startRuntimeEnvironment, type RuntimeEnvironment } from '../harness/runtime-environment.js';
import { cuttableForwarder, type CuttableForwarder } from '../harness/tcp-forwarder.js';
import { container, task } from '../harness/task-builders.js';

const LEASE_TTL_S = 3;

describe('an agent in cluster mode against a real 3-member etcd cluster, on real containerd', () => {
  let env: RuntimeEnvironment;
  let etcd: EtcdCluster;
  let client: Etcd3;
  let dir: string;
  let links: CuttableForwarder[] = [];
  let agent: AgentProcess | undefined;
  let metricsAddress: string;
  const agentId = `member-${process.pid}`;
  const keys = new ClusterKeys(`/berth-test-${process.pid}/`);
  let reports: EtcdView;
  let nodes: EtcdView;

  const startOptions = () => ({
    dir,
    agentId,
    runtimeConfig: env.runtimeConfig,
    config: {
      // The agent reaches etcd through links the test can cut: a partition of this node alone.
      cluster: { endpoints: links.map((l) => l.address), prefix: keys.prefix, leaseTtl: `${LEASE_TTL_S}s`, attributes: { zone: 'a', disk: 'ssd' } },
      images: { registryCredentials: { [env.registry.address]: env.credentials } },
      metrics: { address: metricsAddress },
    },
  });
  const start = () => startAgentProcess(startOptions());

  const sleeper = (id: string): TaskDefinition => task(id, [container('app', env.image, { command: ['sleep', '600'], cpuUnits: 128, memoryMib: 16 })]);
  const assign = (taskId: string, assignment: Partial<Assignment>) =>
    client.put(keys.assignment(agentId, taskId)).value(Buffer.from(Assignment.encode(Assignment.fromPartial({ clusterTaskId: `c-${taskId}`, ...assignment })).finish()));
  const report = (taskId: string) => {
    const entry = reports.values.get(keys.report(agentId, taskId));
    return entry && TaskReport.decode(entry.value);
  };
  const reportUntil = (taskId: string, what: string, check: (r: TaskReport) => boolean, timeoutMs?: number) =>
    reports.until(
      `${taskId}'s report: ${what}`,
      () => {
        const r = report(taskId);
        return r && check(r) ? r : undefined;
      },
      timeoutMs,
    );
  const node = () => {
    const entry = nodes.values.get(keys.node(agentId));
    return entry && { record: Node.decode(entry.value), lease: entry.lease };
  };
  const membership = async () => (await agent!.berth.getAgentInfo()).cluster;
  const connectedMetric = async () => {
    const text = await (await fetch(`http://${metricsAddress}/metrics`)).text();
    return Number(/^berth_cluster_connected (\S+)$/m.exec(text)?.[1]);
  };

  before(async () => {
    env = await startRuntimeEnvironment('cluster', 'containerd');
    env.agentIds.add(agentId);
    dir = mkdtempSync(join(tmpdir(), 'berth-cluster-'));
    etcd = await EtcdCluster.start(3);
    client = etcd.client();
    links = await Promise.all(etcd.endpoints.map((e) => cuttableForwarder('127.0.0.1', e)));
    metricsAddress = `127.0.0.1:${await freeLoopbackPort()}`;
    reports = await EtcdView.open(client, keys.reportsOf(agentId));
    nodes = await EtcdView.open(client, keys.nodes);
  });
  after(async () => {
    await agent?.stop();
    await reports?.close();
    await nodes?.close();
    client?.close();
    await Promise.all(links.map((l) => l.close()));
    await etcd?.close();
    await env?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('registers under a lease with its address, attributes and resources, and says it is connected', async () => {
    agent = await start();
    const registered = await nodes.until('the node record', node);
    assert.equal(registered.record.agentId, agentId);
    assert.equal(registered.record.address, `unix://${agent.socketPath}`);
    assert.deepEqual(registered.record.attributes, { zone: 'a', disk: 'ssd', os: 'linux', arch: process.arch, runtime: 'containerd' });
    assert.ok(registered.record.capacity!.cpuUnits > 0 && registered.record.free!.memoryMib > 0);
    assert.equal(registered.record.runtimeAvailable, true);
    assert.notEqual(registered.lease, '0', 'the record is bound to a lease');
    await waitUntil('the agent says it is connected', 15_000, async () => ((await membership())?.connected ? true : undefined));
    const info = await membership();
    assert.equal(info!.prefix, keys.prefix);
    assert.equal(await connectedMetric(), 1);
  });

  it('runs an assignment with RunTask semantics, reports it, and the node record follows the resources it holds', async () => {
    const freeBefore = node()!.record.free!.cpuUnits;
    await assign('a1', { task: sleeper('a1') });
    const running = await reportUntil('a1', 'RUNNING', (r) => r.knownStatus === TaskStatus.TASK_STATUS_RUNNING);
    assert.equal(running.clusterTaskId, 'c-a1');
    assert.equal(running.containers[0]!.name, 'app');
    assert.ok(running.sequence > 0 && running.assignmentRevision > 0);
    assert.equal((await agent!.calls.get('a1'))!.knownStatus, TaskStatus.TASK_STATUS_RUNNING);
    await nodes.until('the node record showing a1 holding 128 cpu units', () => (node()?.record.free!.cpuUnits === freeBefore - 128 ? true : undefined));
    assert.equal(node()!.record.assignedTasks, 1);
    // A burst of changes (pull, create, start, the container's own) is fewer writes than events.
    const events = running.sequence;
    assert.ok(reports.values.get(keys.report(agentId, 'a1'))!.version < events, 'coalesced');
  });

  it('leaves tasks sent over gRPC alone, and refuses assignments it cannot run with a reason', async () => {
    await agent!.calls.runUntil(sleeper('direct-1'), TaskStatus.TASK_STATUS_RUNNING);
    await assign('direct-1', { task: sleeper('direct-1') });
    const clash = await reportUntil('direct-1', 'refused', (r) => r.reason !== '');
    assert.match(clash.reason, /used by a task sent to the agent directly/);
    // A key that cannot name a task is ignored (applied in order, before the ones below are reported).
    await client.put(keys.assignment(agentId, 'not a task id')).value(Buffer.from(Assignment.encode(Assignment.fromPartial({ task: sleeper('x') })).finish()));
    await client.put(keys.assignment(agentId, 'garbage')).value(Buffer.from([0xff, 0xff, 0xff, 0x01]));
    assert.match((await reportUntil('garbage', 'refused', (r) => r.reason !== '')).reason, /not a berth\.cluster\.v1\.Assignment/);
    await assign('no-containers', { task: task('no-containers', []) });
    assert.match((await reportUntil('no-containers', 'refused', (r) => r.reason !== '')).reason, /^refused: task\.containers: must have at least one container/);
    await assign('with-password', { task: task('with-password', [container('app', env.image, { registryCredentials: env.credentials })]) });
    const password = await reportUntil('with-password', 'refused', (r) => r.reason !== '');
    assert.match(password.reason, /registry_credentials/);
    assert.equal(password.knownStatus, TaskStatus.TASK_STATUS_STOPPED);
    await assign('other-id', { task: sleeper('not-other-id') });
    assert.match((await reportUntil('other-id', 'refused', (r) => r.reason !== '')).reason, /not the one in its key/);
    assert.equal(report('not a task id'), undefined);
    await client.delete().key(keys.assignment(agentId, 'not a task id'));

    // Deleting the clashing assignment leaves the direct task running; its refusal goes away.
    await client.delete().key(keys.assignment(agentId, 'direct-1'));
    await reports.until('the clash report deleted', () => (report('direct-1') ? undefined : true));
    assert.equal((await agent!.calls.get('direct-1'))!.knownStatus, TaskStatus.TASK_STATUS_RUNNING);
    assert.equal((await agent!.calls.get('direct-1'))!.desiredStatus, TaskStatus.TASK_STATUS_RUNNING);
    for (const id of ['garbage', 'no-containers', 'with-password', 'other-id']) await client.delete().key(keys.assignment(agentId, id));
    await reports.until('the refusals deleted', () => (['garbage', 'no-containers', 'with-password', 'other-id'].some((id) => report(id)) ? undefined : true));
  });

  it('stops a task whose assignment says STOPPED, and one whose assignment is deleted', async () => {
    await assign('a2', { task: sleeper('a2') });
    await assign('a3', { task: sleeper('a3') });
    await reportUntil('a2', 'RUNNING', (r) => r.knownStatus === TaskStatus.TASK_STATUS_RUNNING);
    await reportUntil('a3', 'RUNNING', (r) => r.knownStatus === TaskStatus.TASK_STATUS_RUNNING);
    await assign('a2', { task: sleeper('a2'), desiredStatus: TaskStatus.TASK_STATUS_STOPPED, stopReason: 'scaled in' });
    const stopped = await reportUntil('a2', 'STOPPED', (r) => r.knownStatus === TaskStatus.TASK_STATUS_STOPPED);
    assert.equal(stopped.reason, 'scaled in');
    await client.delete().key(keys.assignment(agentId, 'a3'));
    const gone = await reportUntil('a3', 'STOPPED', (r) => r.knownStatus === TaskStatus.TASK_STATUS_STOPPED);
    assert.equal(gone.reason, 'its assignment was deleted');
  });

  it('keeps every task running with etcd gone, says so, and catches up when etcd is back', async () => {
    const stop = new AbortController();
    const stoppedDuringOutage: string[] = [];
    let outage = false;
    const watching = (async () => {
      const from = (await agent!.berth.getAgentInfo()).latestSequence + 1;
      for await (const item of agent!.berth.watch({ fromSequence: from, signal: stop.signal }) as AsyncIterable<WatchItem>) {
        if (outage && item.kind === 'event' && item.event.change?.$case === 'task' && item.event.change.value.knownStatus === TaskStatus.TASK_STATUS_STOPPED) {
          stoppedDuringOutage.push(item.event.taskId);
        }
      }
    })();
    try {
      outage = true;
      await etcd.stopAll();
      await waitUntil('the agent says it is cut off', 30_000, async () => ((await membership())?.connected === false ? true : undefined));
      const cutOff = await membership();
      assert.notEqual(cutOff!.reason, '');
      assert.equal(await connectedMetric(), 0);
      // Longer than twice the lease's TTL: the agent's lease counts as lost.
      await new Promise((resolve) => setTimeout(resolve, 3 * LEASE_TTL_S * 1000));
      for (const id of ['a1', 'direct-1']) assert.equal((await agent!.calls.get(id))!.knownStatus, TaskStatus.TASK_STATUS_RUNNING, `${id} still runs`);
      etcd.startAll();
      await etcd.ready();
      await waitUntil('the agent says it is connected again', 60_000, async () => ((await membership())?.connected ? true : undefined));
      outage = false;
      assert.deepEqual(stoppedDuringOutage, [], 'nothing stopped because etcd was gone');
      const back = await nodes.until('the node record under a live lease', () => node());
      assert.notEqual(back.lease, '0');
      await reportUntil('a1', 'RUNNING again', (r) => r.knownStatus === TaskStatus.TASK_STATUS_RUNNING);
    } finally {
      stop.abort();
      await watching.catch(() => undefined);
    }
  });

  it('when cut off from etcd alone: applies what changed meanwhile when the link is back, also after a compaction', async () => {
    await assign('b1', { task: sleeper('b1') });
    await reportUntil('b1', 'RUNNING', (r) => r.knownStatus === TaskStatus.TASK_STATUS_RUNNING);
    await Promise.all(links.map((l) => l.cut()));
    await waitUntil('the agent says it is cut off', 30_000, async () => ((await membership())?.connected === false ? true : undefined));
    // Meanwhile the fleet changes: b1's assignment is deleted and b2 is new; then history is compacted.
    await client.delete().key(keys.assignment(agentId, 'b1'));
    await assign('b2', { task: sleeper('b2') });
    const { header } = await client.get('anything').exec();
    await client.kv.compact({ revision: header.revision, physical: true });
    assert.equal((await agent!.calls.get('b1'))!.knownStatus, TaskStatus.TASK_STATUS_RUNNING, 'nothing changes while cut off');
    await Promise.all(links.map((l) => l.restore()));
    await reportUntil('b2', 'RUNNING', (r) => r.knownStatus === TaskStatus.TASK_STATUS_RUNNING);
    const b1 = await reportUntil('b1', 'STOPPED', (r) => r.knownStatus === TaskStatus.TASK_STATUS_STOPPED);
    assert.equal(b1.reason, 'its assignment was deleted');
    assert.equal((await agent!.calls.get('direct-1'))!.knownStatus, TaskStatus.TASK_STATUS_RUNNING, 'the direct task is not an assignment');
  });

  it('after a SIGKILL, replays the assignment changes it missed from the revision it had applied', async () => {
    const applied = (await membership())!.appliedRevision;
    assert.ok(applied > 0);
    await agent!.kill();
    await client.delete().key(keys.assignment(agentId, 'b2'));
    await assign('c1', { task: sleeper('c1') });
    agent = await start();
    await reportUntil('c1', 'RUNNING', (r) => r.knownStatus === TaskStatus.TASK_STATUS_RUNNING);
    await reportUntil('b2', 'STOPPED', (r) => r.knownStatus === TaskStatus.TASK_STATUS_STOPPED);
    assert.equal((await agent.calls.get('a1'))!.knownStatus, TaskStatus.TASK_STATUS_RUNNING, 'a1 was adopted, not run again');
    assert.equal((await agent.calls.get('a1'))!.containers[0]!.restartCount, 0);
    assert.ok((await membership())!.appliedRevision > applied);
  });

  it('killed between recording an assignment and running its task: runs it when back, rather than taking it for done', async () => {
    await agent!.stop();
    agent = await startAgentProcess({ ...startOptions(), crashPoint: 'assignment-recorded' });
    const crashed = agent;
    await assign('d1', { task: sleeper('d1') });
    assert.equal(await crashed.exited, 'SIGKILL');
    agent = await start();
    await reportUntil('d1', 'RUNNING', (r) => r.knownStatus === TaskStatus.TASK_STATUS_RUNNING);
    assert.equal((await agent.calls.get('d1'))!.knownStatus, TaskStatus.TASK_STATUS_RUNNING);
  });
});

describe('an agent in cluster mode against etcd over TLS with client certificates', () => {
  let env: RuntimeEnvironment;
  let etcd: EtcdCluster;
  let pki: TestPki;
  let dir: string;
  const agentId = `member-tls-${process.pid}`;
  const keys = new ClusterKeys(`/berth-tls-${process.pid}/`);
  let agent: AgentProcess | undefined;

  before(async () => {
    env = await startRuntimeEnvironment('cluster-tls', 'containerd');
    env.agentIds.add(agentId);
    dir = mkdtempSync(join(tmpdir(), 'berth-cluster-tls-'));
    pki = new TestPki();
    const ca = pki.authority('etcd-ca');
    etcd = await EtcdCluster.start(1, { ca, server: pki.issue(ca, 'etcd-server', 'server'), client: pki.issue(ca, 'etcd-test-client', 'client') });
  });
  after(async () => {
    await agent?.stop();
    await etcd?.close();
    await env?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
    if (pki) rmSync(pki.dir, { recursive: true, force: true });
  });

  it('registers and runs assignments with a client certificate, and is refused without one', async () => {
    const etcdCa = join(pki.dir, 'etcd-ca.crt');
    const client = etcd.client();
    const view = await EtcdView.open(client, keys.prefix);
    try {
      // Without a client certificate etcd refuses the agent: it says why, and serves gRPC all the same.
      agent = await startAgentProcess({
        dir,
        agentId,
        runtimeConfig: env.runtimeConfig,
        config: { cluster: { endpoints: etcd.endpoints, tls: { caFile: etcdCa }, prefix: keys.prefix } },
      });
      await waitUntil('a reason for not being connected', 30_000, async () => {
        const cluster = (await agent!.berth.getAgentInfo()).cluster;
        return cluster && !cluster.connected && cluster.reason !== 'registration: connecting to etcd' ? cluster : undefined;
      });
      assert.equal(view.values.has(keys.node(agentId)), false);
      await agent.stop();

      const agentClient = join(pki.dir, 'etcd-test-client');
      agent = await startAgentProcess({
        dir,
        agentId,
        runtimeConfig: env.runtimeConfig,
        config: {
          cluster: { endpoints: etcd.endpoints, tls: { caFile: etcdCa, certFile: `${agentClient}.crt`, keyFile: `${agentClient}.key` }, prefix: keys.prefix },
          images: { registryCredentials: { [env.registry.address]: env.credentials } },
        },
      });
      await view.until('the node record', () => view.values.get(keys.node(agentId)));
      await client
        .put(keys.assignment(agentId, 't1'))
        .value(Buffer.from(Assignment.encode(Assignment.fromPartial({ task: task('t1', [container('app', env.image, { command: ['sleep', '600'] })]) })).finish()));
      await view.until('t1 RUNNING', () => {
        const entry = view.values.get(keys.report(agentId, 't1'));
        return entry && TaskReport.decode(entry.value).knownStatus === TaskStatus.TASK_STATUS_RUNNING ? true : undefined;
      });
      assert.equal((await agent.berth.getAgentInfo()).cluster?.connected, true);
    } finally {
      await view.close();
      client.close();
    }
  });
});
