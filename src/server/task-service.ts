import type { handleUnaryCall } from '@grpc/grpc-js';
import type { TaskEngine } from '../engine/task-engine.js';
import type { TaskStatus } from '../engine/model/status.js';
import { RunTaskResponse, type GetTaskResponse, type ListTasksResponse, type StopTaskResponse, type TaskServiceServer } from '../gen/berth/agent/v1/task_service.js';
import { AGENT_VERSION } from '../version.js';
import { toServiceError } from './error-status.js';
import { durationToMs, fromPbLogStreams, fromPbTaskStatus, taskDefinitionInput, toPbContainerStats, toPbLogLine } from './mapping.js';
import { pageOfTasks } from './paging.js';
import { taskResponse } from './task-encoding.js';
import { TurnSlices } from './turn-slices.js';
import { preEncoded } from './pre-encoded.js';
import { forEachBatch, serveStream } from './streaming.js';
import { serveAttach, serveExecSession, servePortForward } from './sessions.js';
import { watchEvents, type EventDeliveryObserver } from './watch-events.js';

/** How the agent stands with its fleet, as GetAgentInfo shows it (src/cluster/membership.ts keeps it). */
export interface MembershipView {
  connected: boolean;
  /** Why not, while not connected. */
  reason: string;
  since: Date;
  appliedRevision: number;
  assignedTasks: number;
  prefix: string;
  address: string;
}

export interface TaskServiceOptions {
  /** The agent's membership of a fleet, when it has `cluster` config. */
  membership?: () => MembershipView;
  /** A watch stream that has sent nothing for this long gets a heartbeat. */
  heartbeatIntervalMs: number;
  /** Aborted when the server shuts down: open watch streams end. */
  shutdown: AbortSignal;
  /** Told how long each event took from its commit to a watch stream. */
  delivery?: EventDeliveryObserver;
}

/**
 * Runs a unary handler body and answers with its result or its mapped error. The answer waits
 * until what the agent wrote so far is on the disk (`durable`): a client is never told of a state
 * a power cut could take back.
 */
function unaryAfter(durable: () => Promise<void>, slices: TurnSlices) {
  return <Req, Res>(body: (request: Req) => Res): handleUnaryCall<Req, Res> =>
    (call, callback) =>
      slices.run(() => {
        let response: Res;
        try {
          response = body(call.request);
        } catch (error) {
          callback(toServiceError(error));
          return;
        }
        durable().then(
          () => callback(null, response),
          (error: unknown) => callback(toServiceError(error)),
        );
      });
}

/**
 * The most time unary handlers take in one turn of the event loop before the rest of a burst waits
 * for the next turn (see TurnSlices).
 */
const UNARY_SLICE_MS = 5;

/** The berth.agent.v1.TaskService handlers: thin translations over the engine. */
export function createTaskService(engine: TaskEngine, options: TaskServiceOptions): TaskServiceServer {
  const unary = unaryAfter(() => engine.durable(), new TurnSlices(UNARY_SLICE_MS));
  return {
    runTask: unary((request) => {
      const { task, created } = engine.runTask(taskDefinitionInput(request.task));
      return preEncoded<RunTaskResponse>(taskResponse(task, RunTaskResponse.encode({ task: undefined, created }).finish()));
    }),
    stopTask: unary((request) => preEncoded<StopTaskResponse>(taskResponse(engine.stopTask(request.taskId, request.reason)))),
    getTask: unary((request) => preEncoded<GetTaskResponse>(taskResponse(engine.getTask(request.taskId)))),
    listTasks: unary((request) => {
      const statuses = request.statuses.map(fromPbTaskStatus).filter((s): s is TaskStatus => s !== undefined);
      const tasks = engine.listTasks({ statuses, family: request.family }).sort((a, b) => (a.definition.id < b.definition.id ? -1 : a.definition.id > b.definition.id ? 1 : 0));
      return preEncoded<ListTasksResponse>(pageOfTasks(tasks, request.pageSize, request.pageToken));
    }),
    exec: (call, callback) => {
      const { taskId, containerName, command, timeout } = call.request;
      // A client that gives up ends the command too (it is killed in the container).
      const cancelled = new AbortController();
      call.on('cancelled', () => cancelled.abort());
      engine.containers.exec(taskId, containerName, command, durationToMs(timeout), cancelled.signal).then(
        (result) => callback(null, { exitCode: result.exitCode, output: result.output }),
        (error: unknown) => callback(toServiceError(error)),
      );
    },
    getAgentInfo: unary(() => {
      const info = engine.agentInfo();
      return {
        agentId: info.agentId,
        version: AGENT_VERSION,
        runtime: info.runtime.available
          ? { name: info.runtimeName, version: info.runtime.version.version, apiVersion: info.runtime.version.apiVersion, available: true, reason: '' }
          : { name: info.runtimeName, version: '', apiVersion: '', available: false, reason: info.runtime.reason },
        capacity: { ...info.capacity, dynamicTcpPortsFree: 0, dynamicUdpPortsFree: 0 },
        consumed: { ...info.consumed, dynamicTcpPortsFree: 0, dynamicUdpPortsFree: 0 },
        free: { ...info.free, dynamicTcpPortsFree: info.free.dynamicTcpPorts, dynamicUdpPortsFree: info.free.dynamicUdpPorts },
        queuedTaskIds: info.queuedTaskIds,
        latestSequence: info.latestSequence,
        oldestSequence: info.oldestSequence,
        cluster: options.membership?.(),
      };
    }),
    watchEvents: (call) => void watchEvents(engine, call, options),
    logs: (call) =>
      void serveStream(call, options.shutdown, async (write, signal) => {
        const { taskId, containerName, follow, tail, since, streams } = call.request;
        const lines = await engine.containers.logs(taskId, containerName, { follow, tail, since, streams: fromPbLogStreams(streams), signal });
        await forEachBatch(lines, LOG_BATCH, (batch) => write({ lines: batch.map(toPbLogLine) }), { of: (line) => line.text.length + 64, max: LOG_BATCH_BYTES });
      }),
    execSession: (call) => void serveExecSession(engine.containers, call, options.shutdown),
    portForward: (call) => void servePortForward(engine.containers, call, options.shutdown),
    attach: (call) => void serveAttach(engine.containers, call, options.shutdown),
    stats: (call) =>
      void serveStream(call, options.shutdown, async (write, signal) => {
        const { taskId, containerName, stream, interval } = call.request;
        for await (const sample of engine.containers.stats(taskId, containerName, { stream, intervalMs: durationToMs(interval), signal })) {
          await write({ time: sample.time, containers: sample.containers.map(toPbContainerStats) });
        }
      }),
  };
}

/** Log lines per LogsResponse at most… */
const LOG_BATCH = 500;
/** …and their bytes: a LogsResponse stays well under 1 MiB (lines are at most 16 KiB). */
const LOG_BATCH_BYTES = 512 * 1024;
