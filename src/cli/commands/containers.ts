import { parseDuration } from '../../config/duration.js';
import { TaskStatus, type Task } from '../../gen/berth/agent/v1/task.js';
import { status } from '@grpc/grpc-js';
import { BerthError } from '../../client/errors.js';
import { LogStream, type LogsResponse, type StatsResponse } from '../../gen/berth/agent/v1/task_service.js';
import { CliError, EXIT } from '../client.js';
import type { Command, CommandContext } from '../command.js';
import { bytes, table } from '../format.js';
import { runInteractiveExec } from './sessions.js';

/** The container a command means: the one named, or the task's only one. */
async function containerOf(ctx: CommandContext, taskId: string, name: string | undefined, command: string): Promise<string> {
  if (name) return name;
  const task = await ctx.client.getTask(taskId);
  if (task.containers.length === 1) return task.containers[0]!.name;
  throw new CliError(`task ${taskId} has ${task.containers.length} containers (${task.containers.map((c) => c.name).join(', ')}): name one, berthctl ${command} ${taskId} CONTAINER`, EXIT.usage);
}

/** --since: a duration back from now ("10m", "1h30m") or a time ("2026-11-28T15:00:00Z"). */
export function parseSince(value: string, now = Date.now()): Date {
  const ms = parseDuration(value);
  if (ms !== undefined && !/^\d+$/.test(value)) return new Date(now - ms);
  const time = new Date(value);
  if (Number.isNaN(time.getTime())) throw new CliError(`--since must be a duration such as 10m or a time such as 2026-11-28T15:00:00Z (got "${value}")`, EXIT.usage);
  return time;
}

/** Reads a server stream until it ends, is cancelled by the user (SIGINT), or fails. */
async function drain<T>(ctx: CommandContext, stream: AsyncIterable<T>, onMessage: (message: T) => void): Promise<void> {
  try {
    for await (const message of stream) onMessage(message);
  } catch (error) {
    if (!(ctx.signal.aborted && error instanceof BerthError && error.code === status.CANCELLED)) throw error;
  }
}

export const logsCommand: Command = {
  name: 'logs',
  summary: "print a container's output (stdout to stdout, stderr to stderr)",
  usage: `berthctl logs TASK [CONTAINER] [-f] [--tail N] [--since WHEN] [-t]

  -f, --follow       keep printing new lines until the container exits (Ctrl-C to stop)
      --tail N       only the last N lines
      --since WHEN   only lines since a duration ago (10m, 1h30m) or a time (RFC 3339)
  -t, --timestamps   start each line with its time
      --stdout       only standard output
      --stderr       only standard error
CONTAINER may be left out when the task has one container.`,
  options: {
    follow: { type: 'boolean', short: 'f' },
    tail: { type: 'string' },
    since: { type: 'string' },
    timestamps: { type: 'boolean', short: 't' },
    stdout: { type: 'boolean' },
    stderr: { type: 'boolean' },
  },
  async run(ctx, values, positionals) {
    const [taskId, name] = positionals;
    if (!taskId || positionals.length > 2) throw new CliError('usage: berthctl logs TASK [CONTAINER] [-f] [--tail N] [--since WHEN]', EXIT.usage);
    const tail = values.tail === undefined ? undefined : Number(values.tail);
    if (tail !== undefined && (!Number.isInteger(tail) || tail < 0)) throw new CliError(`--tail must be a number of lines (got "${String(values.tail)}")`, EXIT.usage);
    const since = values.since === undefined ? undefined : parseSince(values.since as string);
    const streams = [...(values.stdout ? [LogStream.LOG_STREAM_STDOUT] : []), ...(values.stderr ? [LogStream.LOG_STREAM_STDERR] : [])];
    const containerName = await containerOf(ctx, taskId, name, 'logs');
    const stream = ctx.client.logs({ taskId, containerName, follow: Boolean(values.follow), tail, since, streams }, { signal: ctx.signal });
    await drain(ctx, stream, (message: LogsResponse) => {
      for (const line of message.lines) {
        const out = line.stream === LogStream.LOG_STREAM_STDERR ? ctx.stderr : ctx.stdout;
        const prefix = values.timestamps ? `${line.time?.toISOString() ?? ''} ` : '';
        out.write(prefix);
        out.write(line.text);
        if (!line.partial) out.write('\n');
      }
    });
    return EXIT.ok;
  },
};

export const execCommand: Command = {
  name: 'exec',
  summary: 'run a command in a running container (-it for a terminal); exits with its exit code',
  usage: `berthctl exec TASK CONTAINER [-i] [-t] [-e NAME=VALUE]... [-u USER] [-w DIR] [--timeout DURATION] -- COMMAND [ARG...]

  -i, --interactive   give the command berthctl's standard input (a pipe or the terminal)
  -t, --tty           give the command a terminal: the local one goes raw (Ctrl-C and Ctrl-D reach
                      the command), and its size follows the local one
  -e, --env N=V       add a variable to the command's environment (with -i or -t)
  -u, --user USER     run as USER, UID, USER:GROUP or UID:GID (with -i or -t)
  -w, --workdir DIR   run in DIR (with -i or -t)
      --timeout D     without -i or -t: stop waiting after D (default 30s, at most 10m); exit 124 then
The command is not run through a shell: use sh -c '…' for one. berthctl exits with its exit code.
Without -i or -t the command gets no input and its output (stdout and stderr as they arrived) is
printed when it has finished; with either, its output streams as it comes (stderr to stderr unless
it has a terminal). Without a terminal, Ctrl-C sends SIGINT to the command, a second one gives up.`,
  options: {
    timeout: { type: 'string' },
    interactive: { type: 'boolean', short: 'i' },
    tty: { type: 'boolean', short: 't' },
    env: { type: 'string', short: 'e', multiple: true },
    user: { type: 'string', short: 'u' },
    workdir: { type: 'string', short: 'w' },
  },
  async run(ctx, values, positionals, rest) {
    const [taskId, containerName] = positionals;
    const command = positionals.length > 2 ? positionals.slice(2).concat(rest) : rest;
    if (!taskId || !containerName || command.length === 0) throw new CliError('usage: berthctl exec TASK CONTAINER [-i] [-t] -- COMMAND [ARG...]', EXIT.usage);
    const interactive = Boolean(values.interactive) || Boolean(values.tty);
    const env = (values.env as string[] | undefined) ?? [];
    if (!interactive && (env.length > 0 || values.user !== undefined || values.workdir !== undefined)) throw new CliError('-e, -u and -w go with -i or -t', EXIT.usage);
    if (interactive) {
      if (values.timeout !== undefined) throw new CliError('--timeout is for exec without -i or -t', EXIT.usage);
      const environment: Record<string, string> = {};
      for (const entry of env) {
        const at = entry.indexOf('=');
        if (at <= 0) throw new CliError(`-e takes NAME=VALUE (got "${entry}")`, EXIT.usage);
        environment[entry.slice(0, at)] = entry.slice(at + 1);
      }
      return runInteractiveExec(ctx, {
        taskId,
        containerName,
        command,
        tty: Boolean(values.tty),
        stdin: Boolean(values.interactive),
        environment,
        user: values.user as string | undefined,
        workingDirectory: values.workdir as string | undefined,
      });
    }
    const timeoutMs = values.timeout === undefined ? 30_000 : parseDuration(values.timeout as string);
    if (timeoutMs === undefined) throw new CliError(`--timeout must be a duration such as 30s (got "${String(values.timeout)}")`, EXIT.usage);
    try {
      const result = await ctx.client.exec({ taskId, containerName, command, timeoutMs });
      ctx.stdout.write(result.output);
      return result.exitCode;
    } catch (error) {
      // Like timeout(1): 124 when the command did not finish in time.
      if (error instanceof BerthError && error.code === status.DEADLINE_EXCEEDED) {
        ctx.stderr.write(`berthctl: ${error.message || 'the command timed out'}\n`);
        return 124;
      }
      throw error;
    }
  },
};

interface StatsRow {
  task: string;
  container: string;
  cpuPercent: number;
  memory: number;
  limit: number;
  rx: number;
  tx: number;
  pids: number;
}

function statsTable(rows: StatsRow[]): string {
  return table(
    ['TASK', 'CONTAINER', 'CPU %', 'MEM USAGE / LIMIT', 'MEM %', 'NET I/O', 'PIDS'],
    rows.map((r) => [
      r.task,
      r.container,
      `${r.cpuPercent.toFixed(2)}%`,
      `${bytes(r.memory)} / ${bytes(r.limit)}`,
      `${r.limit > 0 ? ((r.memory / r.limit) * 100).toFixed(2) : '0.00'}%`,
      `${bytes(r.rx)} / ${bytes(r.tx)}`,
      String(r.pids),
    ]),
  );
}

export const statsCommand: Command = {
  name: 'stats',
  summary: "show running containers' CPU, memory, network and processes, live",
  usage: `berthctl stats [TASK...] [--no-stream] [--interval DURATION]

      --no-stream    print one sample and exit
      --interval D   time between samples (default 1s)
Without TASK, every running task.`,
  options: { 'no-stream': { type: 'boolean' }, interval: { type: 'string' } },
  async run(ctx, values, positionals) {
    const intervalMs = values.interval === undefined ? 1000 : parseDuration(values.interval);
    if (intervalMs === undefined) throw new CliError(`--interval must be a duration such as 2s (got "${String(values.interval)}")`, EXIT.usage);
    let taskIds = positionals;
    if (taskIds.length === 0) {
      const listed = await ctx.client.listAllTasks({ statuses: [TaskStatus.TASK_STATUS_RUNNING] });
      taskIds = listed.map((t: Task) => t.definition!.id);
      if (taskIds.length === 0) {
        ctx.stdout.write('no running tasks\n');
        return EXIT.ok;
      }
    }
    const stream = !values['no-stream'];
    const latest = new Map<string, StatsRow>();
    const live = Boolean(ctx.stdout.isTTY) && stream;
    let drawn = 0;
    const render = () => {
      const text = statsTable([...latest.values()].sort((a, b) => `${a.task}/${a.container}`.localeCompare(`${b.task}/${b.container}`)));
      if (live) {
        ctx.stdout.write(`${drawn > 0 ? `\x1b[${drawn}F\x1b[J` : ''}${text}\n`);
        drawn = text.split('\n').length;
      } else {
        ctx.stdout.write(`${text}\n${stream ? '\n' : ''}`);
      }
    };
    let pendingRender: NodeJS.Timeout | undefined;
    await Promise.all(
      taskIds.map((taskId) =>
        drain(ctx, ctx.client.stats({ taskId, stream, interval: { seconds: Math.floor(intervalMs / 1000), nanos: (intervalMs % 1000) * 1e6 } }, { signal: ctx.signal }), (message: StatsResponse) => {
          for (const c of message.containers) {
            latest.set(`${taskId}/${c.containerName}`, {
              task: taskId,
              container: c.containerName,
              cpuPercent: c.cpuPercent,
              memory: c.memoryUsageBytes,
              limit: c.memoryLimitBytes,
              rx: c.networkRxBytes,
              tx: c.networkTxBytes,
              pids: c.pids,
            });
          }
          // The tasks' samples arrive close together: one table for them.
          if (stream) pendingRender ??= setTimeout(() => ((pendingRender = undefined), render()), 50);
        }),
      ),
    );
    clearTimeout(pendingRender);
    if (!stream) render();
    return EXIT.ok;
  },
};
