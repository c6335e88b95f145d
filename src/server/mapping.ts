/**
 * Conversions between the berth.agent.v1 protobuf messages and the engine's domain types. The
 * only place where both meet.
 */
import type { EngineEvent } from '../engine/events/events.js';
import { containerOptionsInput, pbContainerOptions } from './container-options-mapping.js';
import type { ContainerStatus, HealthStatus, TaskStatus as DomainTaskStatus } from '../engine/model/status.js';
import type { NetworkMode as DomainNetworkMode, TaskDefinition as DomainTaskDefinition } from '../engine/model/task-definition.js';
import type { ContainerSnapshot, TaskNetworkStatus, TaskSnapshot } from '../engine/model/task-snapshot.js';
import type { TaskDefinitionInput } from '../engine/admission/task-validation.js';
import type { Event } from '../gen/berth/agent/v1/event.js';
import { ContainerStatus as PbContainerStatus, HealthStatus as PbHealthStatus, TaskStatus as PbTaskStatus, type Container, type Task, type TaskNetwork } from '../gen/berth/agent/v1/task.js';
import {
  DependencyCondition,
  NetworkMode,
  TransportProtocol,
  dependencyConditionToJSON,
  networkModeToJSON,
  transportProtocolToJSON,
  volumeScopeToJSON,
  VolumeScope,
  namespaceModeToJSON,
  NamespaceMode,
  TaskDefinition as PbTaskDefinition,
  type TaskDefinition,
} from '../gen/berth/agent/v1/task_definition.js';
import type { Duration } from '../gen/google/protobuf/duration.js';
import { LogStream as PbLogStream, type ContainerStats as PbContainerStats, type LogLine as PbLogLine } from '../gen/berth/agent/v1/task_service.js';
import type { ContainerStats, LogLine, LogStream } from '../engine/container-access.js';

const stripPrefix = (name: string, prefix: string) => name.replace(prefix, '');

export function durationToMs(duration: Duration | undefined): number | undefined {
  if (!duration) return undefined;
  return duration.seconds * 1000 + Math.round(duration.nanos / 1e6);
}

function msToDuration(ms: number | undefined): Duration | undefined {
  if (ms === undefined) return undefined;
  return { seconds: Math.floor(ms / 1000), nanos: (ms % 1000) * 1e6 };
}

/** The request's definition, unvalidated, in the engine's input shape. */
export function taskDefinitionInput(task: TaskDefinition | undefined): TaskDefinitionInput {
  const t = task ?? PbTaskDefinition.fromPartial({});
  return {
    clientForm: PbTaskDefinition.toJSON({ ...t, containers: t.containers.map((c) => ({ ...c, registryCredentials: undefined })) }) as Record<string, unknown>,
    id: t.id,
    family: t.family,
    revision: t.revision,
    networkMode: stripPrefix(networkModeToJSON(t.networkMode), 'NETWORK_MODE_'),
    containers: t.containers.map((c) => ({
      name: c.name,
      image: c.image,
      command: c.command,
      entrypoint: c.entrypoint,
      environment: c.environment,
      workingDirectory: c.workingDirectory,
      user: c.user,
      cpuUnits: c.cpuUnits,
      memoryMib: c.memoryMib,
      memoryReservationMib: c.memoryReservationMib,
      portMappings: c.portMappings.map((p) => ({
        containerPort: p.containerPort,
        hostPort: p.hostPort,
        protocol: stripPrefix(transportProtocolToJSON(p.protocol), 'TRANSPORT_PROTOCOL_'),
        hostIp: p.hostIp,
        containerPortRange: p.containerPortRange,
      })),
      essential: c.essential,
      dependsOn: c.dependsOn.map((d) => ({ containerName: d.containerName, condition: stripPrefix(dependencyConditionToJSON(d.condition), 'DEPENDENCY_CONDITION_') })),
      stopTimeoutMs: durationToMs(c.stopTimeout),
      labels: c.labels,
      registryCredentials: c.registryCredentials,
      registryCredentialsParameter: c.registryCredentialsParameter,
      healthCheck: c.healthCheck && {
        command: c.healthCheck.command,
        intervalMs: durationToMs(c.healthCheck.interval),
        timeoutMs: durationToMs(c.healthCheck.timeout),
        retries: c.healthCheck.retries,
        startPeriodMs: durationToMs(c.healthCheck.startPeriod),
      },
      restartPolicy: c.restartPolicy && {
        enabled: c.restartPolicy.enabled,
        ignoredExitCodes: c.restartPolicy.ignoredExitCodes,
        restartAttemptPeriodMs: durationToMs(c.restartPolicy.restartAttemptPeriod),
      },
      gpuCount: c.gpuCount,
      startTimeoutMs: durationToMs(c.startTimeout),
      pidsLimit: c.pidsLimit,
      mountPoints: c.mountPoints.map((m) => ({ hostPath: m.hostPath, containerPath: m.containerPath, readOnly: m.readOnly, sourceVolume: m.sourceVolume })),
      volumesFrom: c.volumesFrom.map((f) => ({ sourceContainer: f.sourceContainer, readOnly: f.readOnly })),
      privileged: c.privileged,
      ...containerOptionsInput(c),
    })),
    cpuUnits: t.cpuUnits,
    memoryMib: t.memoryMib,
    pidMode: stripPrefix(namespaceModeToJSON(t.pidMode), 'NAMESPACE_MODE_'),
    ipcMode: stripPrefix(namespaceModeToJSON(t.ipcMode), 'NAMESPACE_MODE_'),
    volumes: t.volumes.map((v) => ({
      name: v.name,
      host: v.host && { sourcePath: v.host.sourcePath },
      dockerVolumeConfiguration: v.dockerVolumeConfiguration && {
        scope: stripPrefix(volumeScopeToJSON(v.dockerVolumeConfiguration.scope), 'VOLUME_SCOPE_'),
        autoprovision: v.dockerVolumeConfiguration.autoprovision,
        driver: v.dockerVolumeConfiguration.driver,
        driverOpts: v.dockerVolumeConfiguration.driverOpts,
        labels: v.dockerVolumeConfiguration.labels,
      },
    })),
  };
}

const NAMESPACE_MODE = { task: NamespaceMode.NAMESPACE_MODE_TASK, host: NamespaceMode.NAMESPACE_MODE_HOST, none: NamespaceMode.NAMESPACE_MODE_NONE } as const;

const NETWORK_MODE: Record<DomainNetworkMode, NetworkMode> = {
  none: NetworkMode.NETWORK_MODE_NONE,
  host: NetworkMode.NETWORK_MODE_HOST,
  bridge: NetworkMode.NETWORK_MODE_BRIDGE,
  task: NetworkMode.NETWORK_MODE_TASK,
};

const CONDITION = {
  START: DependencyCondition.DEPENDENCY_CONDITION_START,
  COMPLETE: DependencyCondition.DEPENDENCY_CONDITION_COMPLETE,
  SUCCESS: DependencyCondition.DEPENDENCY_CONDITION_SUCCESS,
  HEALTHY: DependencyCondition.DEPENDENCY_CONDITION_HEALTHY,
} as const;

const PROTOCOL = { tcp: TransportProtocol.TRANSPORT_PROTOCOL_TCP, udp: TransportProtocol.TRANSPORT_PROTOCOL_UDP } as const;

/**
 * The definition as the client will read it back: as it sent it (credentials aside), or, for a
 * definition saved before the client's form was kept, the validated one with defaults applied.
 */
export function toPbDefinition(d: DomainTaskDefinition): TaskDefinition {
  if (d.clientForm) return PbTaskDefinition.fromJSON(d.clientForm);
  return {
    id: d.id,
    family: d.family,
    revision: d.revision,
    networkMode: NETWORK_MODE[d.networkMode],
    containers: d.containers.map((c) => ({
      name: c.name,
      image: c.image,
      command: c.command,
      entrypoint: c.entrypoint,
      environment: c.environment,
      workingDirectory: c.workingDirectory,
      user: c.user,
      cpuUnits: c.cpuUnits,
      memoryMib: c.memoryMib,
      memoryReservationMib: c.memoryReservationMib,
      portMappings: c.portMappings.map((p) => ({ containerPort: p.containerPort, hostPort: p.hostPort, protocol: PROTOCOL[p.protocol], hostIp: p.hostIp, containerPortRange: '' })),
      essential: c.essential,
      dependsOn: c.dependsOn.map((dep) => ({ containerName: dep.containerName, condition: CONDITION[dep.condition] })),
      stopTimeout: msToDuration(c.stopTimeoutMs),
      labels: c.labels,
      // Credentials are never echoed back.
      registryCredentials: undefined,
      registryCredentialsParameter: c.registryCredentialsParameter ?? '',
      healthCheck: c.healthCheck && {
        command: c.healthCheck.command,
        interval: msToDuration(c.healthCheck.intervalMs),
        timeout: msToDuration(c.healthCheck.timeoutMs),
        retries: c.healthCheck.retries,
        startPeriod: msToDuration(c.healthCheck.startPeriodMs),
      },
      restartPolicy: c.restartPolicy && {
        enabled: c.restartPolicy.enabled,
        ignoredExitCodes: c.restartPolicy.ignoredExitCodes,
        restartAttemptPeriod: msToDuration(c.restartPolicy.restartAttemptPeriodMs),
      },
      gpuCount: c.gpuCount,
      startTimeout: msToDuration(c.startTimeoutMs),
      pidsLimit: c.pidsLimit,
      mountPoints: (c.mountPoints ?? []).map((m) => ({ ...m, sourceVolume: m.sourceVolume ?? '' })),
      privileged: c.privileged ?? false,
      ...pbContainerOptions(c),
      volumesFrom: (c.volumesFrom ?? []).map((f) => ({ ...f })),
    })),
    cpuUnits: d.cpuUnits,
    memoryMib: d.memoryMib,
    pidMode: d.pidMode ? NAMESPACE_MODE[d.pidMode] : NamespaceMode.NAMESPACE_MODE_UNSPECIFIED,
    ipcMode: d.ipcMode ? NAMESPACE_MODE[d.ipcMode] : NamespaceMode.NAMESPACE_MODE_UNSPECIFIED,
    volumes: (d.volumes ?? []).map((v) => ({
      name: v.name,
      host: v.hostPath ? { sourcePath: v.hostPath } : undefined,
      dockerVolumeConfiguration: v.hostPath
        ? undefined
        : {
            scope: v.scope === 'shared' ? VolumeScope.VOLUME_SCOPE_SHARED : VolumeScope.VOLUME_SCOPE_TASK,
            autoprovision: v.autoprovision,
            driver: v.driver,
            driverOpts: { ...v.driverOptions },
            labels: { ...v.labels },
          },
    })),
  };
}

export const CONTAINER_STATUS: Record<ContainerStatus, PbContainerStatus> = {
  NONE: PbContainerStatus.CONTAINER_STATUS_NONE,
  PULLED: PbContainerStatus.CONTAINER_STATUS_PULLED,
  CREATED: PbContainerStatus.CONTAINER_STATUS_CREATED,
  RUNNING: PbContainerStatus.CONTAINER_STATUS_RUNNING,
  STOPPED: PbContainerStatus.CONTAINER_STATUS_STOPPED,
};

export const TASK_STATUS: Record<DomainTaskStatus, PbTaskStatus> = {
  NONE: PbTaskStatus.TASK_STATUS_NONE,
  PULLED: PbTaskStatus.TASK_STATUS_PULLED,
  CREATED: PbTaskStatus.TASK_STATUS_CREATED,
  RUNNING: PbTaskStatus.TASK_STATUS_RUNNING,
  STOPPED: PbTaskStatus.TASK_STATUS_STOPPED,
};

/** The domain status for a protobuf one; undefined for UNSPECIFIED or unknown values. */
export function fromPbTaskStatus(status: PbTaskStatus): DomainTaskStatus | undefined {
  return (Object.keys(TASK_STATUS) as DomainTaskStatus[]).find((key) => TASK_STATUS[key] === status);
}

const HEALTH: Record<HealthStatus, PbHealthStatus> = {
  NONE: PbHealthStatus.HEALTH_STATUS_UNSPECIFIED,
  UNKNOWN: PbHealthStatus.HEALTH_STATUS_UNKNOWN,
  HEALTHY: PbHealthStatus.HEALTH_STATUS_HEALTHY,
  UNHEALTHY: PbHealthStatus.HEALTH_STATUS_UNHEALTHY,
};

export function toPbContainer(c: ContainerSnapshot): Container {
  return {
    name: c.name,
    knownStatus: CONTAINER_STATUS[c.knownStatus],
    desiredStatus: CONTAINER_STATUS[c.desiredStatus],
    runtimeId: c.runtimeId ?? '',
    runtimeName: c.runtimeName,
    exitCode: c.exitCode,
    reason: c.reason,
    portBindings: c.portBindings.map((b) => ({ containerPort: b.containerPort, hostPort: b.hostPort, protocol: PROTOCOL[b.protocol], hostIp: b.hostIp })),
    healthStatus: HEALTH[c.healthStatus],
    healthOutput: c.healthOutput,
    healthCheckedAt: c.healthCheckedAt,
    restartCount: c.restartCount,
    lastRestartedAt: c.lastRestartedAt,
    lastExitCode: c.lastExitCode,
    gpuIds: c.gpuIds,
    pulledAt: c.pulledAt,
    createdAt: c.createdAt,
    startedAt: c.startedAt,
    finishedAt: c.finishedAt,
    essential: c.essential,
  };
}

/** A task as a Task message without its definition: the fields that change while it lives. */
export function toPbTaskStatus(t: TaskSnapshot): Task {
  return {
    definition: undefined,
    knownStatus: TASK_STATUS[t.knownStatus],
    desiredStatus: TASK_STATUS[t.desiredStatus],
    reason: t.reason,
    containers: t.containers.map(toPbContainer),
    lastSequence: t.lastSequence,
    createdAt: t.createdAt,
    startedAt: t.startedAt,
    stoppedAt: t.stoppedAt,
    resources: t.resources && { ...t.resources },
    network: t.network && toPbNetwork(t.network),
  };
}

function toPbNetwork(n: TaskNetworkStatus): TaskNetwork {
  return { networkName: n.network, interfaceName: n.ifName, ipAddresses: n.ipAddresses, gateways: n.gateways };
}

export function toPbEvent(e: EngineEvent): Event {
  const base = { sequence: e.sequence, time: e.time, taskId: e.taskId };
  switch (e.change.type) {
    case 'task':
      return {
        ...base,
        change: {
          $case: 'task',
          value: { knownStatus: TASK_STATUS[e.change.knownStatus], desiredStatus: TASK_STATUS[e.change.desiredStatus], reason: e.change.reason },
        },
      };
    case 'container':
      return { ...base, change: { $case: 'container', value: { container: toPbContainer(e.change.container) } } };
    case 'removed':
      return { ...base, change: { $case: 'removed', value: {} } };
    case 'pull':
      return {
        ...base,
        change: { $case: 'pull', value: { containerName: e.change.containerName, image: e.change.image, bytesDone: e.change.bytesDone, bytesTotal: e.change.bytesTotal } },
      };
    case 'network':
      return { ...base, change: { $case: 'network', value: { network: e.change.network && toPbNetwork(e.change.network) } } };
    case 'orphan-removed':
      return {
        ...base,
        change: { $case: 'orphanRemoved', value: { runtimeId: e.change.runtimeId, runtimeName: e.change.runtimeName, containerName: e.change.containerName } },
      };
  }
}

const LOG_STREAMS: Record<LogStream, PbLogStream> = { stdout: PbLogStream.LOG_STREAM_STDOUT, stderr: PbLogStream.LOG_STREAM_STDERR };

/** The streams a LogsRequest asks for; undefined (both) when it names none. */
export function fromPbLogStreams(streams: PbLogStream[]): LogStream[] | undefined {
  const chosen = (Object.keys(LOG_STREAMS) as LogStream[]).filter((s) => streams.includes(LOG_STREAMS[s]));
  return chosen.length > 0 ? chosen : undefined;
}

export function toPbLogLine(line: LogLine): PbLogLine {
  return { time: line.time, stream: LOG_STREAMS[line.stream], text: line.text, partial: line.partial };
}

export function toPbContainerStats(stats: ContainerStats): PbContainerStats {
  return {
    containerName: stats.containerName,
    cpuPercent: stats.cpuPercent,
    cpuUsageNanos: stats.cpuUsageNanos,
    memoryUsageBytes: stats.memoryUsageBytes,
    memoryLimitBytes: stats.memoryLimitBytes,
    networkRxBytes: stats.network.rxBytes,
    networkTxBytes: stats.network.txBytes,
    networkRxPackets: stats.network.rxPackets,
    networkTxPackets: stats.network.txPackets,
    pids: stats.pids,
  };
}
