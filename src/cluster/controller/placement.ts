import type { TaskDefinition } from '../../gen/berth/agent/v1/task_definition.js';
import { TransportProtocol } from '../../gen/berth/agent/v1/task_definition.js';
import { ConstraintOperator, PlacementStrategy, type ClusterTask, type Constraint, type NodeLedger, type Reservation } from '../../gen/berth/cluster/v1/cluster_task.js';

/** An agent as placement sees it: what it offers, and what the controllers already gave it. */
export interface Candidate {
  agentId: string;
  attributes: Record<string, string>;
  capacity: { cpuUnits: number; memoryMib: number; gpus: number; reservedTcpPorts: number[]; reservedUdpPorts: number[] };
  /** What the tasks sent to the agent directly hold, as the agent last said. */
  direct: { cpuUnits: number; memoryMib: number; gpus: number; tcpPorts: number[]; udpPorts: number[] };
  /** No new placements (cordoned or draining). */
  unschedulable: boolean;
  /** Its ledger: what the tasks assigned to it hold, in all. */
  ledger: NodeLedger;
}

/** What a definition reserves on an agent: as the agent counts it (task-level, else its containers'). */
export function reservationOf(clusterTaskId: string, definition: TaskDefinition): Reservation {
  const containers = definition.containers;
  const sum = (f: (c: (typeof containers)[number]) => number) => containers.reduce((total, c) => total + f(c), 0);
  const ports = (protocol: TransportProtocol) =>
    containers.flatMap((c) =>
      c.portMappings
        .filter((p) => p.hostPort > 0 && (p.protocol === protocol || (protocol === TransportProtocol.TRANSPORT_PROTOCOL_TCP && p.protocol === TransportProtocol.TRANSPORT_PROTOCOL_UNSPECIFIED)))
        .map((p) => p.hostPort),
    );
  return {
    clusterTaskId,
    cpuUnits: definition.cpuUnits || sum((c) => c.cpuUnits),
    memoryMib: definition.memoryMib || sum((c) => c.memoryReservationMib || c.memoryMib),
    tcpPorts: ports(TransportProtocol.TRANSPORT_PROTOCOL_TCP),
    udpPorts: ports(TransportProtocol.TRANSPORT_PROTOCOL_UDP),
    gpus: sum((c) => c.gpuCount),
  };
}

/** Whether an agent's attributes satisfy a constraint; the attribute "agent" is the agent's id. */
export function satisfies(candidate: Pick<Candidate, 'agentId' | 'attributes'>, constraint: Constraint): boolean {
  const value = constraint.attribute === 'agent' ? candidate.agentId : candidate.attributes[constraint.attribute];
  const listed = value !== undefined && constraint.values.includes(value);
  return constraint.operator === ConstraintOperator.CONSTRAINT_OPERATOR_NOT_EQUAL ? !listed : listed;
}

/**
 * What is left of an agent for one more task: its capacity less what the controllers assigned to
 * it (their ledger, exact whatever the agent has reported so far) and less what the tasks sent to
 * it directly hold (the agent's own count). The two never overlap.
 */
export function headroom(candidate: Candidate): { cpuUnits: number; memoryMib: number; gpus: number } {
  const { capacity, ledger, direct } = candidate;
  const left = (field: 'cpuUnits' | 'memoryMib' | 'gpus') => capacity[field] - Number(ledger[field]) - direct[field];
  return { cpuUnits: left('cpuUnits'), memoryMib: left('memoryMib'), gpus: left('gpus') };
}

/** Why `candidate` cannot take `need`, or undefined when it can. */
function misfit(task: ClusterTask, need: Reservation, candidate: Candidate): string | undefined {
  if (task.constraints.some((c) => !satisfies(candidate, c))) return 'constraints';
  if (candidate.unschedulable) return 'cordoned';
  const room = headroom(candidate);
  if (need.cpuUnits > room.cpuUnits) return 'cpu';
  if (need.memoryMib > room.memoryMib) return 'memory';
  if (need.gpus > room.gpus) return 'gpus';
  const taken = (field: 'tcpPorts' | 'udpPorts', reserved: number[]) => new Set([...reserved, ...candidate.ledger[field], ...candidate.direct[field]]);
  const tcp = taken('tcpPorts', candidate.capacity.reservedTcpPorts);
  const udp = taken('udpPorts', candidate.capacity.reservedUdpPorts);
  if (need.tcpPorts.some((p) => tcp.has(p)) || need.udpPorts.some((p) => udp.has(p))) return 'ports';
  return undefined;
}

/** The ledger of an agent nothing was assigned to. */
export const EMPTY_LEDGER: Readonly<NodeLedger> = Object.freeze({ cpuUnits: 0, memoryMib: 0, gpus: 0, tcpPorts: [], udpPorts: [], tasks: 0 });

/** The ledger with `r` added (`sign` 1) or taken away (-1; never below zero, each port once). */
export function adjustLedger(ledger: NodeLedger | undefined, r: Reservation, sign: 1 | -1): NodeLedger {
  const base = ledger ?? EMPTY_LEDGER;
  const ports = (current: number[], change: number[]) => {
    if (sign === 1) return [...current, ...change];
    const left = [...current];
    for (const port of change) {
      const at = left.indexOf(port);
      if (at >= 0) left.splice(at, 1);
    }
    return left;
  };
  return {
    cpuUnits: Math.max(0, base.cpuUnits + sign * r.cpuUnits),
    memoryMib: Math.max(0, base.memoryMib + sign * r.memoryMib),
    gpus: Math.max(0, base.gpus + sign * r.gpus),
    tcpPorts: ports(base.tcpPorts, r.tcpPorts),
    udpPorts: ports(base.udpPorts, r.udpPorts),
    tasks: Math.max(0, base.tasks + sign),
  };
}

export type PlacementChoice = { agentId: string } | { reason: string };

/**
 * Picks the agent for `task` among `candidates`: those that satisfy its constraints, take new
 * placements, and have room (see headroom; static host ports not taken). BINPACK takes the one
 * left with the least CPU (then memory); SPREAD the value of the spread attribute with the fewest
 * tasks of the group (`groupCount`), then the agent with the most room. Ties go to the smaller
 * agent id, so that every controller decides the same. Without a fit, says why per agent count.
 */
export function choosePlacement(task: ClusterTask, need: Reservation, candidates: Candidate[], groupCount: (attribute: string, value: string) => number): PlacementChoice {
  const fits: Candidate[] = [];
  const misfits = new Map<string, number>();
  for (const candidate of candidates) {
    const why = misfit(task, need, candidate);
    if (why === undefined) fits.push(candidate);
    else misfits.set(why, (misfits.get(why) ?? 0) + 1);
  }
  if (fits.length === 0) {
    const detail = [...misfits].map(([why, count]) => `${count} by ${why}`).join(', ');
    return { reason: candidates.length === 0 ? 'no agent is registered' : `no agent fits (cpu ${need.cpuUnits}, memory ${need.memoryMib} MiB): ${detail}` };
  }
  const room = (c: Candidate) => headroom(c);
  const byId = (a: Candidate, b: Candidate) => (a.agentId < b.agentId ? -1 : a.agentId > b.agentId ? 1 : 0);
  if (task.strategy === PlacementStrategy.PLACEMENT_STRATEGY_SPREAD) {
    const attribute = task.spreadAttribute || 'agent';
    const valueOf = (c: Candidate) => (attribute === 'agent' ? c.agentId : (c.attributes[attribute] ?? ''));
    fits.sort((a, b) => groupCount(attribute, valueOf(a)) - groupCount(attribute, valueOf(b)) || room(b).cpuUnits - room(a).cpuUnits || byId(a, b));
  } else {
    fits.sort((a, b) => room(a).cpuUnits - room(b).cpuUnits || room(a).memoryMib - room(b).memoryMib || byId(a, b));
  }
  return { agentId: fits[0]!.agentId };
}
