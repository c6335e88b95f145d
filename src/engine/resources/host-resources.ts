import type { TaskDefinition } from '../model/task-definition.js';
import type { TaskResources } from '../model/task-snapshot.js';

/** What the host offers to tasks. */
export interface HostCapacity {
  cpuUnits: number;
  memoryMib: number;
  /** Ports no task may take (ssh, Docker, the agent's own). */
  reservedTcpPorts: number[];
  reservedUdpPorts: number[];
  /** Dynamic host ports are taken from this inclusive range. */
  dynamicPortRange: { first: number; last: number };
  gpuIds: string[];
}

/** What one task asks of the host. */
export interface ResourceNeeds {
  cpuUnits: number;
  memoryMib: number;
  tcpPorts: number[];
  udpPorts: number[];
  dynamicTcpPorts: number;
  dynamicUdpPorts: number;
  gpus: number;
}

/** Where reservations are kept so that a restarted agent holds exactly what its tasks held. */
export interface ReservationStore {
  saveReservation(taskId: string, resources: TaskResources): void;
  deleteReservation(taskId: string): void;
}

/** Tells whether a host port is free right now (nothing else on the host listens on it). */
export type PortProbe = (port: number, protocol: 'tcp' | 'udp') => Promise<boolean>;

/** The host resources a task definition needs, by ECS rules. */
export function needsOf(task: TaskDefinition): ResourceNeeds {
  const needs: ResourceNeeds = {
    cpuUnits: task.cpuUnits || task.containers.reduce((sum, c) => sum + c.cpuUnits, 0),
    memoryMib: task.memoryMib || task.containers.reduce((sum, c) => sum + (c.memoryReservationMib || c.memoryMib), 0),
    tcpPorts: [],
    udpPorts: [],
    dynamicTcpPorts: 0,
    dynamicUdpPorts: 0,
    gpus: task.containers.reduce((sum, c) => sum + c.gpuCount, 0),
  };
  if (task.networkMode === 'none') return needs;
  for (const c of task.containers) {
    for (const p of c.portMappings) {
      const port = task.networkMode === 'host' ? p.containerPort : p.hostPort;
      if (port === 0) {
        if (p.protocol === 'tcp') needs.dynamicTcpPorts++;
        else needs.dynamicUdpPorts++;
      } else if (p.protocol === 'tcp') needs.tcpPorts.push(port);
      else needs.udpPorts.push(port);
    }
  }
  return needs;
}

/**
 * How long a host port a task released may still be in use on the host before a task that wants
 * it is refused, and how often it is tried meanwhile.
 */
export const PORT_RELEASE_GRACE_MS = 10_000;
const PORT_RETRY_MS = 250;

/**
 * Bookkeeping of the host's CPU, memory, ports and GPUs. Consumption is all-or-nothing and
 * idempotent per task; release is idempotent. Dynamic ports are chosen here (not by the runtime),
 * so they are known before the containers are created and never handed to two tasks.
 */
export class HostResourceManager {
  private readonly held = new Map<string, TaskResources>();
  /** When each static port a task held was released (`port/protocol`), for PORT_RELEASE_GRACE_MS. */
  private readonly releasedAt = new Map<string, number>();
  private cpuUsed = 0;
  private memoryUsed = 0;
  private readonly tcpUsed = new Set<number>();
  private readonly udpUsed = new Set<number>();
  private readonly gpusUsed = new Set<string>();

  constructor(
    readonly capacity: HostCapacity,
    private readonly probe: PortProbe,
    private readonly store?: ReservationStore,
    /** A monotonic clock in ms (tests move it). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Why the task can never run here, even on an empty host; empty when it can. */
  neverFits(needs: ResourceNeeds): string[] {
    const problems: string[] = [];
    const c = this.capacity;
    if (needs.cpuUnits > c.cpuUnits) problems.push(`needs ${needs.cpuUnits} CPU units, the host has ${c.cpuUnits}`);
    if (needs.memoryMib > c.memoryMib) problems.push(`needs ${needs.memoryMib} MiB memory, the host has ${c.memoryMib} MiB for tasks`);
    if (needs.gpus > c.gpuIds.length) problems.push(`needs ${needs.gpus} GPUs, the host has ${c.gpuIds.length}`);
    for (const [ports, reserved, protocol] of [
      [needs.tcpPorts, c.reservedTcpPorts, 'tcp'],
      [needs.udpPorts, c.reservedUdpPorts, 'udp'],
    ] as const) {
      for (const port of ports) if (reserved.includes(port)) problems.push(`needs host port ${port}/${protocol}, which is reserved`);
    }
    const rangeSize = c.dynamicPortRange.last - c.dynamicPortRange.first + 1;
    if (needs.dynamicTcpPorts > rangeSize || needs.dynamicUdpPorts > rangeSize) problems.push(`needs more dynamic ports than the range holds (${rangeSize})`);
    return problems;
  }

  /** What the task lacks now, in words, or undefined when it would fit. */
  shortfall(needs: ResourceNeeds): string | undefined {
    const free = this.free();
    const lacking: string[] = [];
    if (needs.cpuUnits > free.cpuUnits) lacking.push(`${needs.cpuUnits} CPU units, ${free.cpuUnits} free`);
    if (needs.memoryMib > free.memoryMib) lacking.push(`${needs.memoryMib} MiB memory, ${free.memoryMib} MiB free`);
    if (needs.gpus > free.gpuIds.length) lacking.push(`${needs.gpus} GPUs, ${free.gpuIds.length} free`);
    const taken = [...needs.tcpPorts.filter((p) => this.tcpUsed.has(p)).map((p) => `${p}/tcp`), ...needs.udpPorts.filter((p) => this.udpUsed.has(p)).map((p) => `${p}/udp`)];
    if (taken.length > 0) lacking.push(`host port ${taken.join(', ')}, held by another task`);
    return lacking.length > 0 ? `needs ${lacking.join('; ')}` : undefined;
  }

  /**
   * Takes what the task needs, all or nothing. Returns what it holds (the same on a repeated
   * call), or a shortfall in words.
   */
  async consume(taskId: string, needs: ResourceNeeds): Promise<{ resources: TaskResources } | { shortfall: string; retryAfterMs?: number } | { refused: string }> {
    const holding = this.held.get(taskId);
    if (holding) return { resources: holding };
    const lacking = this.shortfall(needs);
    if (lacking) return { shortfall: lacking };
    // A static port no task holds but something else on the host listens on: waiting would hold
    // up the queue behind it for as long as that program runs, so the task is refused.
    // A port a task released a moment ago can still be held by what served it (Docker's
    // docker-proxy goes after the container's exit is reported): the task waits for it a while.
    const busy: string[] = [];
    const settling: string[] = [];
    this.forgetOldReleases();
    for (const [ports, protocol] of [
      [needs.tcpPorts, 'tcp'],
      [needs.udpPorts, 'udp'],
    ] as const) {
      for (const port of ports) {
        if (await this.probe(port, protocol)) continue;
        (this.releasedAt.has(`${port}/${protocol}`) ? settling : busy).push(`${port}/${protocol}`);
      }
    }
    if (busy.length > 0) return { refused: `host port ${busy.join(', ')} is in use on the host by something other than a task` };
    if (settling.length > 0) return { shortfall: `needs host port ${settling.join(', ')}, still held since the task that had it stopped`, retryAfterMs: PORT_RETRY_MS };
    const dynamicTcp = await this.pickDynamicPorts('tcp', needs.dynamicTcpPorts);
    const dynamicUdp = await this.pickDynamicPorts('udp', needs.dynamicUdpPorts);
    if (!dynamicTcp || !dynamicUdp) return { shortfall: 'needs dynamic host ports, none free in the range' };
    // Probing was asynchronous: check again before taking anything.
    const lackingNow = this.shortfall(needs);
    if (lackingNow) return { shortfall: lackingNow };
    if (this.held.has(taskId)) return { resources: this.held.get(taskId)! };
    const gpuIds = this.capacity.gpuIds.filter((id) => !this.gpusUsed.has(id)).slice(0, needs.gpus);
    const resources: TaskResources = {
      cpuUnits: needs.cpuUnits,
      memoryMib: needs.memoryMib,
      tcpPorts: [...needs.tcpPorts, ...dynamicTcp],
      udpPorts: [...needs.udpPorts, ...dynamicUdp],
      gpuIds,
    };
    this.store?.saveReservation(taskId, resources);
    this.take(taskId, resources);
    return { resources };
  }

  /**
   * Holds again what a task held before the agent restarted, exactly (the same dynamic ports and
   * GPUs its containers were created with). Idempotent.
   */
  restore(taskId: string, resources: TaskResources): void {
    if (!this.held.has(taskId)) this.take(taskId, resources);
  }

  private take(taskId: string, resources: TaskResources): void {
    this.cpuUsed += resources.cpuUnits;
    this.memoryUsed += resources.memoryMib;
    resources.tcpPorts.forEach((p) => this.tcpUsed.add(p));
    resources.udpPorts.forEach((p) => this.udpUsed.add(p));
    resources.gpuIds.forEach((id) => this.gpusUsed.add(id));
    this.held.set(taskId, resources);
  }

  /** Gives back what the task holds; does nothing when it holds nothing. */
  release(taskId: string): void {
    const resources = this.held.get(taskId);
    if (!resources) return;
    this.store?.deleteReservation(taskId);
    this.held.delete(taskId);
    this.cpuUsed -= resources.cpuUnits;
    this.memoryUsed -= resources.memoryMib;
    resources.tcpPorts.forEach((p) => this.tcpUsed.delete(p));
    resources.udpPorts.forEach((p) => this.udpUsed.delete(p));
    const now = this.now();
    resources.tcpPorts.forEach((p) => this.releasedAt.set(`${p}/tcp`, now));
    resources.udpPorts.forEach((p) => this.releasedAt.set(`${p}/udp`, now));
    resources.gpuIds.forEach((id) => this.gpusUsed.delete(id));
  }

  private forgetOldReleases(): void {
    const now = this.now();
    for (const [port, at] of this.releasedAt) if (now - at > PORT_RELEASE_GRACE_MS) this.releasedAt.delete(port);
  }

  holding(taskId: string): TaskResources | undefined {
    return this.held.get(taskId);
  }

  /** Consumed by tasks, reserved ports included. */
  consumed(): TaskResources {
    return {
      cpuUnits: this.cpuUsed,
      memoryMib: this.memoryUsed,
      tcpPorts: [...new Set([...this.capacity.reservedTcpPorts, ...this.tcpUsed])].sort((a, b) => a - b),
      udpPorts: [...new Set([...this.capacity.reservedUdpPorts, ...this.udpUsed])].sort((a, b) => a - b),
      gpuIds: [...this.gpusUsed],
    };
  }

  free(): TaskResources & { dynamicTcpPorts: number; dynamicUdpPorts: number } {
    const { first, last } = this.capacity.dynamicPortRange;
    const inRange = (used: Set<number>, reserved: number[]) => [...new Set([...used, ...reserved])].filter((p) => p >= first && p <= last).length;
    return {
      cpuUnits: this.capacity.cpuUnits - this.cpuUsed,
      memoryMib: this.capacity.memoryMib - this.memoryUsed,
      tcpPorts: [],
      udpPorts: [],
      gpuIds: this.capacity.gpuIds.filter((id) => !this.gpusUsed.has(id)),
      dynamicTcpPorts: last - first + 1 - inRange(this.tcpUsed, this.capacity.reservedTcpPorts),
      dynamicUdpPorts: last - first + 1 - inRange(this.udpUsed, this.capacity.reservedUdpPorts),
    };
  }

  /** `count` ports of the range that no task holds, none reserved, each free on the host. */
  private async pickDynamicPorts(protocol: 'tcp' | 'udp', count: number): Promise<number[] | undefined> {
    if (count === 0) return [];
    const used = protocol === 'tcp' ? this.tcpUsed : this.udpUsed;
    const reserved = new Set(protocol === 'tcp' ? this.capacity.reservedTcpPorts : this.capacity.reservedUdpPorts);
    const picked: number[] = [];
    const { first, last } = this.capacity.dynamicPortRange;
    for (let port = first; port <= last && picked.length < count; port++) {
      if (used.has(port) || reserved.has(port)) continue;
      if (await this.probe(port, protocol)) picked.push(port);
    }
    return picked.length === count ? picked : undefined;
  }
}
