import type { LogLine, LogStream } from '../types.js';

/** Docker's stream ids in the header of a multiplexed frame. */
const STREAMS: Record<number, LogStream | undefined> = { 1: 'stdout', 2: 'stderr' };
const HEADER_BYTES = 8;

/** The `since` query parameter of Docker's log API: seconds and nanoseconds since the epoch. */
export function dockerSince(time: Date): string {
  const ms = time.getTime();
  return `${Math.floor(ms / 1000)}.${String((ms % 1000) * 1_000_000).padStart(9, '0')}`;
}

/**
 * Lines of Docker's multiplexed log stream (a container without a terminal, read with
 * timestamps=true): each frame is an 8-byte header (stream id, 3 zero bytes, big-endian length)
 * then the payload; each line of a payload starts with its RFC 3339 time and a space.
 */
export async function* dockerLogLines(chunks: AsyncIterable<Buffer>): AsyncGenerator<LogLine> {
  let pending: Buffer = Buffer.alloc(0);
  const open: Record<LogStream, Buffer> = { stdout: Buffer.alloc(0), stderr: Buffer.alloc(0) };
  for await (const chunk of chunks) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= HEADER_BYTES) {
      const size = pending.readUInt32BE(4);
      if (pending.length < HEADER_BYTES + size) break;
      const stream = STREAMS[pending[0]!];
      const payload = pending.subarray(HEADER_BYTES, HEADER_BYTES + size);
      pending = pending.subarray(HEADER_BYTES + size);
      if (!stream) continue;
      let data: Buffer = open[stream].length === 0 ? payload : Buffer.concat([open[stream], payload]);
      for (let newline = data.indexOf(10); newline >= 0; newline = data.indexOf(10)) {
        yield parseLine(stream, data.subarray(0, newline), false);
        data = data.subarray(newline + 1);
      }
      open[stream] = Buffer.from(data);
    }
  }
  for (const stream of ['stdout', 'stderr'] as const) {
    if (open[stream].length > 0) yield parseLine(stream, open[stream], true);
  }
}

function parseLine(stream: LogStream, line: Buffer, partial: boolean): LogLine {
  const space = line.indexOf(32);
  const time = space > 0 ? new Date(line.subarray(0, space).toString('latin1')) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) return { time: new Date(), stream, text: Buffer.from(line), partial };
  return { time, stream, text: Buffer.from(line.subarray(space + 1)), partial };
}
