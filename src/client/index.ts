/**
 * berth's client for control planes (`berth/client`): connect to an agent, call every RPC with
 * typed requests and answers, follow its events exactly once across reconnects, wait for tasks.
 */
export { BerthClient, connect, type CallOptions } from './berth-client.js';
export { DEFAULT_ADDRESS, ConnectOptionsError, grpcTarget, type ConnectOptions, type TlsOptions } from './connection.js';
export {
  AlreadyExistsError,
  BerthError,
  CancelledError,
  DeadlineExceededError,
  FailedPreconditionError,
  InternalError,
  InvalidArgumentError,
  NotFoundError,
  OutOfRangeError,
  PermissionDeniedError,
  ResourceExhaustedError,
  TaskRemovedError,
  TaskStoppedError,
  TaskWaitTimeoutError,
  UnauthenticatedError,
  UnavailableError,
  toBerthError,
} from './errors.js';
export { type WatchItem, type WatchOptions } from './event-watch.js';
export { readStatusDetails, type StatusDetails } from './status-details.js';
export { type WaitOptions } from './task-waits.js';
// The messages and enums of berth.agent.v1, as the client takes and gives them.
export { Event, TaskNetworkChange, OrphanRemoved, ImagePullProgress, TaskStateChange, ContainerStateChange, TaskRemoved, EventBatch, Snapshot, Heartbeat } from '../gen/berth/agent/v1/event.js';
export { ContainerStatus, TaskStatus, HealthStatus, PortBinding, Container, Task, TaskNetwork, TaskResources } from '../gen/berth/agent/v1/task.js';
export {
  NetworkMode,
  TransportProtocol,
  DependencyCondition,
  NamespaceMode,
  VolumeScope,
  TaskDefinition,
  DockerVolumeConfiguration,
  DockerVolumeConfiguration_DriverOptsEntry,
  DockerVolumeConfiguration_LabelsEntry,
  HostVolume,
  Volume,
  VolumeFrom,
  PortMapping,
  ContainerDependency,
  RegistryCredentials,
  HealthCheck,
  RestartPolicy,
  MountPoint,
  KernelCapabilities,
  TmpfsMount,
  Device,
  LinuxParameters,
  SystemControl,
  Ulimit,
  HostEntry,
  ContainerDefinition,
  ContainerDefinition_EnvironmentEntry,
  ContainerDefinition_LabelsEntry,
  LogConfiguration,
  LogConfiguration_OptionsEntry,
  Secret,
} from '../gen/berth/agent/v1/task_definition.js';
export {
  LogStream,
  LogsRequest,
  LogLine,
  LogsResponse,
  StatsRequest,
  ContainerStats,
  StatsResponse,
  ExecRequest,
  ExecResponse,
  RunTaskRequest,
  RunTaskResponse,
  StopTaskRequest,
  StopTaskResponse,
  GetTaskRequest,
  GetTaskResponse,
  ListTasksRequest,
  ListTasksResponse,
  WatchEventsRequest,
  WatchEventsResponse,
  GetAgentInfoRequest,
  RuntimeInfo,
  HostResources,
  GetAgentInfoResponse,
  TaskServiceClient,
  type DeepPartial,
} from '../gen/berth/agent/v1/task_service.js';
export { RemoteExecSession, RemoteForward, type ExecSessionOptions } from './sessions.js';
export {
  TerminalSize,
  CloseStdin,
  CloseWrite,
  ExecSessionStart,
  ExecSessionRequest,
  ExecSessionStarted,
  ExecSessionExit,
  ExecSessionResponse,
  PortForwardStart,
  PortForwardRequest,
  PortForwardConnected,
  PortForwardResponse,
} from '../gen/berth/agent/v1/session.js';
