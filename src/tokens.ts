import type { ServiceIdentifier } from 'inversify';
import type { Logger } from 'pino';
import type { BerthConfig } from './config/config.js';
import type { EngineSettings } from './engine/engine-settings.js';
import type { EventLog } from './engine/events/event-log.js';
import type { StateStore } from './engine/store/state-store.js';
import type { HostResourceManager } from './engine/resources/host-resources.js';
import type { ImageManager } from './engine/images/image-manager.js';
import type { RuntimeMonitor } from './engine/runtime-monitor.js';
import type { EngineNetwork, TaskEngine } from './engine/task-engine.js';
import type { ContainerRuntime } from './runtime/container-runtime.js';
import type { AgentServer } from './server/grpc-server.js';
import type { AgentMetrics } from './metrics/agent-metrics.js';
import type { MetricsServer } from './metrics/metrics-server.js';
import type { MetadataServer } from './metadata/metadata-server.js';
import type { ClusterMember } from './cluster/agent/cluster-member.js';
import type { Membership } from './cluster/membership.js';

/** Every injection token of the composition root, in one place. */
export const TOKENS = {
  config: Symbol.for('berth.config') as ServiceIdentifier<BerthConfig>,
  logger: Symbol.for('berth.logger') as ServiceIdentifier<Logger>,
  runtime: Symbol.for('berth.runtime') as ServiceIdentifier<ContainerRuntime>,
  metrics: Symbol.for('berth.metrics') as ServiceIdentifier<AgentMetrics>,
  /** The metrics endpoint; undefined when the config serves none. */
  metricsServer: Symbol.for('berth.metricsServer') as ServiceIdentifier<MetricsServer | undefined>,
  runtimeMonitor: Symbol.for('berth.runtimeMonitor') as ServiceIdentifier<RuntimeMonitor>,
  stateStore: Symbol.for('berth.stateStore') as ServiceIdentifier<StateStore>,
  eventLog: Symbol.for('berth.eventLog') as ServiceIdentifier<EventLog>,
  engineSettings: Symbol.for('berth.engineSettings') as ServiceIdentifier<EngineSettings>,
  hostResources: Symbol.for('berth.hostResources') as ServiceIdentifier<HostResourceManager>,
  images: Symbol.for('berth.images') as ServiceIdentifier<ImageManager>,
  network: Symbol.for('berth.network') as ServiceIdentifier<EngineNetwork>,
  /** The task metadata endpoint; undefined when the config serves none. */
  metadata: Symbol.for('berth.metadata') as ServiceIdentifier<MetadataServer | undefined>,
  engine: Symbol.for('berth.engine') as ServiceIdentifier<TaskEngine>,
  server: Symbol.for('berth.server') as ServiceIdentifier<AgentServer>,
  /** The agent's standing in its fleet; undefined without `cluster` config. */
  membership: Symbol.for('berth.membership') as ServiceIdentifier<Membership | undefined>,
  /** The agent's side of the fleet; undefined without `cluster` config. */
  clusterMember: Symbol.for('berth.clusterMember') as ServiceIdentifier<ClusterMember | undefined>,
} as const;
