import { join } from 'node:path';
import type { Etcd3 } from 'etcd3';
import type { Logger } from 'pino';
import type { ClusterConfig } from '../../config/config.js';
import type { EventLog } from '../../engine/events/event-log.js';
import type { TaskEngine } from '../../engine/task-engine.js';
import type { Node } from '../../gen/berth/cluster/v1/node.js';
import { AGENT_VERSION } from '../../version.js';
import { connectEtcd } from '../etcd-connection.js';
import { ClusterKeys } from '../keys.js';
import type { Membership } from '../membership.js';
import { AssignmentApplier } from './assignment-applier.js';
import { AssignmentSync } from './assignment-sync.js';
import { MemberStore } from './member-store.js';
import { NodeRegistration } from './node-registration.js';
import { TaskReporter } from './task-reporter.js';

/** How long the event log may stay quiet before the member looks at it again. */
const EVENT_IDLE_MS = 30_000;

/**
 * The agent's side of a fleet: it registers the node, runs and stops the tasks assigned to it and
 * reports their status, all through etcd. It never stops a task because etcd is gone: while etcd
 * is unreachable everything keeps running, `membership` says so, and each part catches up when
 * etcd is back. Tasks sent over gRPC are never touched.
 */
export class ClusterMember {
  private readonly etcd: Etcd3;
  private readonly store: MemberStore;
  private readonly applier: AssignmentApplier;
  private readonly reporter: TaskReporter;
  private readonly registration: NodeRegistration;
  private readonly sync: AssignmentSync;
  private readonly running = new AbortController();
  private readonly loops: Promise<void>[] = [];
  private readonly startedAt = new Date();

  constructor(
    private readonly config: ClusterConfig,
    dataDir: string,
    private readonly agentId: string,
    private readonly engine: TaskEngine,
    private readonly events: EventLog,
    private readonly membership: Membership,
    private readonly log: Logger,
  ) {
    const keys = new ClusterKeys(config.prefix);
    this.etcd = connectEtcd(config);
    this.store = new MemberStore(join(dataDir, 'cluster.db'));
    this.membership.appliedRevision = this.store.appliedRevision;
    this.reporter = new TaskReporter(
      this.etcd,
      keys,
      agentId,
      this.store,
      (id) => engine.findTask(id),
      () => this.registration.leaseId,
      membership,
      log,
    );
    this.applier = new AssignmentApplier(engine, this.store, (id) => {
      this.membership.assignedTasks = this.store.all().filter((t) => t.owned).length;
      this.reporter.changed(id);
    });
    this.registration = new NodeRegistration(
      this.etcd,
      keys,
      agentId,
      Math.round(config.leaseTtlMs / 1000),
      () => this.nodeRecord(),
      membership,
      () => this.reporter.rewriteAll(),
      log,
    );
    this.sync = new AssignmentSync(this.etcd, keys, agentId, this.applier, this.store, membership, log);
  }

  start(): void {
    const unapplied = this.catchUpWithEngine();
    const signal = this.running.signal;
    this.loops.push(this.registration.run(signal), this.sync.run(signal, unapplied), this.followEvents(signal));
  }

  async stop(): Promise<void> {
    this.running.abort();
    this.reporter.stop();
    await Promise.all(this.loops);
    this.etcd.close();
    this.store.close();
  }

  /**
   * Assigned tasks the engine forgot while the agent was down, or while the member fell behind.
   * True when an assignment was recorded but never reached the engine (a crash in between): the
   * assignments must then be listed again, which applies it.
   */
  private catchUpWithEngine(): boolean {
    let unapplied = false;
    for (const task of this.store.all()) {
      if (!task.owned || task.finished || this.engine.findTask(task.taskId)) continue;
      if (task.admitted) this.applier.forgotten(task.taskId);
      else unapplied = true;
    }
    this.membership.assignedTasks = this.store.all().filter((t) => t.owned).length;
    return unapplied;
  }

  /** Each event of an assigned task marks its report; a removal is the engine forgetting it. */
  private async followEvents(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const watcher = this.events.watch(this.events.latestSequence() + 1);
      const close = () => watcher.close();
      signal.addEventListener('abort', close, { once: true });
      try {
        for (;;) {
          const batch = await watcher.next(EVENT_IDLE_MS);
          if (batch === undefined) return;
          for (const event of batch) {
            const assigned = this.store.get(event.taskId);
            if (!assigned?.owned) continue;
            if (event.change.type === 'removed') this.applier.forgotten(event.taskId);
            else this.reporter.changed(event.taskId);
          }
        }
      } catch (error) {
        // Fell behind (a burst of events): every report is written again from the tasks as they are.
        this.log.warn({ err: error }, 'the cluster member fell behind the event log; rewriting every report');
        this.catchUpWithEngine();
        this.reporter.rewriteAll();
      } finally {
        signal.removeEventListener('abort', close);
        watcher.close();
      }
    }
  }

  private nodeRecord(): Node {
    const info = this.engine.agentInfo();
    const tasks = this.engine.listTasks();
    const resources = (r: { cpuUnits: number; memoryMib: number; tcpPorts: number[]; udpPorts: number[]; gpuIds: string[] }, dynamicTcp = 0, dynamicUdp = 0) => ({
      cpuUnits: r.cpuUnits,
      memoryMib: r.memoryMib,
      tcpPorts: r.tcpPorts,
      udpPorts: r.udpPorts,
      gpuIds: r.gpuIds,
      dynamicTcpPortsFree: dynamicTcp,
      dynamicUdpPortsFree: dynamicUdp,
    });
    // What tasks sent directly hold: the controllers count assigned tasks themselves.
    const direct = { cpuUnits: 0, memoryMib: 0, tcpPorts: [] as number[], udpPorts: [] as number[], gpuIds: [] as string[] };
    for (const t of tasks) {
      if (!t.resources || t.knownStatus === 'STOPPED' || this.store.get(t.definition.id)?.owned) continue;
      direct.cpuUnits += t.resources.cpuUnits;
      direct.memoryMib += t.resources.memoryMib;
      direct.tcpPorts.push(...t.resources.tcpPorts);
      direct.udpPorts.push(...t.resources.udpPorts);
      direct.gpuIds.push(...t.resources.gpuIds);
    }
    return {
      agentId: this.agentId,
      version: AGENT_VERSION,
      address: this.config.advertiseAddress,
      attributes: { ...this.config.attributes, os: process.platform, arch: process.arch, runtime: info.runtimeName },
      capacity: resources(info.capacity),
      free: resources(info.free, info.free.dynamicTcpPorts, info.free.dynamicUdpPorts),
      tasksRunning: tasks.filter((t) => t.knownStatus === 'RUNNING').length,
      tasksTotal: tasks.length,
      assignedTasks: this.membership.assignedTasks,
      runtimeAvailable: info.runtime.available,
      startedAt: this.startedAt,
      updatedAt: undefined,
      direct: resources(direct),
    };
  }
}
