import { setTimeout as sleep } from 'node:timers/promises';
import { status, type ClientReadableStream } from '@grpc/grpc-js';
import type { Event } from '../gen/berth/agent/v1/event.js';
import type { Task } from '../gen/berth/agent/v1/task.js';
import type { GetAgentInfoResponse, TaskServiceClient, WatchEventsResponse } from '../gen/berth/agent/v1/task_service.js';
import { toBerthError, type BerthError } from './errors.js';

/** What a watch yields. */
export type WatchItem =
  /**
   * Every task (of `taskIds`, when set) as of `sequence`; the events that follow start after it.
   * The first item when `snapshot` was asked for. `resync` is set on one taken because the agent
   * no longer had the events the watch needed (it was away longer than the agent keeps them, or
   * the agent's state was reset): then `reason` says which, and the events in between are not
   * delivered — the snapshot replaces them.
   */
  | { kind: 'snapshot'; sequence: number; tasks: Task[]; resync: boolean; reason?: string }
  | { kind: 'event'; event: Event }
  /** The agent is idle at `sequence` (only when `heartbeats` is set). */
  | { kind: 'heartbeat'; sequence: number };

export interface WatchOptions {
  /**
   * The first sequence to deliver: the last sequence a previous watch delivered plus one, to carry
   * on where it stopped. 0 (the default): from the moment the watch first reaches the agent.
   */
  fromSequence?: number;
  /** Only these tasks' events (and snapshot entries). */
  taskIds?: string[];
  /** Begin with a snapshot of the tasks (`fromSequence` must be 0 then). */
  snapshot?: boolean;
  /** Yield the agent's heartbeats too. */
  heartbeats?: boolean;
  /** Ends the watch (the iteration finishes without an error). */
  signal?: AbortSignal;
  /** The first wait before opening the stream again after a failure; doubles up to `maxBackoffMs` (100 ms, 5 s by default), with jitter. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /**
   * A stream that brings nothing, not even a heartbeat, for this long is taken for dead and opened
   * again (a network that dropped without a reset). 0 turns it off. 60 s by default; the agent
   * sends a heartbeat every 10 s by default (`events.heartbeatInterval`).
   */
  idleTimeoutMs?: number;
  /** Events per message asked of the agent (1 to 1000; 100 by default). */
  maxEventsPerMessage?: number;
  /**
   * Milliseconds the agent may hold a message for the events ready shortly after its first (0 to
   * 1000; 0 by default): fewer messages, each event up to this much later. Needs
   * `maxEventsPerMessage` above 1.
   */
  maxBatchDelayMs?: number;
  /** Told each time the stream is opened again, with the error that ended the last one. */
  onReconnect?: (info: { attempt: number; error: BerthError | undefined; fromSequence: number | undefined; delayMs: number }) => void;
}

/** What a watch uses of its connection to the agent (a BerthClient). */
export interface WatchConnection {
  getAgentInfo(options?: { signal?: AbortSignal }): Promise<GetAgentInfoResponse>;
  readonly raw: Pick<TaskServiceClient, 'watchEvents'>;
}

/** Codes that another attempt cannot mend: the watch fails with them. */
const FINAL_CODES = new Set<status>([status.INVALID_ARGUMENT, status.PERMISSION_DENIED, status.UNAUTHENTICATED, status.UNIMPLEMENTED, status.FAILED_PRECONDITION]);

const DEFAULT_IDLE_TIMEOUT_MS = 60_000;

/**
 * Follows the agent's events across dropped connections and agent restarts, delivering each event
 * exactly once and in sequence order: it keeps the last sequence it delivered (or that a
 * heartbeat showed the agent had passed) and opens the stream again from the one after it,
 * skipping anything at or below it. OUT_OF_RANGE (the events it needs are gone) gives a resync
 * snapshot; RESOURCE_EXHAUSTED for a watcher too slow resumes from the sequence the agent named,
 * which is the one after the last it sent.
 */
export async function* watchEvents(client: WatchConnection, options: WatchOptions): AsyncGenerator<WatchItem> {
  const fromSequence = options.fromSequence ?? 0;
  if (!Number.isSafeInteger(fromSequence) || fromSequence < 0) throw new RangeError(`fromSequence must be a whole number ≥ 0 (got ${fromSequence})`);
  if (options.snapshot && fromSequence !== 0) throw new RangeError('fromSequence must be 0 when a snapshot is asked for');
  const signal = options.signal;
  const initialBackoff = options.initialBackoffMs ?? 100;
  const maxBackoff = Math.max(initialBackoff, options.maxBackoffMs ?? 5000);
  const idleTimeout = options.idleTimeoutMs ?? DEFAULT_IDLE_TIMEOUT_MS;
  const perMessage = Math.min(1000, Math.max(1, options.maxEventsPerMessage ?? 100));
  const batchDelayMs = options.maxBatchDelayMs ?? 0;
  if (!Number.isSafeInteger(batchDelayMs) || batchDelayMs < 0 || batchDelayMs > 1000) throw new RangeError(`maxBatchDelayMs must be a whole number from 0 to 1000 (got ${batchDelayMs})`);
  const taskIds = options.taskIds ?? [];

  /** The last sequence delivered or passed; undefined until known. */
  let position: number | undefined = fromSequence > 0 ? fromSequence - 1 : undefined;
  let wantSnapshot = options.snapshot ?? false;
  let resyncReason: string | undefined;
  /** Failed attempts since the last message: the back-off grows with them. */
  let failures = 0;
  let attempts = 0;
  let lastError: BerthError | undefined;

  while (!signal?.aborted) {
    if (attempts > 0) {
      const delayMs = failures === 0 ? 0 : Math.round(Math.min(maxBackoff, initialBackoff * 2 ** (failures - 1)) * (0.5 + Math.random() / 2));
      options.onReconnect?.({ attempt: attempts, error: lastError, fromSequence: position === undefined ? undefined : position + 1, delayMs });
      if (delayMs > 0) {
        try {
          await sleep(delayMs, undefined, { signal });
        } catch {
          return;
        }
      }
    }
    attempts++;
    let stream: ClientReadableStream<WatchEventsResponse> | undefined;
    let idleTimer: NodeJS.Timeout | undefined;
    let idle = false;
    const cancel = () => stream?.cancel();
    signal?.addEventListener('abort', cancel, { once: true });
    try {
      // "From now": the agent's latest sequence, asked before the stream opens, so that a
      // reconnect before the first event still knows where to carry on.
      if (!wantSnapshot && position === undefined) position = (await client.getAgentInfo({ signal })).latestSequence;
      stream = client.raw.watchEvents({
        fromSequence: wantSnapshot ? 0 : position! + 1,
        includeSnapshot: wantSnapshot,
        taskIds,
        maxEventsPerMessage: perMessage,
        maxBatchDelayMs: batchDelayMs,
      });
      const armIdleTimer = () => {
        if (idleTimeout <= 0) return;
        clearTimeout(idleTimer);
        idleTimer = setTimeout(() => {
          idle = true;
          stream?.cancel();
        }, idleTimeout);
      };
      armIdleTimer();
      const parts: Task[] = [];
      for await (const message of stream as AsyncIterable<WatchEventsResponse>) {
        armIdleTimer();
        failures = 0;
        const kind = message.kind;
        if (kind?.$case === 'snapshot') {
          parts.push(...kind.value.tasks);
          if (kind.value.more) continue;
          position = kind.value.sequence;
          wantSnapshot = false;
          const resync = resyncReason !== undefined;
          const item: WatchItem = { kind: 'snapshot', sequence: kind.value.sequence, tasks: parts.splice(0), resync, ...(resync ? { reason: resyncReason } : {}) };
          resyncReason = undefined;
          clearTimeout(idleTimer);
          yield item;
          armIdleTimer();
        } else if (kind?.$case === 'event' || kind?.$case === 'events') {
          for (const event of kind.$case === 'event' ? [kind.value] : kind.value.events) {
            if (position !== undefined && event.sequence <= position) continue;
            position = event.sequence;
            // The time the caller takes over an item is not the stream's silence.
            clearTimeout(idleTimer);
            yield { kind: 'event', event };
            armIdleTimer();
          }
        } else if (kind?.$case === 'heartbeat') {
          if (position !== undefined && kind.value.sequence > position) position = kind.value.sequence;
          if (options.heartbeats) {
            clearTimeout(idleTimer);
            yield { kind: 'heartbeat', sequence: kind.value.sequence };
            armIdleTimer();
          }
        }
      }
      // The agent ended the stream (it is shutting down): open it again.
      lastError = undefined;
      failures++;
    } catch (error) {
      if (signal?.aborted) return;
      const e = toBerthError(error);
      lastError = e;
      if (idle && e.code === status.CANCELLED) {
        failures++;
      } else if (e.code === status.OUT_OF_RANGE) {
        // The events needed are gone (SEQUENCE_EXPIRED), or the agent has not got that far
        // (SEQUENCE_BEYOND_LATEST: its state was reset, or it is another agent): start again
        // from a snapshot.
        wantSnapshot = true;
        resyncReason = e.message;
        failures = 0;
      } else if (e.code === status.RESOURCE_EXHAUSTED && e.reason === 'WATCHER_TOO_SLOW') {
        // The agent names the sequence after the last message it sent; every message sent was
        // read (and delivered) before this error, so that is `position + 1`. Were it ever
        // beyond, going on from it would skip events: the position kept is the safe one.
        const named = Number(e.info.resume_from_sequence);
        if (position === undefined && Number.isSafeInteger(named) && named > 0) position = named - 1;
        failures = 0;
      } else if (FINAL_CODES.has(e.code)) {
        throw e;
      } else {
        failures++;
      }
    } finally {
      clearTimeout(idleTimer);
      signal?.removeEventListener('abort', cancel);
      stream?.cancel();
    }
  }
}
