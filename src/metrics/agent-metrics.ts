import type { Logger } from 'pino';
import type { Membership } from '../cluster/membership.js';
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EventLog } from '../engine/events/event-log.js';
import type { StateStore } from '../engine/store/state-store.js';
import { STATUSES } from '../engine/model/status.js';
import type { TaskEngine } from '../engine/task-engine.js';
import { internalErrorCounts } from '../internal-errors.js';
import { droppedLogLines, LOG_BUFFER_MAX_BYTES } from '../log-output.js';
import type { EventDeliveryObserver } from '../server/watch-events.js';
import type { RuntimeCallObserver } from './instrumented-runtime.js';

/** Seconds; from a fast local start to a slow pull. */
const LAUNCH_BUCKETS = [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 900];
const CALL_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];
/** Seconds; event delivery is counted in milliseconds (the times it measures are in whole ms). */
const DELIVERY_BUCKETS = [0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];
/** Seconds; an fsync of the state store's log, from a fast disk's fraction of a millisecond to a stalled one. */
const FSYNC_BUCKETS = [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/**
 * berth's Prometheus metrics, in a registry of their own. Counters and histograms are fed as
 * things happen (runtime calls through InstrumentedRuntime, task launches from the event log);
 * gauges are read from the engine when scraped, so they are never stale.
 */
export class AgentMetrics implements RuntimeCallObserver, EventDeliveryObserver {
  readonly registry = new Registry();
  private readonly launch: Histogram;
  private readonly callDuration: Histogram;
  private readonly callErrors: Counter;
  private readonly pullDuration: Histogram;
  private readonly pullBytes: Counter;
  private readonly watchers: Gauge;
  private readonly delivery: Histogram;
  private readonly fsync: Histogram;
  private readonly observeFsync = (seconds: number) => this.fsync.observe(seconds);
  private readonly checkpoint: Histogram;
  private readonly observeCheckpoint = (seconds: number) => this.checkpoint.observe(seconds);
  private store: StateStore | undefined;
  private readonly following = new AbortController();
  private engine: TaskEngine | undefined;
  private events: EventLog | undefined;
  private membership: Membership | undefined;

  constructor(private readonly log: Logger) {
    const registers = [this.registry];
    collectDefaultMetrics({ register: this.registry, prefix: 'berth_' });
    this.launch = new Histogram({ name: 'berth_task_launch_seconds', help: 'Time from RunTask to the task being RUNNING.', buckets: LAUNCH_BUCKETS, registers });
    this.callDuration = new Histogram({
      name: 'berth_runtime_call_duration_seconds',
      help: 'Duration of container runtime calls, by operation.',
      labelNames: ['operation'],
      buckets: CALL_BUCKETS,
      registers,
    });
    this.callErrors = new Counter({ name: 'berth_runtime_call_errors_total', help: 'Failed container runtime calls, by operation and error kind.', labelNames: ['operation', 'kind'], registers });
    this.pullDuration = new Histogram({ name: 'berth_image_pull_duration_seconds', help: 'Duration of image pulls, by result.', labelNames: ['result'], buckets: LAUNCH_BUCKETS, registers });
    this.delivery = new Histogram({
      name: 'berth_event_delivery_seconds',
      help: 'Time from an event being committed to its being written to a WatchEvents stream, per stream.',
      buckets: DELIVERY_BUCKETS,
      registers,
    });
    this.fsync = new Histogram({
      name: 'berth_state_store_fsync_seconds',
      help: "Duration of the fsyncs that put the state store's commits on the disk (answers and events wait for them), a thread of Node's pool waited for included.",
      buckets: FSYNC_BUCKETS,
      registers,
    });
    this.checkpoint = new Histogram({
      name: 'berth_state_store_checkpoint_seconds',
      help: "Duration of the checkpoints that copy the state store's write-ahead log into its database, in a worker thread (nothing waits for them).",
      buckets: FSYNC_BUCKETS,
      registers,
    });
    this.pullBytes = new Counter({ name: 'berth_image_pull_bytes_total', help: 'Bytes downloaded by image pulls.', registers });
    new Counter({
      name: 'berth_internal_errors_total',
      help: 'Unexpected errors the agent survived (uncaught exceptions, unhandled rejections, INTERNAL answers), by source.',
      labelNames: ['source'],
      registers,
      collect() {
        this.reset();
        for (const source of ['uncaught-exception', 'unhandled-rejection', 'request'] as const) this.inc({ source }, internalErrorCounts().get(source) ?? 0);
      },
    });
    new Counter({
      name: 'berth_log_lines_dropped_total',
      help: `Log lines dropped because the standard output was not read in time (more than ${LOG_BUFFER_MAX_BYTES / 1024 / 1024} MiB of lines waiting).`,
      registers,
      collect() {
        this.reset();
        this.inc(droppedLogLines());
      },
    });
    const metrics = this;
    new Gauge({
      name: 'berth_tasks',
      help: 'Tasks the agent has, by known status.',
      labelNames: ['status'],
      registers,
      collect() {
        const counts = new Map<string, number>(STATUSES.map((s) => [s, 0]));
        for (const t of metrics.engine?.listTasks() ?? []) counts.set(t.knownStatus, (counts.get(t.knownStatus) ?? 0) + 1);
        for (const [status, count] of counts) this.set({ status }, count);
      },
    });
    const fromInfo = (name: string, help: string, read: (info: ReturnType<TaskEngine['agentInfo']>) => number) =>
      new Gauge({
        name,
        help,
        registers,
        collect() {
          if (metrics.engine) this.set(read(metrics.engine.agentInfo()));
        },
      });
    new Gauge({
      name: 'berth_runtime_sync_last_duration_seconds',
      help: 'Duration of the last synchronization with the runtime (a full relist of the agent’s containers).',
      registers,
      collect() {
        if (metrics.engine) this.set(metrics.engine.syncStats.lastDurationMs / 1000);
      },
    });
    new Counter({
      name: 'berth_runtime_syncs_total',
      help: 'Synchronizations with the runtime completed (after each subscription to its events, and at each relist).',
      registers,
      collect() {
        this.reset();
        if (metrics.engine) this.inc(metrics.engine.syncStats.count);
      },
    });
    new Gauge({
      name: 'berth_cluster_connected',
      help: '1 while the agent reaches its etcd cluster (lease kept alive, assignments watched, reports written), 0 while it does not (and always 0 without cluster config).',
      registers,
      collect() {
        if (metrics.membership) this.set(metrics.membership.connected ? 1 : 0);
      },
    });
    new Gauge({
      name: 'berth_cluster_applied_revision',
      help: 'The etcd revision of the last assignment change the agent applied.',
      registers,
      collect() {
        if (metrics.membership) this.set(metrics.membership.appliedRevision);
      },
    });
    fromInfo('berth_event_sequence', 'Sequence of the newest event.', (i) => i.latestSequence);
    fromInfo('berth_resource_queue_length', 'Tasks waiting for host resources.', (i) => i.queuedTaskIds.length);
    fromInfo('berth_runtime_available', '1 while the container runtime answers.', (i) => (i.runtime.available ? 1 : 0));
    new Gauge({
      name: 'berth_host_resources',
      help: 'Host resources for tasks: capacity, consumed by tasks and free, by resource.',
      labelNames: ['resource', 'state'],
      registers,
      collect() {
        if (!metrics.engine) return;
        const { capacity, consumed, free } = metrics.engine.agentInfo();
        this.set({ resource: 'cpu_units', state: 'capacity' }, capacity.cpuUnits);
        this.set({ resource: 'cpu_units', state: 'consumed' }, consumed.cpuUnits);
        this.set({ resource: 'cpu_units', state: 'free' }, free.cpuUnits);
        this.set({ resource: 'memory_mib', state: 'capacity' }, capacity.memoryMib);
        this.set({ resource: 'memory_mib', state: 'consumed' }, consumed.memoryMib);
        this.set({ resource: 'memory_mib', state: 'free' }, free.memoryMib);
        this.set({ resource: 'gpus', state: 'capacity' }, capacity.gpuIds.length);
        this.set({ resource: 'gpus', state: 'consumed' }, consumed.gpuIds.length);
        this.set({ resource: 'gpus', state: 'free' }, free.gpuIds.length);
        this.set({ resource: 'tcp_ports', state: 'consumed' }, consumed.tcpPorts.length);
        this.set({ resource: 'udp_ports', state: 'consumed' }, consumed.udpPorts.length);
        this.set({ resource: 'dynamic_tcp_ports', state: 'free' }, free.dynamicTcpPorts);
        this.set({ resource: 'dynamic_udp_ports', state: 'free' }, free.dynamicUdpPorts);
      },
    });
    new Gauge({
      name: 'berth_log_messages_dropped',
      help: "Log messages the log forwarding dropped because their destination was down or slow (containerd's syslog driver), over the containers the runtime still has.",
      registers,
      async collect() {
        if (metrics.engine) this.set(await metrics.engine.containers.logMessagesDropped().catch(() => 0));
      },
    });
    this.watchers = new Gauge({ name: 'berth_event_watchers', help: 'Open WatchEvents streams (and other readers of the event log).', registers });
  }

  call(operation: string, seconds: number, errorKind?: string): void {
    this.callDuration.observe({ operation }, seconds);
    if (errorKind) this.callErrors.inc({ operation, kind: errorKind });
  }

  eventDelivered(seconds: number): void {
    this.delivery.observe(seconds);
  }

  pull(seconds: number, bytes: number, ok: boolean): void {
    this.pullDuration.observe({ result: ok ? 'success' : 'failure' }, seconds);
    if (bytes > 0) this.pullBytes.inc(bytes);
  }

  /**
   * Starts reading the engine: gauges at scrape time, and the event log for task launches (the
   * time from a task's creation to its RUNNING event).
   */
  follow(engine: TaskEngine, events: EventLog, store: StateStore, membership?: Membership): void {
    this.engine = engine;
    this.membership = membership;
    this.events = events;
    this.store = store;
    store.on('fsync', this.observeFsync);
    store.on('checkpoint', this.observeCheckpoint);
    void this.readLaunches(events);
  }

  private async readLaunches(events: EventLog): Promise<void> {
    const signal = this.following.signal;
    while (!signal.aborted) {
      const watcher = events.watch(0);
      signal.addEventListener('abort', () => watcher.close(), { once: true });
      try {
        for (;;) {
          const batch = await watcher.next(60_000);
          if (batch === undefined) return;
          for (const event of batch) {
            if (event.change.type !== 'task' || event.change.knownStatus !== 'RUNNING') continue;
            const createdAt = this.createdAt(event.taskId);
            if (createdAt !== undefined) this.launch.observe(Math.max(0, event.time.getTime() - createdAt) / 1000);
          }
        }
      } catch (error) {
        // Fell behind (a burst of events): start again from the newest; a few launches go uncounted.
        this.log.warn({ err: error }, 'metrics fell behind the event log; resuming from the newest event');
      } finally {
        watcher.close();
      }
    }
  }

  private createdAt(taskId: string): number | undefined {
    try {
      return this.engine?.getTask(taskId).createdAt.getTime();
    } catch {
      return undefined; // already forgotten
    }
  }

  /** The text a scrape gets. The launch reader's own watcher is not counted as a watcher. */
  async scrape(): Promise<{ contentType: string; body: string }> {
    this.watchers.set(Math.max(0, (this.events?.watcherCount() ?? 1) - 1));
    return { contentType: this.registry.contentType, body: await this.registry.metrics() };
  }

  stop(): void {
    this.following.abort();
    this.store?.off('fsync', this.observeFsync);
    this.store?.off('checkpoint', this.observeCheckpoint);
  }
}
