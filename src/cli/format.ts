import { ContainerStatus, HealthStatus, TaskStatus, type Container, type PortBinding, type Task } from '../gen/berth/agent/v1/task.js';
import { TransportProtocol } from '../gen/berth/agent/v1/task_definition.js';

/** Columns padded to their widest cell; the last column is not padded. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('   ')
      .trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

export function taskStatusName(value: TaskStatus): string {
  return TaskStatus[value]?.replace('TASK_STATUS_', '') ?? 'UNKNOWN';
}

export function containerStatusName(value: ContainerStatus): string {
  return ContainerStatus[value]?.replace('CONTAINER_STATUS_', '') ?? 'UNKNOWN';
}

export function healthName(value: HealthStatus): string {
  return value === HealthStatus.HEALTH_STATUS_UNSPECIFIED ? '' : (HealthStatus[value]?.replace('HEALTH_STATUS_', '').toLowerCase() ?? '');
}

/** "RUNNING", or "RUNNING → STOPPED" while the task moves to a desired status it has not reached. */
export function statusWithDesired(known: string, desired: string): string {
  return known === desired || desired === 'UNSPECIFIED' ? known : `${known} → ${desired}`;
}

export function bytes(value: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let n = value;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit++;
  }
  return unit === 0 ? `${n} B` : `${n.toFixed(n < 10 ? 2 : 1)} ${units[unit]}`;
}

/** "5s", "3m", "2h", "4d": how long ago. */
export function age(time: Date | undefined, now = Date.now()): string {
  if (!time) return '';
  const seconds = Math.max(0, Math.round((now - time.getTime()) / 1000));
  if (seconds < 60) return `${seconds}s`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)}m`;
  if (seconds < 86400) return `${Math.floor(seconds / 3600)}h`;
  return `${Math.floor(seconds / 86400)}d`;
}

export function ports(bindings: PortBinding[]): string {
  return bindings
    .map((b) => `${b.hostIp && b.hostIp !== '0.0.0.0' ? `${b.hostIp}:` : ''}${b.hostPort}->${b.containerPort}/${b.protocol === TransportProtocol.TRANSPORT_PROTOCOL_UDP ? 'udp' : 'tcp'}`)
    .join(', ');
}

/** "2/3": containers running of all. */
export function runningCount(task: Task): string {
  return `${task.containers.filter((c) => c.knownStatus === ContainerStatus.CONTAINER_STATUS_RUNNING).length}/${task.containers.length}`;
}

/** A container's state in a few words: "RUNNING (healthy)", "STOPPED (exit 1)". */
export function containerState(c: Container): string {
  const status = containerStatusName(c.knownStatus);
  const notes: string[] = [];
  const health = healthName(c.healthStatus);
  if (health) notes.push(health);
  if (c.knownStatus === ContainerStatus.CONTAINER_STATUS_STOPPED && c.exitCode !== undefined) notes.push(`exit ${c.exitCode}`);
  if (c.restartCount > 0) notes.push(`${c.restartCount} restart${c.restartCount === 1 ? '' : 's'}`);
  return notes.length > 0 ? `${status} (${notes.join(', ')})` : status;
}

/** `[########------------]  12.3 MiB / 40.0 MiB  3.10 MiB/s` */
export function progressBar(done: number, total: number, bytesPerSecond: number, width = 24): string {
  const fraction = total > 0 ? Math.min(1, done / total) : 0;
  const filled = Math.round(fraction * width);
  const speed = bytesPerSecond > 0 ? `  ${bytes(Math.round(bytesPerSecond))}/s` : '';
  return `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${total > 0 ? `${bytes(done)} / ${bytes(total)}` : bytes(done)}${speed}`;
}
