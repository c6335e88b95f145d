import type { Event } from '../../gen/berth/agent/v1/event.js';
import { TaskStatus } from '../../gen/berth/agent/v1/task.js';
import { EXIT } from '../client.js';
import type { Command } from '../command.js';
import { TaskBoard } from '../task-board.js';

/** Pull progress lines per container at most this often, when the output is not a terminal. */
const PULL_LINE_INTERVAL_MS = 1000;

export const watchCommand: Command = {
  name: 'watch',
  summary: 'a live view of tasks and containers, with progress bars for image pulls',
  usage: `berthctl watch [TASK...] [--until-stopped]

      --until-stopped  exit once every task watched has stopped (needs TASK)
On a terminal the view is redrawn in place (Ctrl-C to stop); otherwise each change is printed as a
line.`,
  options: { 'until-stopped': { type: 'boolean' } },
  async run(ctx, values, positionals) {
    const board = new TaskBoard();
    const live = Boolean(ctx.stdout.isTTY);
    const untilStopped = Boolean(values['until-stopped']) && positionals.length > 0;
    let drawn = 0;
    let timer: NodeJS.Timeout | undefined;
    const draw = () => {
      timer = undefined;
      // Lines cut to the terminal's width, so that each takes one row and the redraw lands where it should.
      const width = ctx.stdout.columns || 200;
      const lines = board.lines().map((line) => (line.length > width ? `${line.slice(0, width - 1)}…` : line));
      ctx.stdout.write(`${drawn > 0 ? `\x1b[${drawn}F\x1b[J` : ''}${lines.join('\n')}\n`);
      drawn = lines.length;
    };
    // At most ten redraws a second, however fast the events come.
    const redraw = () => {
      timer ??= setTimeout(draw, 100);
    };
    const lastPullLine = new Map<string, number>();
    const allStopped = () => positionals.every((id) => board.tasks.get(id)?.knownStatus === TaskStatus.TASK_STATUS_STOPPED);

    /** Applies one event to the board, and draws or prints it. */
    const show = async (event: Event): Promise<void> => {
      if (!board.apply(event)) {
        // A task that began after the snapshot: fetch it whole, then apply the change again.
        const task = await ctx.client.getTask(event.taskId).catch(() => undefined);
        if (task) board.load([task]);
      }
      if (live) redraw();
      else {
        const line = board.describe(event);
        const pullKey = event.change?.$case === 'pull' ? `${event.taskId}/${event.change.value.containerName}` : undefined;
        const now = Date.now();
        const complete = event.change?.$case === 'pull' && event.change.value.bytesTotal > 0 && event.change.value.bytesDone >= event.change.value.bytesTotal;
        if (line && (!pullKey || complete || now - (lastPullLine.get(pullKey) ?? 0) >= PULL_LINE_INTERVAL_MS)) {
          if (pullKey) lastPullLine.set(pullKey, now);
          ctx.stdout.write(`${line}\n`);
        }
      }
    };

    // An agent that cannot be reached is an error at once; once watching, the watch carries on
    // across dropped connections and agent restarts, each event once.
    await ctx.client.getAgentInfo();
    const watch = ctx.client.watch({ snapshot: true, taskIds: positionals, signal: ctx.signal });
    try {
      for await (const item of watch) {
        if (item.kind === 'snapshot') {
          board.reload(item.tasks);
          if (item.resync && !live) ctx.stdout.write(`(events were missed: ${item.reason}; the tasks as they are now)\n`);
          if (live) draw();
          else for (const line of board.lines()) ctx.stdout.write(`${line}\n`);
        } else if (item.kind === 'event') {
          await show(item.event);
        }
        if (untilStopped && allStopped()) break;
      }
    } finally {
      if (timer) {
        clearTimeout(timer);
        draw();
      }
    }
    return EXIT.ok;
  },
};
