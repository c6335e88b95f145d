import { BinaryReader, BinaryWriter } from '@bufbuild/protobuf/wire';
import { status, type sendUnaryData, type Server, type ServerUnaryCall, type ServerWritableStream, type ServiceDefinition } from '@grpc/grpc-js';
import type { StoreHealth } from '../engine/task-engine.js';
import { withTolerantDecoding } from './request-decoding.js';

export const TASK_SERVICE_NAME = 'berth.agent.v1.TaskService';

/** Watch streams open at once, over all connections: one more is refused with RESOURCE_EXHAUSTED. */
export const MAX_HEALTH_WATCHERS = 1000;

type ServingStatus = 'SERVING' | 'NOT_SERVING';

/** grpc.health.v1.HealthCheckResponse.ServingStatus on the wire. */
const WIRE_STATUS = { SERVING: 1, NOT_SERVING: 2, SERVICE_UNKNOWN: 3 } as const;

// The messages of grpc.health.v1, read and written here directly: HealthCheckRequest { string
// service = 1 }, HealthCheckResponse { ServingStatus status = 1 }, HealthListRequest {} and
// HealthListResponse { map<string, HealthCheckResponse> statuses = 1 }. Loading their .proto at
// run time (as a generic implementation does) cost the agent's start-up some 40 ms.

function readCheckRequest(bytes: Buffer): { service: string } {
  const reader = new BinaryReader(bytes);
  let service = '';
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1 && wireType === 2) service = reader.string();
    else reader.skip(wireType);
  }
  return { service };
}

function writeCheckResponse(wire: number, writer = new BinaryWriter()): BinaryWriter {
  return writer.uint32((1 << 3) | 0).int32(wire);
}

function writeListResponse(statuses: Map<string, ServingStatus>): Buffer {
  const writer = new BinaryWriter();
  for (const [service, serving] of statuses) {
    writer.uint32((1 << 3) | 2).fork();
    writer.uint32((1 << 3) | 2).string(service);
    writer.uint32((2 << 3) | 2).fork();
    writeCheckResponse(WIRE_STATUS[serving], writer).join();
    writer.join();
  }
  return Buffer.from(writer.finish());
}

/** A message already in wire form, both ways. */
const asIs = (bytes: Buffer) => bytes;

/** grpc.health.v1.Health's three methods, their messages already in wire form. */
const HEALTH_SERVICE: ServiceDefinition = {
  Check: {
    path: '/grpc.health.v1.Health/Check',
    requestStream: false,
    responseStream: false,
    requestSerialize: asIs,
    requestDeserialize: readCheckRequest,
    responseSerialize: asIs,
    responseDeserialize: asIs,
  },
  Watch: {
    path: '/grpc.health.v1.Health/Watch',
    requestStream: false,
    responseStream: true,
    requestSerialize: asIs,
    requestDeserialize: readCheckRequest,
    responseSerialize: asIs,
    responseDeserialize: asIs,
  },
  List: {
    path: '/grpc.health.v1.Health/List',
    requestStream: false,
    responseStream: false,
    requestSerialize: asIs,
    requestDeserialize: asIs,
    responseSerialize: asIs,
    responseDeserialize: asIs,
  },
};

/** The serving status of each service name, and the Watch streams that follow them. */
class HealthStatuses {
  private readonly statuses = new Map<string, ServingStatus>();
  private readonly watchers = new Map<string, Set<ServerWritableStream<{ service: string }, Buffer>>>();
  private watching = 0;

  constructor(private readonly maxWatchers: number) {}

  set(service: string, serving: ServingStatus): void {
    if (this.statuses.get(service) === serving) return;
    this.statuses.set(service, serving);
    const answer = Buffer.from(writeCheckResponse(WIRE_STATUS[serving]).finish());
    for (const stream of this.watchers.get(service) ?? []) stream.write(answer);
  }

  addToServer(server: Server): void {
    const { service, implementation } = withTolerantDecoding(HEALTH_SERVICE, {
      Check: (call: ServerUnaryCall<{ service: string }, Buffer>, callback: sendUnaryData<Buffer>) => {
        const serving = this.statuses.get(call.request.service);
        if (serving) callback(null, Buffer.from(writeCheckResponse(WIRE_STATUS[serving]).finish()));
        else callback({ code: status.NOT_FOUND, details: `no health status for service "${call.request.service.slice(0, 200)}"` });
      },
      Watch: (stream: ServerWritableStream<{ service: string }, Buffer>) => this.watch(stream),
      List: (_call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => callback(null, writeListResponse(this.statuses)),
    });
    server.addService(service, implementation);
  }

  /** Sends the service's status now (SERVICE_UNKNOWN for a name without one) and at each change. */
  private watch(stream: ServerWritableStream<{ service: string }, Buffer>): void {
    if (this.watching >= this.maxWatchers) {
      stream.emit('error', { code: status.RESOURCE_EXHAUSTED, details: `too many health Watch streams: at most ${this.maxWatchers} at once` });
      return;
    }
    const { service } = stream.request;
    const serving = this.statuses.get(service);
    stream.write(Buffer.from(writeCheckResponse(serving ? WIRE_STATUS[serving] : WIRE_STATUS.SERVICE_UNKNOWN).finish()));
    const streams = this.watchers.get(service) ?? new Set();
    this.watchers.set(service, streams);
    streams.add(stream);
    this.watching++;
    let ended = false;
    const forget = () => {
      if (ended) return;
      ended = true;
      this.watching--;
      streams.delete(stream);
      if (streams.size === 0) this.watchers.delete(service);
    };
    stream.once('cancelled', forget);
    stream.once('close', forget);
    stream.once('error', forget);
  }
}

/** What health reads of the runtime monitor: whether the runtime answers, and when that changes. */
export interface RuntimeHealth {
  readonly availability: { available: boolean };
  on(event: 'change', listener: () => void): unknown;
  off(event: 'change', listener: () => void): unknown;
}

/**
 * grpc.health.v1: SERVING while the container runtime answers and the state store takes writes,
 * NOT_SERVING otherwise, for the server as a whole ("") and for berth.agent.v1.TaskService.
 */
export function addHealth(server: Server, monitor: RuntimeHealth, store: StoreHealth, maxWatchers = MAX_HEALTH_WATCHERS): () => void {
  const health = new HealthStatuses(maxWatchers);
  const update = () => {
    const serving: ServingStatus = monitor.availability.available && store.writable ? 'SERVING' : 'NOT_SERVING';
    health.set('', serving);
    health.set(TASK_SERVICE_NAME, serving);
  };
  update();
  monitor.on('change', update);
  store.on('change', update);
  health.addToServer(server);
  return () => {
    monitor.off('change', update);
    store.off('change', update);
  };
}
