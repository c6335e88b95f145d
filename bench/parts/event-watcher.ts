/**
 * One watcher of a berth agent's events, in a process of its own (forked by bench/event-fanout.ts
 * with an IPC channel). It opens one WatchEvents stream on the socket given as its first argument,
 * says `ready` once the snapshot has arrived, and records for each event the time from the event's
 * timestamp (taken as the agent commits it) to its arrival here. On `report` it sends what it
 * recorded since the last report, and starts afresh.
 *
 * With `light` as its second argument it reads only each event's sequence and time from the bytes
 * (as a client in a compiled language costs little per message); otherwise it decodes every
 * message whole with the generated TypeScript code, as a TypeScript client would. Its third and
 * fourth arguments are the request's max_events_per_message and max_batch_delay_ms.
 */
import { credentials, makeGenericClientConstructor } from '@grpc/grpc-js';
import { BinaryReader, WireType } from '@bufbuild/protobuf/wire';
import { TaskServiceClient, TaskServiceService, WatchEventsResponse } from '../../src/gen/berth/agent/v1/task_service.js';

/** What a watcher recorded since its last report; `messages` counts the messages that held events. */
export type WatcherReport = { type: 'report'; latenciesMs: number[]; events: number; messages: number; gaps: number; cpuMs: number; error?: string };

const socket = process.argv[2];
if (!socket || !process.send) throw new Error('usage: forked with IPC, argument: the agent socket path');
const send = (message: object) => process.send!(message);

const client = new TaskServiceClient(`unix://${socket}`, credentials.createInsecure());
let latencies: number[] = [];
let events = 0;
let messages = 0;
let gaps = 0;
let lastSequence = -1;
let failure: string | undefined;
let cpuAtLastReport = process.cpuUsage();

/** An Event's sequence and time (ms since the epoch), from its bytes. */
function eventHead(bytes: Uint8Array): { sequence: number; timeMs: number } {
  const event = new BinaryReader(bytes);
  let sequence = 0;
  let timeMs = 0;
  while (event.pos < event.len) {
    const [field, wireType] = event.tag();
    if (field === 1) sequence = Number(event.uint64());
    else if (field === 2) {
      const time = new BinaryReader(event.bytes());
      while (time.pos < time.len) {
        const [timeField, timeWire] = time.tag();
        if (timeField === 1) timeMs += Number(time.int64()) * 1000;
        else if (timeField === 2) timeMs += time.int32() / 1e6;
        else time.skip(timeWire, timeField);
      }
    } else event.skip(wireType, field);
  }
  return { sequence, timeMs };
}

/** The events of a WatchEventsResponse (`event`, or an `events` batch), read from its bytes; undefined for other messages. */
function eventHeads(bytes: Uint8Array): { sequence: number; timeMs: number }[] | undefined {
  const response = new BinaryReader(bytes);
  while (response.pos < response.len) {
    const [field, wireType] = response.tag();
    if (field === 2 && wireType === WireType.LengthDelimited) return [eventHead(response.bytes())];
    if (field === 4 && wireType === WireType.LengthDelimited) {
      const batch = new BinaryReader(response.bytes());
      const heads: { sequence: number; timeMs: number }[] = [];
      while (batch.pos < batch.len) {
        const [batchField, batchWire] = batch.tag();
        if (batchField === 1) heads.push(eventHead(batch.bytes()));
        else batch.skip(batchWire, batchField);
      }
      return heads;
    }
    response.skip(wireType, field);
  }
  return undefined;
}

const onEvent = (sequence: number, timeMs: number, arrived: number) => {
  if (sequence !== lastSequence + 1) gaps++;
  lastSequence = sequence;
  events++;
  latencies.push(arrived - timeMs);
};

const light = process.argv[3] === 'light';
const request = { fromSequence: 0, includeSnapshot: true, taskIds: [], maxEventsPerMessage: Number(process.argv[4] ?? 0), maxBatchDelayMs: Number(process.argv[5] ?? 0) };
const stream = light
  ? new (makeGenericClientConstructor({}, 'TaskService'))(`unix://${socket}`, credentials.createInsecure()).makeServerStreamRequest(
      TaskServiceService.watchEvents.path,
      TaskServiceService.watchEvents.requestSerialize,
      (bytes: Buffer) => bytes,
      request,
    )
  : client.watchEvents(request);
stream.on('data', (data: WatchEventsResponse | Buffer) => {
  const arrived = performance.timeOrigin + performance.now();
  let message: WatchEventsResponse;
  if (Buffer.isBuffer(data)) {
    const heads = eventHeads(data);
    if (heads) {
      messages++;
      return heads.forEach((head) => onEvent(head.sequence, head.timeMs, arrived));
    }
    message = WatchEventsResponse.decode(data);
  } else message = data;
  switch (message.kind?.$case) {
    case 'snapshot':
      lastSequence = message.kind.value.sequence;
      if (!message.kind.value.more) send({ type: 'ready' });
      break;
    case 'event':
      messages++;
      onEvent(message.kind.value.sequence, message.kind.value.time?.getTime() ?? arrived, arrived);
      break;
    case 'events':
      messages++;
      for (const event of message.kind.value.events) onEvent(event.sequence, event.time?.getTime() ?? arrived, arrived);
      break;
    default:
      break;
  }
});
stream.on('error', (error: Error) => {
  if (!/CANCELLED/.test(error.message)) failure = error.message;
});

process.on('message', (message: { type: string }) => {
  if (message.type === 'report') {
    const cpu = process.cpuUsage(cpuAtLastReport);
    cpuAtLastReport = process.cpuUsage();
    send({ type: 'report', latenciesMs: latencies, events, messages, gaps, cpuMs: (cpu.user + cpu.system) / 1000, error: failure } satisfies WatcherReport);
    latencies = [];
    events = 0;
    messages = 0;
    gaps = 0;
  } else if (message.type === 'exit') {
    stream.cancel();
    client.close();
    process.disconnect();
  }
});
