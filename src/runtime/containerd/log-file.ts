import { watch } from 'node:fs';
import { type FileHandle, open, stat } from 'node:fs/promises';
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

/** A file opened for reading, or undefined when it does not exist. */
async function openIfExists(path: string): Promise<FileHandle | undefined> {
  return open(path, 'r').catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return undefined;
    throw error;
  });
}

/**
 * Records of an open file from `offset`, as far as it is written now, a chunk's worth at a time (a
 * log never passes through memory whole). `position.next` is where the next read begins.
 */
async function* recordsOf(file: FileHandle, offset: number, position: { next: number }): AsyncGenerator<LogLine[]> {
  position.next = offset;
  let rest: Buffer = Buffer.alloc(0);
  let at = offset;
  for (;;) {
    const buffer = Buffer.alloc(CHUNK_BYTES);
    const { bytesRead } = await file.read(buffer, 0, CHUNK_BYTES, at);
    if (bytesRead === 0) break;
    at += bytesRead;
    let data: Buffer = rest.length === 0 ? buffer.subarray(0, bytesRead) : Buffer.concat([rest, buffer.subarray(0, bytesRead)]);
    const lines: LogLine[] = [];
    for (let newline = data.indexOf(10); newline >= 0; newline = data.indexOf(10)) {
      const line = parseLogRecord(data.subarray(0, newline));
      if (line) lines.push(line);
      data = data.subarray(newline + 1);
    }
    rest = Buffer.from(data);
    // A record being written is read again, whole, next time.
    position.next = at - rest.length;
    if (lines.length > 0) yield lines;
  }
}

/** Every record of a file from `offset` (for short files: exec output); returns where the next read begins. */
async function readRecords(path: string, offset: number, onRecord: (line: LogLine) => void): Promise<number> {
  const file = await openIfExists(path);
  if (!file) return offset;
  try {
    const position = { next: offset };
    for await (const lines of recordsOf(file, offset, position)) for (const line of lines) onRecord(line);
    return position.next;
  } finally {
    await file.close();
  }
}

/** Rotated files of a log are kept as <path>.1 (newest) to <path>.N (oldest); at most this many are looked for. */
const MAX_ROTATED = 100;

/** The inode of a file, or undefined when it does not exist. */
const inodeOf = async (path: string) => (await stat(path).catch(() => undefined))?.ino;

/** How many times the files of a log are opened again when a rotation moved them meanwhile. */
const SNAPSHOT_ATTEMPTS = 5;

/** A log's files, opened: the rotated ones (oldest first) and the current one (if it exists). */
interface LogFiles {
  rotated: FileHandle[];
  current: FileHandle | undefined;
}

const closeAll = async (files: LogFiles) => Promise.all([...files.rotated, ...(files.current ? [files.current] : [])].map((f) => f.close()));

/**
 * Opens a log's current file and its rotated ones as one consistent set. The writer rotates by
 * renaming (<log>.N-1 to <log>.N, …, <log> to <log>.1); a file once open keeps its content
 * whatever its name becomes, so a set whose names still lead to the files opened, checked in the
 * order the writer renames them, holds every line once, even while the log rotates. Otherwise the
 * files are opened again, a few times at most.
 */
async function openLogFiles(path: string): Promise<LogFiles> {
  for (let attempt = 1; ; attempt++) {
    const current = await openIfExists(path);
    const newestFirst: FileHandle[] = [];
    for (let n = 1; n <= MAX_ROTATED; n++) {
      const file = await openIfExists(`${path}.${n}`);
      if (!file) break;
      newestFirst.push(file);
    }
    const files: LogFiles = { rotated: newestFirst.slice().reverse(), current };
    if (attempt >= SNAPSHOT_ATTEMPTS || (await stillInPlace(path, files))) return files;
    await closeAll(files);
  }
}

/** Whether each name of a log still leads to the file opened under it (oldest first, as the writer renames), and no file was opened twice. */
async function stillInPlace(path: string, files: LogFiles): Promise<boolean> {
  const opened = [...files.rotated, files.current];
  const names = [...files.rotated.map((_, i) => `${path}.${files.rotated.length - i}`), path];
  const seen = new Set<number>();
  for (const [i, file] of opened.entries()) {
    const inode = file ? (await file.stat()).ino : undefined;
    if (inode !== undefined && seen.has(inode)) return false;
    if (inode !== undefined) seen.add(inode);
    if ((await inodeOf(names[i])) !== inode) return false;
  }
  return true;
}

/**
 * The last `count` wanted records of a file, read backwards in chunks; `end` is where the records
 * written completely end (a record being written is left for the next read).
 */
async function readLastRecords(file: FileHandle | undefined, count: number, wanted: (line: LogLine) => boolean): Promise<{ lines: LogLine[]; end: number }> {
  if (!file) return { lines: [], end: 0 };
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
}

/**
 * Lines of a container's log (its file and the rotated ones before it). Without follow, what the
 * files hold now (the last `tail` lines, those since `since`), each line once even while the log
 * rotates. With follow, then every new line until `exited` resolves and the writer has flushed, or
 * the signal aborts; a rotation meanwhile is followed (the rest of the old file, then the new one).
 */
export async function* readLogFile(path: string, options: LogOptions, exited: Promise<unknown> | undefined): AsyncGenerator<LogLine> {
  const streams = new Set<LogStream>(options.streams ?? ['stdout', 'stderr']);
  const since = options.since?.getTime();
  const wanted = (line: LogLine) => streams.has(line.stream) && (since === undefined || line.time.getTime() >= since);
  const tail = options.tail;
  const files = await openLogFiles(path);
  try {
    const position = { next: 0 };
    if (tail !== undefined) {
      // The last lines, read from the end backwards: the cost grows with `tail`, not with the log.
      const last = await readLastRecords(files.current, tail, wanted);
      const older: LogLine[][] = [];
      let missing = tail - last.lines.length;
      for (const file of files.rotated.slice().reverse()) {
        if (missing <= 0) break;
        const found = (await readLastRecords(file, missing, wanted)).lines;
        older.unshift(found);
        missing -= found.length;
      }
      for (const lines of older) yield* lines;
      position.next = last.end;
      yield* last.lines;
    } else {
      for (const file of files.rotated) {
        for await (const lines of recordsOf(file, 0, { next: 0 })) yield* lines.filter(wanted);
      }
      if (files.current) for await (const lines of recordsOf(files.current, 0, position)) yield* lines.filter(wanted);
    }
    if (!options.follow || !exited || options.signal.aborted) return;
    await Promise.all(files.rotated.splice(0).map((file) => file.close()));
    yield* followLogFile(path, files, position.next, exited, wanted, options.signal);
  } finally {
    await closeAll(files);
  }
}

/**
 * New lines of a log from `offset` in `files.current` on, until the process has exited and the
 * writer has flushed, or the signal aborts. On a rotation, the file read so far (renamed, its
 * content unchanged) is read to its end, then the new file from its start; `files.current` is
 * always the file open now.
 */
async function* followLogFile(path: string, files: LogFiles, offset: number, exited: Promise<unknown>, wanted: (line: LogLine) => boolean, signal: AbortSignal): AsyncGenerator<LogLine> {
  let processExited = false;
  void exited.then(
    () => (processExited = true),
    () => (processExited = true),
  );
  let wake: (() => void) | undefined;
  const nudge = () => wake?.();
  const watcher = watch(path, { persistent: false }, nudge);
  watcher.on('error', () => undefined);
  signal.addEventListener('abort', nudge, { once: true });
  void exited.then(nudge, nudge);
  try {
    const position = { next: offset };
    let settleStarted: number | undefined;
    let quietSince = Date.now();
    while (!signal.aborted) {
      const opened = files.current;
      if (!opened || (await inodeOf(path)) !== (await opened.stat()).ino) {
        if (opened) {
          // Rotated: finish the file read so far, then start anew.
          for await (const lines of recordsOf(opened, offset, { next: 0 })) yield* lines.filter(wanted);
          files.current = undefined;
          await opened.close();
          quietSince = Date.now();
        }
        files.current = await openIfExists(path);
        offset = 0;
      }
      if (files.current) for await (const lines of recordsOf(files.current, offset, position)) yield* lines.filter(wanted);
      if (position.next !== offset) quietSince = Date.now();
      offset = position.next;
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
    signal.removeEventListener('abort', nudge);
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
