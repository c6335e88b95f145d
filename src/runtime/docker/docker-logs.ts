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
  for await (const chunk of chunks) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    while (pending.length >= HEADER_BYTES) {
      const size = pending.readUInt32BE(4);
      if (pending.length < HEADER_BYTES + size) break;
      const stream = STREAMS[pending[0]!];
      let data = pending.subarray(HEADER_BYTES, HEADER_BYTES + size);
      pending = pending.subarray(HEADER_BYTES + size);
      if (!stream) continue;
      // Each frame is one or more messages, each with its own time; a message without a newline
      // is partial (Docker cut a long line at 16 KiB, or the process ended without one).
      for (let newline = data.indexOf(10); newline >= 0; newline = data.indexOf(10)) {
        yield parseLine(stream, data.subarray(0, newline), false);
        data = data.subarray(newline + 1);
      }
      if (data.length > 0) yield parseLine(stream, data, true);
    }
  }
}

/** The longest line kept whole in a terminal's log stream; a longer one is given in parts (Docker cuts at 16 KiB). */
const MAX_TERMINAL_LINE_BYTES = 64 * 1024;

/**
 * Lines of the log stream of a container with a terminal: Docker sends it raw, not multiplexed,
 * each line starting with its RFC 3339 time and a space; all of it is the terminal's output,
 * given as stdout. A last line without newline is partial.
 */
export async function* dockerTerminalLogLines(chunks: AsyncIterable<Buffer>): AsyncGenerator<LogLine> {
  let pending: Buffer = Buffer.alloc(0);
  for await (const chunk of chunks) {
    pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
    for (let newline = pending.indexOf(10); newline >= 0; newline = pending.indexOf(10)) {
      yield parseLine('stdout', pending.subarray(0, newline), false);
      pending = pending.subarray(newline + 1);
    }
    if (pending.length > MAX_TERMINAL_LINE_BYTES) {
      yield parseLine('stdout', pending, true);
      pending = Buffer.alloc(0);
    }
  }
  if (pending.length > 0) yield parseLine('stdout', pending, true);
}

function parseLine(stream: LogStream, line: Buffer, partial: boolean): LogLine {
  const space = line.indexOf(32);
  const time = space > 0 ? new Date(line.subarray(0, space).toString('latin1')) : new Date(Number.NaN);
  if (Number.isNaN(time.getTime())) return { time: new Date(), stream, text: Buffer.from(line), partial };
  return { time, stream, text: Buffer.from(line.subarray(space + 1)), partial };
}
