/**
 * Fault injection for the crash tests. With `BERTH_TEST_CRASH_POINT=<point>[:<n>]` in its
 * environment, the agent kills itself with SIGKILL the n-th time (default: the first) it reaches
 * that point, exactly as an out-of-memory kill or a power cut would end it. Without the variable
 * every call is a no-op. Each point sits between two steps whose order matters for recovery.
 */
export const CRASH_POINTS = [
  /** The task and its containers' names are saved; RunTask has not answered yet. */
  'task-saved',
  /** Events are stored and committed; watchers have not been told of them. */
  'event-saved',
  'before-create',
  /** The runtime created the container; its id is not saved yet. */
  'after-create',
  'before-start',
  /** The container started; RUNNING is not saved yet. */
  'after-start',
  'before-stop',
  /** The container stopped; STOPPED is not saved yet. */
  'after-stop',
  /** The attachment and the namespace's name are saved; CNI ADD has not run. */
  'before-network-add',
  /** CNI ADD succeeded; its result is not saved yet. */
  'after-network-add',
  /** CNI DEL succeeded; the attachment is not forgotten yet. */
  'after-network-del',
  /** Cleanup removed a container; the task is not forgotten yet. */
  'after-remove',
  /** A fleet assignment is recorded as the agent's; the engine has not taken its task yet. */
  'assignment-recorded',
] as const;

export type CrashPoint = (typeof CRASH_POINTS)[number];

const armed = parse(process.env.BERTH_TEST_CRASH_POINT);
let hits = 0;

function parse(setting: string | undefined): { point: CrashPoint; nth: number } | undefined {
  if (!setting) return undefined;
  const [point, nth = '1'] = setting.split(':');
  if (!(CRASH_POINTS as readonly string[]).includes(point ?? '') || !/^[1-9]\d*$/.test(nth)) {
    throw new Error(`BERTH_TEST_CRASH_POINT: expected <point>[:<n>] with a point among ${CRASH_POINTS.join(', ')} (got "${setting}")`);
  }
  return { point: point as CrashPoint, nth: Number(nth) };
}

export function crashPoint(point: CrashPoint): void {
  if (armed?.point !== point || ++hits < armed.nth) return;
  process.kill(process.pid, 'SIGKILL');
}
