import { watch } from 'node:fs';
import { open, stat } from 'node:fs/promises';
import type { LogLine, LogOptions, LogStream } from '../types.js';

/**
 * The log file that berth's log writer (libexec/berth-log-writer) keeps for a containerd
 * container: one record per line, `<RFC 3339 time> <stdout|stderr> <F|P> <text>`, F for a whole
 * line and P for a piece of one.
 */
export const LOG_FILE_NAME = 'container.log';

const CHUNK_BYTES = 64 * 1024;
/** How often a followed file is looked at when no change notice arrives. */
const FOLLOW_POLL_MS = 500;
/**
 * After the process exits, the file is read until it has not grown for this long: longer than the
 * writer holds an unfinished line (250 ms) before it writes it as a piece…
 */
const SETTLE_MS = 400;
/** …but no longer than this. */
const SETTLE_LIMIT_MS = 3000;

export function parseLogRecord(record: Buffer): LogLine | undefined {
  const first = record.indexOf(32);
  const second = first < 0 ? -1 : record.indexOf(32, first + 1);
  const third = second < 0 ? -1 : record.indexOf(32, second + 1);
  if (third < 0 && !(second >= 0 && record.length === second + 2)) return undefined;
  const time = new Date(record.subarray(0, first).toString('latin1'));
  const stream = record.subarray(first + 1, second).toString('latin1');
  const tag = record.subarray(second + 1, third < 0 ? record.length : third).toString('latin1');
  if (Number.isNaN(time.getTime()) || (stream !== 'stdout' && stream !== 'stderr') || (tag !== 'F' && tag !== 'P')) return undefined;
  return { time, stream: stream as LogStream, text: third < 0 ? Buffer.alloc(0) : Buffer.from(record.subarray(third + 1)), partial: tag === 'P' };
}

/** Records of a file from `offset`, as far as it is written now; returns where the next read begins. */
async function readRecords(path: string, offset: number, onRecord: (line: LogLine) => void): Promise<number> {
  const file = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (!file) return offset;
  try {
    let rest: Buffer = Buffer.alloc(0);
    let position = offset;
    for (;;) {
      const buffer = Buffer.alloc(CHUNK_BYTES);
      const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, position);
      if (bytesRead === 0) break;
      position += bytesRead;
      let data: Buffer = rest.length === 0 ? buffer.subarray(0, bytesRead) : Buffer.concat([rest, buffer.subarray(0, bytesRead)]);
      for (let newline = data.indexOf(10); newline >= 0; newline = data.indexOf(10)) {
        const line = parseLogRecord(data.subarray(0, newline));
        if (line) onRecord(line);
        data = data.subarray(newline + 1);
      }
      rest = Buffer.from(data);
    }
    // A record being written is read again, whole, next time.
    return position - rest.length;
  } finally {
    await file.close();
  }
}

/**
 * The last `count` wanted records of a file, read backwards in chunks; `end` is where the records
 * written completely end (a record being written is left for the next read).
 */
async function readLastRecords(path: string, count: number, wanted: (line: LogLine) => boolean): Promise<{ lines: LogLine[]; end: number }> {
  const file = await open(path, 'r').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
  if (!file) return { lines: [], end: 0 };
  try {
    const size = (await file.stat()).size;
    const found: LogLine[] = [];
    let position = size;
    let end: number | undefined;
    // Bytes of a record that began before the chunk read last (read again with the chunk before it).
    let carry: Buffer = Buffer.alloc(0);
    while (position > 0 && found.length < count) {
      const start = Math.max(0, position - CHUNK_BYTES);
      const chunk = Buffer.alloc(position - start);
      await file.read(chunk, 0, chunk.length, start);
      let data: Buffer = carry.length === 0 ? chunk : Buffer.concat([chunk, carry]);
      if (end === undefined) {
        // Whatever follows the last newline is still being written.
        const lastNewline = data.lastIndexOf(10);
        end = lastNewline < 0 ? start : start + lastNewline + 1;
        data = data.subarray(0, lastNewline + 1);
      }
      // data[0, stop) is not read yet; it ends with a newline (or is empty).
      let stop = data.length;
      while (stop > 0 && found.length < count) {
        const newline = stop >= 2 ? data.lastIndexOf(10, stop - 2) : -1;
        // The record may begin in the chunk before: read it with that one.
        if (newline < 0 && start > 0) break;
        const line = parseLogRecord(data.subarray(newline + 1, stop - 1));
        if (line && wanted(line)) found.push(line);
        stop = newline + 1;
      }
      carry = Buffer.from(data.subarray(0, stop));
      position = start;
    }
    return { lines: found.reverse(), end: end ?? 0 };
  } finally {
    await file.close();
  }
}

/**
 * Lines of a container's log file. Without follow, what the file holds now (the last `tail`
 * lines, those since `since`). With follow, then every new line until `exited` resolves and the
 * writer has flushed, or the signal aborts.
 */
export async function* readLogFile(path: string, options: LogOptions, exited: Promise<unknown> | undefined): AsyncGenerator<LogLine> {
  const streams = new Set<LogStream>(options.streams ?? ['stdout', 'stderr']);
  const since = options.since?.getTime();
  const wanted = (line: LogLine) => streams.has(line.stream) && (since === undefined || line.time.getTime() >= since);
  let batch: LogLine[] = [];
  const tail = options.tail;
  let offset: number;
  if (tail !== undefined) {
    // The last lines, read from the end backwards: the cost grows with `tail`, not with the file.
    const last = await readLastRecords(path, tail, wanted);
    offset = last.end;
    yield* last.lines;
  } else {
    offset = await readRecords(path, 0, (line) => {
      if (wanted(line)) batch.push(line);
    });
    yield* batch;
  }
  if (!options.follow || !exited || options.signal.aborted) return;

  let processExited = false;
  void exited.then(() => (processExited = true), () => (processExited = true));
  let wake: (() => void) | undefined;
  const nudge = () => wake?.();
  const watcher = watch(path, { persistent: false }, nudge);
  watcher.on('error', () => undefined);
  options.signal.addEventListener('abort', nudge, { once: true });
  void exited.then(nudge, nudge);
  try {
    let settleStarted: number | undefined;
    let quietSince = Date.now();
    while (!options.signal.aborted) {
      batch = [];
      const next = await readRecords(path, offset, (line) => {
        if (wanted(line)) batch.push(line);
      });
      if (next !== offset) quietSince = Date.now();
      offset = next;
      yield* batch;
      if (processExited) {
        settleStarted ??= Date.now();
        const size = (await stat(path).catch(() => undefined))?.size ?? offset;
        if ((size === offset && Date.now() - quietSince >= SETTLE_MS) || Date.now() - settleStarted >= SETTLE_LIMIT_MS) return;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, processExited ? SETTLE_MS / 4 : FOLLOW_POLL_MS);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    watcher.close();
    options.signal.removeEventListener('abort', nudge);
  }
}

/** A log file's text as the process wrote it (both streams, in order), at most `limit` bytes. */
export async function readOutput(path: string, limit: number): Promise<Buffer> {
  const pieces: Buffer[] = [];
  let size = 0;
  await readRecords(path, 0, (line) => {
    for (const piece of line.partial ? [line.text] : [line.text, NEWLINE]) {
      if (size >= limit) return;
      pieces.push(piece.subarray(0, limit - size));
      size += Math.min(piece.length, limit - size);
    }
  });
  return Buffer.concat(pieces);
}

const NEWLINE = Buffer.from('\n');
