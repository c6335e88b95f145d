import type { FieldViolation } from '../errors.js';
import type { ContainerDefinition, MountPoint, Volume, VolumeFrom } from '../model/task-definition.js';
import { byteLength, mapBytes } from './request-limits.js';

/** A task volume as received (see Volume). */
export interface VolumeInput {
  name: string;
  host?: { sourcePath?: string };
  dockerVolumeConfiguration?: { scope?: string; autoprovision?: boolean; driver?: string; driverOpts?: Record<string, string>; labels?: Record<string, string> };
}

export interface MountInput {
  hostPath?: string;
  containerPath: string;
  readOnly?: boolean;
  sourceVolume?: string;
}

/** Fixed bounds: volumes of a task, volumes_from of a container, entries of a driver's options or labels and their size. */
export const VOLUME_LIMITS = { volumes: 100, volumesFrom: 64, mapEntries: 100, mapBytes: 64 * 1024 };
/** Volume names as Docker takes them (and as they are safe as a directory name). */
const VOLUME_NAME = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,254}$/;
const DRIVER = /^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,254}$/;
/** The names of task volumes in the runtime begin with this (see taskVolumeName). */
const RESERVED_VOLUME_PREFIX = 'berth-';
/** Label keys berth writes itself. */
const RESERVED_LABEL_PREFIX = 'berth.';

const quote = (value: string) => JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}…` : value);
const hasNul = (value: string) => value.includes('\0');

/** The first pass: counts and sizes, before any content is read. */
export function checkVolumeSizes(volumes: VolumeInput[] | undefined, stringBytes: number): FieldViolation[] {
  const v: FieldViolation[] = [];
  if ((volumes?.length ?? 0) > VOLUME_LIMITS.volumes) return [{ field: 'task.volumes', description: `must have at most ${VOLUME_LIMITS.volumes} volumes` }];
  (volumes ?? []).forEach((volume, i) => {
    const at = (field: string) => `task.volumes[${i}].${field}`;
    if (byteLength(volume.name) > 255) v.push({ field: at('name'), description: 'must be at most 255 bytes' });
    if (byteLength(volume.host?.sourcePath ?? '') > stringBytes) v.push({ field: at('host.source_path'), description: `must be at most ${stringBytes} bytes (limit limits.stringBytes)` });
    const config = volume.dockerVolumeConfiguration;
    if (byteLength(config?.driver ?? '') > 255) v.push({ field: at('docker_volume_configuration.driver'), description: 'must be at most 255 bytes' });
    for (const key of ['driverOpts', 'labels'] as const) {
      const map = config?.[key] ?? {};
      const field = at(`docker_volume_configuration.${key === 'driverOpts' ? 'driver_opts' : 'labels'}`);
      let entries = 0;
      for (const _ in map) if (++entries > VOLUME_LIMITS.mapEntries) break;
      if (entries > VOLUME_LIMITS.mapEntries) v.push({ field, description: `must have at most ${VOLUME_LIMITS.mapEntries} entries` });
      else if (mapBytes(map) > VOLUME_LIMITS.mapBytes) v.push({ field, description: `must total at most ${VOLUME_LIMITS.mapBytes} bytes` });
    }
  });
  return v;
}

/** Validates the task's volumes: names unique, one kind each, a driver's name and options. */
export function validateVolumes(input: VolumeInput[] | undefined, v: FieldViolation[]): Volume[] {
  const names = new Set<string>();
  return (input ?? []).map((volume, i) => {
    const at = (field: string) => `task.volumes[${i}].${field}`;
    if (!VOLUME_NAME.test(volume.name)) v.push({ field: at('name'), description: `must match ${VOLUME_NAME.source} (got ${quote(volume.name)})` });
    else if (names.has(volume.name)) v.push({ field: at('name'), description: `${quote(volume.name)} is defined twice` });
    names.add(volume.name);
    const config = volume.dockerVolumeConfiguration;
    const sourcePath = volume.host?.sourcePath ?? '';
    if (sourcePath !== '') {
      if (config) v.push({ field: at('docker_volume_configuration'), description: 'a volume is either a host path or a runtime volume, not both' });
      if (!sourcePath.startsWith('/') || hasNul(sourcePath)) v.push({ field: at('host.source_path'), description: `must be an absolute path (got ${quote(sourcePath)})` });
      return { name: volume.name, hostPath: sourcePath, scope: 'task', autoprovision: false, driver: 'local', driverOptions: {}, labels: {} };
    }
    const scopeName = (config?.scope ?? 'UNSPECIFIED').toUpperCase();
    const scope = scopeName === 'SHARED' ? 'shared' : scopeName === 'TASK' || scopeName === 'UNSPECIFIED' ? 'task' : undefined;
    if (!scope) v.push({ field: at('docker_volume_configuration.scope'), description: `must be TASK or SHARED (got ${quote(config?.scope ?? '')})` });
    // A shared volume is the runtime's volume of that name: it must not be able to name another task's volume.
    if (scope === 'shared' && volume.name.startsWith(RESERVED_VOLUME_PREFIX)) {
      v.push({ field: at('name'), description: `shared volume names starting with "${RESERVED_VOLUME_PREFIX}" are reserved for task volumes (got ${quote(volume.name)})` });
    }
    if (config?.autoprovision && scope !== 'shared') v.push({ field: at('docker_volume_configuration.autoprovision'), description: 'applies to SHARED volumes only' });
    const driver = config?.driver || 'local';
    if (!DRIVER.test(driver)) v.push({ field: at('docker_volume_configuration.driver'), description: `must match ${DRIVER.source} (got ${quote(driver)})` });
    for (const [key, value] of Object.entries(config?.driverOpts ?? {})) {
      if (key === '' || hasNul(key) || hasNul(value)) v.push({ field: at('docker_volume_configuration.driver_opts'), description: `invalid option ${quote(key)}` });
    }
    for (const [key, value] of Object.entries(config?.labels ?? {})) {
      if (key === '' || hasNul(key) || hasNul(value)) v.push({ field: at('docker_volume_configuration.labels'), description: `invalid label ${quote(key)}` });
      else if (key.startsWith(RESERVED_LABEL_PREFIX))
        v.push({ field: at('docker_volume_configuration.labels'), description: `label keys starting with "${RESERVED_LABEL_PREFIX}" are reserved (got ${quote(key)})` });
    }
    return { name: volume.name, scope: scope ?? 'task', autoprovision: config?.autoprovision ?? false, driver, driverOptions: { ...config?.driverOpts }, labels: { ...config?.labels } };
  });
}

/**
 * Validates a container's mount points against the task's volumes; `takenPaths` collects the
 * container paths (a path mounted twice is refused).
 */
export function validateMountPoints(input: MountInput[] | undefined, volumes: Volume[], at: (field: string) => string, takenPaths: Set<string>, v: FieldViolation[]): MountPoint[] {
  return (input ?? []).map((m, j) => {
    const mat = (field: string) => at(`mount_points[${j}].${field}`);
    const hostPath = m.hostPath ?? '';
    const sourceVolume = m.sourceVolume ?? '';
    if ((hostPath === '') === (sourceVolume === '')) {
      v.push({ field: at(`mount_points[${j}]`), description: 'needs exactly one of source_volume and host_path' });
    } else if (hostPath !== '' && (!hostPath.startsWith('/') || hasNul(hostPath))) {
      v.push({ field: mat('host_path'), description: `must be an absolute path (got ${quote(hostPath)})` });
    } else if (sourceVolume !== '' && !volumes.some((volume) => volume.name === sourceVolume)) {
      v.push({ field: mat('source_volume'), description: `names no volume of the task (got ${quote(sourceVolume)})` });
    }
    if (!m.containerPath.startsWith('/') || m.containerPath === '/' || hasNul(m.containerPath)) {
      v.push({ field: mat('container_path'), description: `must be an absolute path other than / (got ${quote(m.containerPath)})` });
    } else if (takenPaths.has(m.containerPath)) {
      v.push({ field: mat('container_path'), description: `${quote(m.containerPath)} is mounted twice` });
    }
    takenPaths.add(m.containerPath);
    return { hostPath, containerPath: m.containerPath, readOnly: m.readOnly ?? false, ...(sourceVolume ? { sourceVolume } : {}) };
  });
}

/** Validates volumes_from: sources are other containers of the task, and no chain comes back to where it began. */
export function validateVolumesFrom(containers: ContainerDefinition[], v: FieldViolation[]): void {
  const byName = new Map(containers.map((c) => [c.name, c]));
  containers.forEach((c, i) => {
    (c.volumesFrom ?? []).forEach((from, j) => {
      const field = `task.containers[${i}].volumes_from[${j}].source_container`;
      if (from.sourceContainer === c.name) v.push({ field, description: 'a container cannot take the volumes of itself' });
      else if (!byName.has(from.sourceContainer)) v.push({ field, description: `names no container of the task (got ${quote(from.sourceContainer)})` });
    });
  });
  // A cycle through volumes_from would have no first container to take mounts from.
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (name: string, trail: string[]): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...trail.slice(trail.indexOf(name)), name];
    state.set(name, 'visiting');
    for (const from of byName.get(name)?.volumesFrom ?? []) {
      if (!byName.has(from.sourceContainer) || from.sourceContainer === name) continue;
      const cycle = visit(from.sourceContainer, [...trail, name]);
      if (cycle) return cycle;
    }
    state.set(name, 'done');
    return undefined;
  };
  for (const [i, c] of containers.entries()) {
    const cycle = visit(c.name, []);
    if (cycle) {
      v.push({ field: `task.containers[${i}].volumes_from`, description: `volumes_from goes round in a circle: ${cycle.join(' → ')}` });
      return;
    }
  }
}

/** A container's volumes_from, as received, checked for form only. */
export function volumesFromInput(input: { sourceContainer: string; readOnly?: boolean }[] | undefined): VolumeFrom[] | undefined {
  return input && input.length > 0 ? input.map((f) => ({ sourceContainer: f.sourceContainer, readOnly: f.readOnly ?? false })) : undefined;
}
