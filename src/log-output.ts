import { pino } from 'pino';

/**
 * Where the agent's log lines go: its standard output (journald under systemd), written in the
 * background so that a slow reader never holds up the event loop. The lines waiting for the reader
 * are held up to a bound: a reader that stops reading (a full pipe, a journald that hangs) would
 * otherwise grow the agent's memory without end. Past the bound a line is dropped and counted
 * (berth_log_lines_dropped_total); logging goes on once the reader catches up.
 */

/** What the lines waiting for the log's reader may take at most. */
export const LOG_BUFFER_MAX_BYTES = 8 * 1024 * 1024;

let dropped = 0;

/** The agent's standard output as a log destination, holding at most `maxBufferBytes` unwritten. */
export function standardOutputLog(maxBufferBytes = LOG_BUFFER_MAX_BYTES): ReturnType<typeof pino.destination> {
  // Flushed synchronously when the process exits (pino does that for a destination that is not sync).
  const destination = pino.destination({ dest: 1, sync: false, maxLength: maxBufferBytes });
  destination.on('drop', () => {
    dropped++;
  });
  return destination;
}

/** How many log lines this process dropped because its standard output was not read in time. */
export function droppedLogLines(): number {
  return dropped;
}
