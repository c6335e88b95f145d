import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adjustLedger, choosePlacement, headroom, reservationOf, type Candidate } from '../../src/cluster/controller/placement.js';
import { parseConstraint, FleetError } from '../../src/cluster/fleet-client.js';
import { ClusterTask, ConstraintOperator, PlacementStrategy, type Reservation } from '../../src/gen/berth/cluster/v1/cluster_task.js';
import { ContainerDefinition, TaskDefinition, TransportProtocol } from '../../src/gen/berth/agent/v1/task_definition.js';

const need = (cpuUnits: number, more: Partial<Reservation> = {}): Reservation => ({ clusterTaskId: 't', cpuUnits, memoryMib: 8, tcpPorts: [], udpPorts: [], gpus: 0, ...more });

function candidate(agentId: string, used: number, more: Partial<Candidate> = {}): Candidate {
  return {
    agentId,
    attributes: { zone: 'a' },
    capacity: { cpuUnits: 100, memoryMib: 1000, gpus: 0, reservedTcpPorts: [22], reservedUdpPorts: [] },
    direct: { cpuUnits: 0, memoryMib: 0, gpus: 0, tcpPorts: [], udpPorts: [] },
    unschedulable: false,
    ledger: adjustLedger(undefined, need(used), 1),
    ...more,
  };
}

const spec = (more: Partial<ClusterTask> = {}) => ClusterTask.fromPartial({ id: 't', ...more });

describe('placement (choosePlacement)', () => {
  it('binpack: the agent left with the least room that still fits, ties to the smaller id', () => {
    const agents = [candidate('n1', 10), candidate('n2', 70), candidate('n3', 95), candidate('n0', 70)];
    assert.deepEqual(
      choosePlacement(spec(), need(20), agents, () => 0),
      { agentId: 'n0' },
    );
  });

  it('spread: the attribute value with the fewest tasks of the group, then the agent with the most room', () => {
    const agents = [candidate('a1', 50), candidate('a2', 10), candidate('b1', 60, { attributes: { zone: 'b' } })];
    const counts: Record<string, number> = { a: 3, b: 1 };
    const task = spec({ strategy: PlacementStrategy.PLACEMENT_STRATEGY_SPREAD, spreadAttribute: 'zone' });
    assert.deepEqual(
      choosePlacement(task, need(10), agents, (_attribute, value) => counts[value] ?? 0),
      { agentId: 'b1' },
    );
    counts.b = 5;
    assert.deepEqual(
      choosePlacement(task, need(10), agents, (_attribute, value) => counts[value] ?? 0),
      { agentId: 'a2' },
    );
  });

  it('leaves aside what the ledger assigned and what direct tasks hold, each once', () => {
    const assigned = candidate('n1', 60);
    assert.equal(headroom(assigned).cpuUnits, 40);
    // A task sent to the agent directly holds 50 that no ledger knows of.
    const direct = candidate('n2', 0, { direct: { cpuUnits: 50, memoryMib: 0, gpus: 0, tcpPorts: [9000], udpPorts: [] } });
    assert.equal(headroom(direct).cpuUnits, 50);
    const both = candidate('n3', 30, { direct: { cpuUnits: 30, memoryMib: 0, gpus: 0, tcpPorts: [], udpPorts: [] } });
    assert.equal(headroom(both).cpuUnits, 40);
    assert.match((choosePlacement(spec(), need(60), [assigned, direct, both], () => 0) as { reason: string }).reason, /3 by cpu/);
    assert.match((choosePlacement(spec(), need(10, { tcpPorts: [9000] }), [direct], () => 0) as { reason: string }).reason, /1 by ports/);
  });

  it('filters by constraints, cordons, static host ports and gpus, and says why nothing fits', () => {
    const agents = [
      candidate('n1', 0, { attributes: { zone: 'b' } }),
      candidate('n2', 0, { unschedulable: true }),
      candidate('n3', 0, { ledger: adjustLedger(undefined, need(0, { tcpPorts: [8080] }), 1) }),
      candidate('n4', 0),
    ];
    const task = spec({ constraints: [{ attribute: 'zone', operator: ConstraintOperator.CONSTRAINT_OPERATOR_EQUAL, values: ['a'] }] });
    assert.deepEqual(
      choosePlacement(task, need(10, { tcpPorts: [8080] }), agents, () => 0),
      { agentId: 'n4' },
    );
    const none = choosePlacement(task, need(10, { tcpPorts: [22] }), agents, () => 0) as { reason: string };
    assert.match(none.reason, /1 by constraints/);
    assert.match(none.reason, /1 by cordoned/);
    assert.match(none.reason, /2 by ports/);
    assert.match((choosePlacement(task, need(1, { gpus: 1 }), [candidate('n5', 0)], () => 0) as { reason: string }).reason, /gpus/);
    assert.deepEqual(
      choosePlacement(spec({ constraints: [parseConstraint('agent!=n4')] }), need(1), [candidate('n4', 0), candidate('n5', 0)], () => 0),
      { agentId: 'n5' },
    );
    assert.equal((choosePlacement(spec(), need(1), [], () => 0) as { reason: string }).reason, 'no agent is registered');
  });

  it('reserves what the agent will: task-level cpu and memory, else the containers’; host ports by protocol', () => {
    const containers = [
      ContainerDefinition.fromPartial({ name: 'a', cpuUnits: 10, memoryMib: 64, portMappings: [{ containerPort: 80, hostPort: 8080 }] }),
      ContainerDefinition.fromPartial({
        name: 'b',
        cpuUnits: 5,
        memoryReservationMib: 32,
        memoryMib: 128,
        portMappings: [{ containerPort: 53, hostPort: 53, protocol: TransportProtocol.TRANSPORT_PROTOCOL_UDP }, { containerPort: 9 }],
      }),
    ];
    assert.deepEqual(reservationOf('c', TaskDefinition.fromPartial({ containers })), { clusterTaskId: 'c', cpuUnits: 15, memoryMib: 96, tcpPorts: [8080], udpPorts: [53], gpus: 0 });
    assert.equal(reservationOf('c', TaskDefinition.fromPartial({ containers, cpuUnits: 512, memoryMib: 256 })).memoryMib, 256);
  });

  it('the ledger adds and releases reservations, never below zero, each port once', () => {
    const one = adjustLedger(undefined, need(10, { tcpPorts: [80] }), 1);
    const two = adjustLedger(one, need(5, { tcpPorts: [80, 443] }), 1);
    assert.deepEqual(two, { cpuUnits: 15, memoryMib: 16, gpus: 0, tcpPorts: [80, 80, 443], udpPorts: [], tasks: 2 });
    const back = adjustLedger(two, need(5, { tcpPorts: [80, 443] }), -1);
    assert.deepEqual(back, { ...one, tcpPorts: [80] });
    assert.equal(adjustLedger(back, need(50), -1).cpuUnits, 0);
  });

  it('parses constraints as berthctl takes them', () => {
    assert.deepEqual(parseConstraint('zone==a|b'), { attribute: 'zone', operator: ConstraintOperator.CONSTRAINT_OPERATOR_EQUAL, values: ['a', 'b'] });
    assert.deepEqual(parseConstraint('rack != r1'), { attribute: 'rack', operator: ConstraintOperator.CONSTRAINT_OPERATOR_NOT_EQUAL, values: ['r1'] });
    assert.throws(() => parseConstraint('zone=a'), FleetError);
    assert.throws(() => parseConstraint('zone==a||b'), FleetError);
  });
});
