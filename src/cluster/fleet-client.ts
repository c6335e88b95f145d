import type { Etcd3 } from 'etcd3';
import { connect, type BerthClient } from '../client/berth-client.js';
import type { ConnectOptions } from '../client/connection.js';
import { TaskStatus } from '../gen/berth/agent/v1/task.js';
import { ClusterTask, ConstraintOperator, NodeControl, Placement, PlacementStrategy, type Constraint } from '../gen/berth/cluster/v1/cluster_task.js';
import { Node } from '../gen/berth/cluster/v1/node.js';
import type { Logger } from 'pino';
import { connectEtcd, type EtcdSettings } from './etcd-connection.js';
import { FleetCache } from './fleet-cache.js';
import { ClusterKeys } from './keys.js';

/** What a fleet operation was refused for: a bad submission, an id in use, or something missing. */
export class FleetError extends Error {
  override readonly name = 'FleetError';
  constructor(
    message: string,
    readonly kind: 'invalid' | 'exists' | 'not-found' | 'conflict',
  ) {
    super(message);
  }
}

/** An agent of the fleet as the registry and the operators' controls say. */
export interface FleetNode {
  node: Node;
  control: NodeControl | undefined;
}

/** A cluster task and, once the controller has looked at it, its placement. */
export interface FleetTask {
  task: ClusterTask;
  placement: Placement | undefined;
}

const CLUSTER_TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$/;
const MAX_CONSTRAINTS = 16;
const MAX_CONSTRAINT_VALUES = 64;

/**
 * "attribute==value", "attribute!=value", with "|" between alternatives ("zone==a|b"): a
 * placement constraint as berthctl and configs write it.
 */
export function parseConstraint(text: string): Constraint {
  const match = /^([A-Za-z0-9][A-Za-z0-9_./-]{0,62})\s*(==|!=)\s*(.+)$/.exec(text.trim());
  if (!match) throw new FleetError(`constraint "${text}" must be ATTRIBUTE==VALUE or ATTRIBUTE!=VALUE (alternatives separated by |)`, 'invalid');
  const values = match[3]!.split('|').map((v) => v.trim());
  if (values.length > MAX_CONSTRAINT_VALUES || values.some((v) => v === '' || v.length > 256))
    throw new FleetError(`constraint "${text}": at most ${MAX_CONSTRAINT_VALUES} non-empty values`, 'invalid');
  return { attribute: match[1]!, operator: match[2] === '==' ? ConstraintOperator.CONSTRAINT_OPERATOR_EQUAL : ConstraintOperator.CONSTRAINT_OPERATOR_NOT_EQUAL, values };
}

/**
 * A control plane's handle on a fleet in etcd: submit, list and stop cluster tasks; list,
 * cordon and drain agents; and reach an agent's own API (logs, exec) at the address it
 * advertises, with the project's client. What it writes, the leading controller acts on.
 */
export class FleetClient {
  readonly keys: ClusterKeys;

  constructor(
    readonly etcd: Etcd3,
    prefix = '/berth/',
  ) {
    this.keys = new ClusterKeys(prefix);
  }

  /** Submits a cluster task. Idempotent: the same task again is a no-op; a different one under a used id is refused. */
  async submit(task: Partial<ClusterTask> & { id: string }): Promise<{ created: boolean }> {
    const submitted = ClusterTask.fromPartial({ ...task, submittedAt: task.submittedAt ?? new Date() });
    checkSubmission(submitted);
    const key = this.keys.task(submitted.id);
    const value = Buffer.from(ClusterTask.encode(submitted).finish());
    const result = await this.etcd.if(key, 'Version', '==', 0).then(this.etcd.put(key).value(value)).else(this.etcd.get(key)).commit();
    if (result.succeeded) return { created: true };
    const existing = result.responses[0]?.response_range?.kvs[0]?.value;
    const same = existing && sameSubmission(ClusterTask.decode(existing), submitted);
    if (!same) throw new FleetError(`cluster task ${submitted.id} exists with a different definition`, 'exists');
    return { created: false };
  }

  async getTask(id: string): Promise<FleetTask> {
    const [task, placement] = await Promise.all([this.etcd.get(this.keys.task(id)).buffer(), this.etcd.get(this.keys.placement(id)).buffer()]);
    if (!task) throw new FleetError(`no cluster task ${id}`, 'not-found');
    return { task: ClusterTask.decode(task), placement: placement ? Placement.decode(placement) : undefined };
  }

  async listTasks(): Promise<FleetTask[]> {
    const [tasks, placements] = await Promise.all([this.etcd.getAll().prefix(this.keys.tasks).buffers(), this.etcd.getAll().prefix(this.keys.placements).buffers()]);
    return Object.entries(tasks)
      .map(([key, value]) => {
        const id = key.slice(this.keys.tasks.length);
        const placement = placements[this.keys.placement(id)];
        return { task: ClusterTask.decode(value), placement: placement ? Placement.decode(placement) : undefined };
      })
      .sort((a, b) => (a.task.id < b.task.id ? -1 : a.task.id > b.task.id ? 1 : 0));
  }

  /** Asks for the task to stop wherever it runs (its desired status becomes STOPPED). */
  async stopTask(id: string): Promise<void> {
    for (let attempt = 0; attempt < 10; attempt++) {
      const key = this.keys.task(id);
      const current = await this.etcd.get(key).exec();
      const kv = current.kvs[0];
      if (!kv) throw new FleetError(`no cluster task ${id}`, 'not-found');
      const task = ClusterTask.decode(kv.value);
      if (task.desiredStatus === TaskStatus.TASK_STATUS_STOPPED) return;
      const value = Buffer.from(ClusterTask.encode({ ...task, desiredStatus: TaskStatus.TASK_STATUS_STOPPED }).finish());
      const result = await this.etcd.if(key, 'Mod', '==', Number(kv.mod_revision)).then(this.etcd.put(key).value(value)).commit();
      if (result.succeeded) return;
    }
    throw new FleetError(`cluster task ${id} kept changing; try again`, 'conflict');
  }

  async listNodes(): Promise<FleetNode[]> {
    const [nodes, controls] = await Promise.all([this.etcd.getAll().prefix(this.keys.nodes).buffers(), this.etcd.getAll().prefix(this.keys.controls).buffers()]);
    return Object.values(nodes)
      .map((value) => {
        const node = Node.decode(value);
        const control = controls[this.keys.control(node.agentId)];
        return { node, control: control ? NodeControl.decode(control) : undefined };
      })
      .sort((a, b) => (a.node.agentId < b.node.agentId ? -1 : a.node.agentId > b.node.agentId ? 1 : 0));
  }

  /** No new placements on the agent (`cordoned` false lifts it, and a drain with it). */
  async cordon(agentId: string, cordoned = true, reason = ''): Promise<void> {
    await this.setControl(agentId, { cordoned, draining: false, reason });
  }

  /** Cordons the agent and has its tasks placed elsewhere (or stopped, for those not to be placed again). */
  async drain(agentId: string, reason = 'drained'): Promise<void> {
    await this.setControl(agentId, { cordoned: true, draining: true, reason });
  }

  private async setControl(agentId: string, control: NodeControl): Promise<void> {
    if (!CLUSTER_TASK_ID.test(agentId)) throw new FleetError(`"${agentId}" is not an agent id`, 'invalid');
    const key = this.keys.control(agentId);
    if (!control.cordoned && !control.draining) await this.etcd.delete().key(key);
    else await this.etcd.put(key).value(Buffer.from(NodeControl.encode(control).finish()));
  }

  /**
   * A live view of everything under the fleet's prefix (listed, then followed by a watch that
   * resumes where it was, listing again after a compaction); `onChange` is told of every change.
   * Start it with `run`.
   */
  follow(onChange: () => void, log: Logger): FleetCache {
    return new FleetCache(this.etcd, this.keys.prefix, onChange, log);
  }

  /** The project's client on the agent that runs the cluster task, and the task's id there. */
  async agentOf(clusterTaskId: string, options: Omit<ConnectOptions, 'address'> = {}): Promise<{ client: BerthClient; taskId: string; agentId: string }> {
    const { placement } = await this.getTask(clusterTaskId);
    if (!placement?.agentId || !placement.taskId) throw new FleetError(`cluster task ${clusterTaskId} is not placed on an agent`, 'not-found');
    const node = await this.etcd.get(this.keys.node(placement.agentId)).buffer();
    if (!node) throw new FleetError(`agent ${placement.agentId} of cluster task ${clusterTaskId} is not registered`, 'not-found');
    return { client: connect({ ...options, address: Node.decode(node).address }), taskId: placement.taskId, agentId: placement.agentId };
  }

  close(): void {
    this.etcd.close();
  }
}

/** A FleetClient on a new etcd connection. */
export function connectFleet(settings: EtcdSettings & { prefix?: string }): FleetClient {
  return new FleetClient(connectEtcd(settings), settings.prefix);
}

function checkSubmission(task: ClusterTask): void {
  const problems = submissionProblems(task);
  if (problems.length > 0) throw new FleetError(`cluster task ${task.id}: ${problems.join('; ')}`, 'invalid');
}

/** What is wrong with a cluster task, whoever wrote it to etcd (FleetClient refuses it; the controller will not place it). */
export function submissionProblems(task: ClusterTask): string[] {
  const problems: string[] = [];
  if (!CLUSTER_TASK_ID.test(task.id)) problems.push(`id must match ${CLUSTER_TASK_ID.source}`);
  if (!task.definition || task.definition.containers.length === 0) problems.push('definition needs at least one container');
  if (task.definition?.containers.some((c) => c.registryCredentials !== undefined)) {
    problems.push('definition.containers[].registry_credentials: no registry passwords in etcd; give the agents credentials (images.registryCredentials, images.dockerConfig)');
  }
  if (task.constraints.length > MAX_CONSTRAINTS) problems.push(`at most ${MAX_CONSTRAINTS} constraints`);
  for (const c of task.constraints) {
    if (c.operator === ConstraintOperator.CONSTRAINT_OPERATOR_UNSPECIFIED || c.values.length === 0 || c.values.length > MAX_CONSTRAINT_VALUES) {
      problems.push(`constraint on "${c.attribute}" needs an operator and 1 to ${MAX_CONSTRAINT_VALUES} values`);
    }
  }
  if (task.strategy === PlacementStrategy.PLACEMENT_STRATEGY_SPREAD && task.spreadAttribute.length > 63) problems.push('spread_attribute is at most 63 characters');
  return problems;
}

function sameSubmission(a: ClusterTask, b: ClusterTask): boolean {
  const comparable = (t: ClusterTask) => Buffer.from(ClusterTask.encode({ ...t, submittedAt: undefined, desiredStatus: TaskStatus.TASK_STATUS_UNSPECIFIED }).finish());
  return comparable(a).equals(comparable(b));
}
