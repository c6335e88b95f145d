import type { Etcd3, ICompare, IRequestOp } from 'etcd3';
import type { Logger } from 'pino';
import { sleep } from '../../engine/retry.js';
import { TaskStatus } from '../../gen/berth/agent/v1/task.js';
import { ClusterTask, NodeControl, NodeLedger, Placement, PlacementState } from '../../gen/berth/cluster/v1/cluster_task.js';
import { Assignment, Node, TaskReport } from '../../gen/berth/cluster/v1/node.js';
import { Backoff } from '../backoff.js';
import type { FleetCache, CachedValue } from '../fleet-cache.js';
import { submissionProblems, type FleetClient } from '../fleet-client.js';
import type { ClusterKeys } from '../keys.js';
import { adjustLedger, choosePlacement, EMPTY_LEDGER, reservationOf, type Candidate } from './placement.js';

export interface ControllerOptions {
  /** This controller's name in the election (unique per replica). */
  id: string;
  /** A leader that stops keeping its election lease alive loses the lead after this long. */
  electionTtlSeconds: number;
  /** Everything is looked at again this often, besides on every change. */
  resyncIntervalMs?: number;
  /**
   * An agent whose registration is missing counts as lost only once the controller has watched
   * etcd without a break for this long: after an outage of etcd, agents have this long to
   * register again before their tasks are moved (twice the agents' lease TTL is right).
   */
  nodeLossGraceMs: number;
}

/** At most this many agents a placement remembers it was lost on. */
const MAX_LOST_ON = 16;
/** Changes arriving together are reconciled together. */
const DEBOUNCE_MS = 20;

interface Decoded<T> {
  value: T;
  modRevision: number;
}

/** A key's expected state in a transaction: at this mod revision, or absent (0). */
function unchanged(key: string, modRevision: number | undefined): ICompare {
  return modRevision ? { key: Buffer.from(key), target: 'Mod', result: 'Equal', mod_revision: modRevision } : { key: Buffer.from(key), target: 'Version', result: 'Equal', version: 0 };
}

const put = (key: string, value: Uint8Array): IRequestOp => ({ request_put: { key: Buffer.from(key), value: Buffer.from(value) } });
const remove = (key: string): IRequestOp => ({ request_delete_range: { key: Buffer.from(key) } });

/**
 * Places cluster tasks on agents and keeps them placed. Replicas campaign in etcd's election; only
 * the leader acts, and every change it makes is one etcd transaction conditioned on the keys it
 * read (the task's placement and the agent's ledger), so two controllers that briefly both lead
 * can neither place a task twice nor overcommit an agent: one of them fails and looks again.
 *
 * What it does, on every change of the fleet (and every few seconds):
 * - places each cluster task that wants to run and has no live placement (see choosePlacement),
 *   writing the assignment, the agent's ledger and the placement together;
 * - follows the agents' reports: RUNNING, then STOPPED (the task is done; its assignment and
 *   reservation go);
 * - an agent whose registration expired (its lease) loses its tasks: their assignments are
 *   deleted (so that the agent, if it comes back, stops them) and each is placed again where asked
 *   (`replace_on_node_loss`), else marked LOST; a draining agent's tasks are moved the same way;
 * - a task asked to stop has its assignment set to STOPPED.
 */
export class Controller {
  readonly cache: FleetCache;
  private leading = false;
  private reconciling = false;
  private again = false;
  private timer: NodeJS.Timeout | undefined;

  private readonly etcd: Etcd3;
  private readonly keys: ClusterKeys;

  /** Works through `fleet`: its etcd connection, and its live view of the fleet. */
  constructor(
    fleet: FleetClient,
    private readonly options: ControllerOptions,
    private readonly log: Logger,
  ) {
    this.etcd = fleet.etcd;
    this.keys = fleet.keys;
    this.cache = fleet.follow(() => this.schedule(), log);
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /** Runs until `signal` aborts: follows the fleet, campaigns, and reconciles while leading. */
  async run(signal: AbortSignal): Promise<void> {
    const resync = setInterval(() => this.schedule(), this.options.resyncIntervalMs ?? 2000);
    try {
      await Promise.all([this.cache.run(signal), this.campaignLoop(signal)]);
    } finally {
      clearInterval(resync);
      clearTimeout(this.timer);
    }
  }

  private async campaignLoop(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(250, 5000);
    while (!signal.aborted) {
      const campaign = this.etcd.election(this.keys.election, this.options.electionTtlSeconds).campaign(this.options.id);
      await new Promise<void>((resolve) => {
        campaign.on('elected', () => {
          this.leading = true;
          backoff.reset();
          this.log.info({ controller: this.options.id }, 'leading the fleet');
          this.schedule();
        });
        campaign.on('error', (error: Error) => {
          if (this.leading) this.log.warn({ err: error }, 'lost the lead');
          else this.log.warn({ err: error }, 'campaigning failed');
          resolve();
        });
        signal.addEventListener('abort', () => resolve(), { once: true });
      });
      this.leading = false;
      if (signal.aborted) {
        // A controller that stops hands the lead over at once.
        await Promise.race([campaign.resign().catch(() => undefined), sleep(2000)]);
        return;
      }
      await sleep(backoff.next(), signal);
    }
  }

  /**
   * One pass over the fleet as if this replica led, whatever the election says: for tests and tools
   * that check that the transactions alone keep two replicas from placing a task twice or
   * overcommitting an agent. Needs the cache running (`cache.run`).
   */
  async passAsLeader(): Promise<void> {
    await this.cache.ready;
    const leading = this.leading;
    this.leading = true;
    try {
      await this.pass();
    } finally {
      this.leading = leading;
    }
  }

  private schedule(): void {
    if (!this.leading || this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.reconcile();
    }, DEBOUNCE_MS);
  }

  private async reconcile(): Promise<void> {
    if (this.reconciling) {
      this.again = true;
      return;
    }
    this.reconciling = true;
    try {
      do {
        this.again = false;
        if (!this.leading || !this.cache.isConnected) return;
        await this.pass();
      } while (this.again);
    } catch (error) {
      this.log.warn({ err: error }, 'reconciling the fleet failed; trying again');
    } finally {
      this.reconciling = false;
    }
  }

  private decodeAll<T>(dir: string, decode: (bytes: Uint8Array) => T): Map<string, Decoded<T>> {
    const decoded = new Map<string, Decoded<T>>();
    for (const [id, entry] of this.cache.under(dir)) {
      try {
        decoded.set(id, { value: decode(entry.value), modRevision: entry.modRevision });
      } catch (error) {
        this.log.warn({ key: `${dir}${id}`, err: error }, 'a value in etcd does not decode; ignored');
      }
    }
    return decoded;
  }

  private decodeOne<T>(key: string, decode: (bytes: Uint8Array) => T): Decoded<T> | undefined {
    const entry: CachedValue | undefined = this.cache.entries.get(key);
    if (!entry) return undefined;
    try {
      return { value: decode(entry.value), modRevision: entry.modRevision };
    } catch {
      return undefined;
    }
  }

  /** One look at the whole fleet; each change is its own transaction. */
  private async pass(): Promise<void> {
    const specs = this.decodeAll(this.keys.tasks, ClusterTask.decode);
    const placements = this.decodeAll(this.keys.placements, Placement.decode);
    const nodes = this.decodeAll(this.keys.nodes, Node.decode);
    const controls = this.decodeAll(this.keys.controls, NodeControl.decode);

    for (const [id, placed] of placements) {
      if (!this.leading) return;
      const spec = specs.get(id)?.value;
      if (!spec) {
        await this.forget(id, placed);
        continue;
      }
      await this.follow(id, spec, placed, nodes, controls);
    }
    // As they are after the changes above: the candidates and counts follow each placement made below.
    const current = this.decodeAll(this.keys.placements, Placement.decode);
    const groups = this.groupCounts(specs, nodes, current);
    const candidates = this.candidates(nodes, controls);
    for (const [id, { value: spec }] of specs) {
      if (!this.leading) return;
      const placed = current.get(id);
      const state = placed?.value.state;
      const wantsToRun = spec.desiredStatus !== TaskStatus.TASK_STATUS_STOPPED;
      if (state !== undefined && state !== PlacementState.PLACEMENT_STATE_PENDING) continue;
      if (!wantsToRun) {
        await this.writePlacement(id, placed, { ...(placed?.value ?? emptyPlacement(id)), state: PlacementState.PLACEMENT_STATE_STOPPED, reason: 'stopped before it was placed' });
        continue;
      }
      await this.place(id, spec, placed, nodes, candidates, groups);
    }
  }

  /** Tasks of each group per value of each spread attribute in use, for SPREAD. */
  private groupCounts(specs: Map<string, Decoded<ClusterTask>>, nodes: Map<string, Decoded<Node>>, placements: Map<string, Decoded<Placement>>) {
    const counts = new Map<string, number>();
    for (const [id, placed] of placements) {
      const { state, agentId } = placed.value;
      if (state !== PlacementState.PLACEMENT_STATE_ASSIGNED && state !== PlacementState.PLACEMENT_STATE_RUNNING) continue;
      const spec = specs.get(id)?.value;
      const node = nodes.get(agentId)?.value;
      if (!spec || !node) continue;
      for (const [attribute, value] of [...Object.entries(node.attributes), ['agent', agentId] as const]) {
        const key = `${groupOf(spec)}\0${attribute}\0${value}`;
        counts.set(key, (counts.get(key) ?? 0) + 1);
      }
    }
    return {
      count: (group: string, attribute: string, value: string) => counts.get(`${group}\0${attribute}\0${value}`) ?? 0,
      add: (group: string, node: Node) => {
        for (const [attribute, value] of [...Object.entries(node.attributes), ['agent', node.agentId] as const]) {
          const key = `${group}\0${attribute}\0${value}`;
          counts.set(key, (counts.get(key) ?? 0) + 1);
        }
      },
    };
  }

  /**
   * The agents as placement sees them, each with the mod revision of the ledger it was given: a
   * placement is committed only if the ledger is still the one its decision read.
   */
  private candidates(nodes: Map<string, Decoded<Node>>, controls: Map<string, Decoded<NodeControl>>): LedgerReadCandidate[] {
    return [...nodes.values()].map(({ value: node }) => {
      const control = controls.get(node.agentId)?.value;
      const ledger = this.decodeOne(this.keys.ledger(node.agentId), NodeLedger.decode);
      return {
        ledgerRevision: ledger?.modRevision,
        agentId: node.agentId,
        attributes: node.attributes,
        capacity: {
          cpuUnits: node.capacity?.cpuUnits ?? 0,
          memoryMib: node.capacity?.memoryMib ?? 0,
          gpus: node.capacity?.gpuIds.length ?? 0,
          reservedTcpPorts: node.capacity?.tcpPorts ?? [],
          reservedUdpPorts: node.capacity?.udpPorts ?? [],
        },
        direct: {
          cpuUnits: node.direct?.cpuUnits ?? 0,
          memoryMib: node.direct?.memoryMib ?? 0,
          gpus: node.direct?.gpuIds.length ?? 0,
          tcpPorts: node.direct?.tcpPorts ?? [],
          udpPorts: node.direct?.udpPorts ?? [],
        },
        unschedulable: Boolean(control?.cordoned || control?.draining) || !node.runtimeAvailable,
        ledger: ledger?.value ?? EMPTY_LEDGER,
      };
    });
  }

  private async place(
    id: string,
    spec: ClusterTask,
    placed: Decoded<Placement> | undefined,
    nodes: Map<string, Decoded<Node>>,
    candidates: LedgerReadCandidate[],
    groups: ReturnType<Controller['groupCounts']>,
  ): Promise<void> {
    const problems = submissionProblems(spec);
    if (!spec.definition || problems.length > 0) {
      // Written to etcd by something other than FleetClient: refused for good, with the reason.
      await this.writePlacement(id, placed, { ...(placed?.value ?? emptyPlacement(id)), state: PlacementState.PLACEMENT_STATE_STOPPED, reason: `not placed: ${problems.join('; ')}`.slice(0, 1024) });
      return;
    }
    const need = reservationOf(id, spec.definition);
    const group = groupOf(spec);
    const choice = choosePlacement(spec, need, candidates, (attribute, value) => groups.count(group, attribute, value));
    if ('reason' in choice) {
      const current = placed?.value;
      if (current?.state !== PlacementState.PLACEMENT_STATE_PENDING || current.reason !== choice.reason) {
        await this.writePlacement(id, placed, { ...(current ?? emptyPlacement(id)), state: PlacementState.PLACEMENT_STATE_PENDING, reason: choice.reason });
      }
      return;
    }
    const agentId = choice.agentId;
    const attempt = (placed?.value.attempt ?? 0) + 1;
    const taskId = `${id}.${attempt}`;
    const chosen = candidates.find((c) => c.agentId === agentId)!;
    const ledgerKey = this.keys.ledger(agentId);
    const newLedger = adjustLedger(chosen.ledger, need, 1);
    const assignment = Assignment.encode({ task: { ...spec.definition, id: taskId }, desiredStatus: TaskStatus.TASK_STATUS_RUNNING, stopReason: '', clusterTaskId: id }).finish();
    const placement: Placement = {
      ...(placed?.value ?? emptyPlacement(id)),
      state: PlacementState.PLACEMENT_STATE_ASSIGNED,
      agentId,
      taskId,
      attempt,
      reason: '',
      knownStatus: TaskStatus.TASK_STATUS_UNSPECIFIED,
      containers: [],
      updatedAt: new Date(),
      reservation: need,
    };
    const ops = [put(this.keys.assignment(agentId, taskId), assignment), put(ledgerKey, NodeLedger.encode(newLedger).finish()), put(this.keys.placement(id), Placement.encode(placement).finish())];
    // Conditioned on the ledger the decision read: had another replica assigned to the agent since,
    // this fails and the task is looked at again with the new ledger.
    const committed = await this.commit([unchanged(this.keys.placement(id), placed?.modRevision), unchanged(ledgerKey, chosen.ledgerRevision)], ops);
    if (committed !== undefined) {
      groups.add(group, nodes.get(agentId)!.value);
      chosen.ledger = newLedger;
      chosen.ledgerRevision = committed;
      this.log.info({ clusterTaskId: id, agentId, taskId, attempt }, 'placed');
    }
  }

  /** A placed task: its agent's report moves it on; a lost or draining agent, or a stop request, acts on it. */
  private async follow(id: string, spec: ClusterTask, placed: Decoded<Placement>, nodes: Map<string, Decoded<Node>>, controls: Map<string, Decoded<NodeControl>>): Promise<void> {
    const placement = placed.value;
    const live = placement.state === PlacementState.PLACEMENT_STATE_ASSIGNED || placement.state === PlacementState.PLACEMENT_STATE_RUNNING;
    if (!live) return;
    const { agentId, taskId } = placement;
    if (!nodes.has(agentId)) {
      if (this.cache.connectedForMs < this.options.nodeLossGraceMs) return;
      return this.move(id, spec, placed, `agent ${agentId} was lost (its registration expired)`, true);
    }
    if (controls.get(agentId)?.value.draining) return this.move(id, spec, placed, `drained from agent ${agentId}`, false);
    const report = this.decodeOne(this.keys.report(agentId, taskId), TaskReport.decode)?.value;
    if (report?.knownStatus === TaskStatus.TASK_STATUS_STOPPED) {
      // Done where it ran: the assignment and its reservation go; the placement keeps the outcome.
      const ledgerKey = this.keys.ledger(agentId);
      const ledger = this.decodeOne(ledgerKey, NodeLedger.decode);
      const released = this.release(ledger?.value, placement);
      const finished: Placement = {
        ...placement,
        state: PlacementState.PLACEMENT_STATE_STOPPED,
        reason: report.reason,
        knownStatus: report.knownStatus,
        containers: report.containers,
        updatedAt: new Date(),
      };
      await this.commit(
        [unchanged(this.keys.placement(id), placed.modRevision), unchanged(ledgerKey, ledger?.modRevision)],
        [remove(this.keys.assignment(agentId, taskId)), put(ledgerKey, NodeLedger.encode(released).finish()), put(this.keys.placement(id), Placement.encode(finished).finish())],
      );
      return;
    }
    if (report && report.knownStatus !== placement.knownStatus) {
      const state = report.knownStatus === TaskStatus.TASK_STATUS_RUNNING ? PlacementState.PLACEMENT_STATE_RUNNING : placement.state;
      await this.writePlacement(id, placed, { ...placement, state, knownStatus: report.knownStatus, containers: report.containers, reason: report.reason });
      return;
    }
    if (spec.desiredStatus === TaskStatus.TASK_STATUS_STOPPED) {
      const key = this.keys.assignment(agentId, taskId);
      const assigned = this.decodeOne(key, Assignment.decode);
      if (assigned && assigned.value.desiredStatus !== TaskStatus.TASK_STATUS_STOPPED) {
        await this.commit(
          [unchanged(key, assigned.modRevision)],
          [put(key, Assignment.encode({ ...assigned.value, desiredStatus: TaskStatus.TASK_STATUS_STOPPED, stopReason: 'stopped by request' }).finish())],
        );
      }
    }
  }

  /**
   * The task's agent is gone or draining: its assignment is deleted (a returning agent stops the
   * task: fencing) and its reservation released; it is placed again when asked to, else it ends
   * LOST (agent lost) or STOPPED (drained).
   */
  private async move(id: string, spec: ClusterTask, placed: Decoded<Placement>, reason: string, lost: boolean): Promise<void> {
    const { agentId, taskId } = placed.value;
    const ledgerKey = this.keys.ledger(agentId);
    const ledger = this.decodeOne(ledgerKey, NodeLedger.decode);
    const released = this.release(ledger?.value, placed.value);
    const again = spec.replaceOnNodeLoss && spec.desiredStatus !== TaskStatus.TASK_STATUS_STOPPED;
    const state = again ? PlacementState.PLACEMENT_STATE_PENDING : lost ? PlacementState.PLACEMENT_STATE_LOST : PlacementState.PLACEMENT_STATE_STOPPED;
    const placement: Placement = { ...placed.value, state, reason, lostOn: [...placed.value.lostOn, agentId].slice(-MAX_LOST_ON), updatedAt: new Date() };
    const done = await this.commit(
      [unchanged(this.keys.placement(id), placed.modRevision), unchanged(ledgerKey, ledger?.modRevision)],
      [remove(this.keys.assignment(agentId, taskId)), put(ledgerKey, NodeLedger.encode(released).finish()), put(this.keys.placement(id), Placement.encode(placement).finish())],
    );
    if (done !== undefined) this.log.warn({ clusterTaskId: id, agentId, taskId, placeAgain: again }, reason);
  }

  /** The cluster task was deleted: its placement, assignment and reservation go too. */
  private async forget(id: string, placed: Decoded<Placement>): Promise<void> {
    const { agentId, taskId } = placed.value;
    const compares = [unchanged(this.keys.placement(id), placed.modRevision)];
    const ops = [remove(this.keys.placement(id))];
    const live = placed.value.state === PlacementState.PLACEMENT_STATE_ASSIGNED || placed.value.state === PlacementState.PLACEMENT_STATE_RUNNING;
    if (live && agentId && taskId) {
      const ledgerKey = this.keys.ledger(agentId);
      const ledger = this.decodeOne(ledgerKey, NodeLedger.decode);
      compares.push(unchanged(ledgerKey, ledger?.modRevision));
      ops.push(put(ledgerKey, NodeLedger.encode(this.release(ledger?.value, placed.value)).finish()));
      ops.push(remove(this.keys.assignment(agentId, taskId)));
    }
    await this.commit(compares, ops);
  }

  /** The agent's ledger without the placement's reservation. */
  private release(ledger: NodeLedger | undefined, placement: Placement): NodeLedger {
    return placement.reservation ? adjustLedger(ledger, placement.reservation, -1) : (ledger ?? EMPTY_LEDGER);
  }

  private async writePlacement(id: string, placed: Decoded<Placement> | undefined, placement: Placement): Promise<void> {
    await this.commit([unchanged(this.keys.placement(id), placed?.modRevision)], [put(this.keys.placement(id), Placement.encode({ ...placement, updatedAt: new Date() }).finish())]);
  }

  /**
   * Commits `ops` if every compare holds; records what it wrote in the cache at once (the next
   * decision in this pass sees it), and returns the revision it committed at. Undefined when something changed meanwhile: the watch brings the
   * change and the task is looked at again.
   */
  private async commit(compare: ICompare[], ops: IRequestOp[]): Promise<number | undefined> {
    const response = await this.etcd.kv.txn({ compare, success: ops, failure: [] });
    if (!response.succeeded) {
      this.again = true;
      return undefined;
    }
    const revision = Number(response.header.revision);
    for (const op of ops) {
      if (op.request_put) this.cache.wrote(op.request_put.key!.toString(), op.request_put.value as Buffer, revision);
      if (op.request_delete_range) this.cache.wrote(op.request_delete_range.key!.toString(), undefined, revision);
    }
    return revision;
  }
}

/** A candidate and the mod revision of the ledger it carries (undefined: the agent has none yet). */
type LedgerReadCandidate = Candidate & { ledgerRevision: number | undefined };

function groupOf(spec: ClusterTask): string {
  return spec.group || spec.definition?.family || spec.id;
}

function emptyPlacement(clusterTaskId: string): Placement {
  return {
    clusterTaskId,
    state: PlacementState.PLACEMENT_STATE_UNSPECIFIED,
    agentId: '',
    taskId: '',
    attempt: 0,
    reason: '',
    lostOn: [],
    knownStatus: TaskStatus.TASK_STATUS_UNSPECIFIED,
    containers: [],
    updatedAt: undefined,
    reservation: undefined,
  };
}
