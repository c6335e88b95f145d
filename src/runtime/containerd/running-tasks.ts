import { mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { Process, Status } from '../../gen/containerd/types/task.js';
import { liveProcessStartTime } from '../proc-stat.js';

/** Processes checked in /proc per turn of the event loop. */
const CHECKS_PER_TURN = 200;
/** The saved tasks are written at most this often (a change waits for the next write). */
const SAVE_DELAY_MS = 1000;
/** A saved file larger than this is not read (1,000 tasks take about 200 KB). */
const MAX_SAVED_BYTES = 32 * 1024 * 1024;

export interface RunningTasksOptions {
  /**
   * Where the tasks are saved (written at most once a second, and at close), so that the first
   * listing after a restart, even after a SIGKILL, asks containerd only about the tasks whose
   * process changed meanwhile. None: nothing is saved.
   */
  file?: string;
  procRoot?: string;
}

/** The saved form: each task's pid, start time and labels, valid only on the boot that wrote it. */
interface SavedTasks {
  bootId: string;
  tasks: Record<string, { pid: number; startTime: string; labels: Record<string, string> }>;
}

interface RunningTask {
  process: Process;
  /** Field 22 of /proc/<pid>/stat when it was seen running: the pid's next process has another. */
  startTime: string;
  labels: Record<string, string>;
}

/** A container's task as containerd answered it (undefined: the container has none). */
export interface TaskAnswer {
  containerId: string;
  /** The container's cgroup, as its spec names it. */
  cgroupPath: string;
  labels: Record<string, string>;
  process: Process | undefined;
}

/**
 * The tasks last seen running, each with its process as /proc showed it then, so that a listing
 * asks containerd only about the tasks whose process is no longer that one. containerd's Tasks.List
 * asks every task's shim for its state, one after the other: with 1,000 containers that is 1,000
 * round trips through containerd and the shims, where reading 1,000 small files of /proc is a few
 * milliseconds. (containerd's CRI plugin likewise answers its listings from a store of its own.)
 *
 * A task is remembered only while its process is found in /proc, alive and in the container's own
 * cgroup, so a pid that names another process here (another pid namespace) is never trusted.
 * Anything else about a task (created, stopped, paused since) is asked of containerd each time.
 * The tasks are saved to a file, so that the first listing after a restart (recovery) is as cheap;
 * each saved task is checked against /proc in the same way before it is answered.
 */
export class RunningTasks {
  private readonly tasks = new Map<string, RunningTask>();
  private readonly procRoot: string;
  private saveTimer: NodeJS.Timeout | undefined;
  private unsaved = false;

  constructor(private readonly options: RunningTasksOptions = {}) {
    this.procRoot = options.procRoot ?? '/proc';
    this.load();
  }

  get size(): number {
    return this.tasks.size;
  }

  /**
   * Remembers a task as containerd answered it, when it is running and its process is found in
   * the container's cgroup; otherwise forgets it.
   */
  remember({ containerId, cgroupPath, labels, process }: TaskAnswer): void {
    const startTime = process?.status === Status.RUNNING && process.pid > 0 ? liveProcessStartTime(process.pid, this.procRoot) : undefined;
    if (!process || startTime === undefined || !this.isInCgroup(process.pid, cgroupPath)) {
      this.forget(containerId);
      return;
    }
    const known = this.tasks.get(containerId);
    this.tasks.set(containerId, { process, startTime, labels });
    if (known?.startTime !== startTime || known.process.pid !== process.pid) this.changed();
  }

  /** remember() for each answer, a slice of them per turn of the event loop. */
  async rememberAll(answers: readonly TaskAnswer[]): Promise<void> {
    for (const [i, answer] of answers.entries()) {
      this.remember(answer);
      if ((i + 1) % CHECKS_PER_TURN === 0) await nextTurn();
    }
  }

  forget(containerId: string): void {
    if (this.tasks.delete(containerId)) this.changed();
  }

  /**
   * The remembered task of each of these containers whose process is still the one seen running;
   * the others are forgotten (their process ended or is a zombie: containerd is to be asked).
   * Reads /proc in slices, so that a listing of thousands never holds the event loop long.
   */
  async stillRunning(containerIds: readonly string[]): Promise<Map<string, Process>> {
    const running = new Map<string, Process>();
    let checked = 0;
    for (const id of containerIds) {
      const task = this.tasks.get(id);
      if (!task) continue;
      if (liveProcessStartTime(task.process.pid, this.procRoot) === task.startTime) running.set(id, task.process);
      else this.forget(id);
      if (++checked % CHECKS_PER_TURN === 0) await nextTurn();
    }
    return running;
  }

  /** Forgets the containers with every one of these labels that a listing with them did not return (removed elsewhere). */
  forgetUnlisted(labels: Record<string, string>, listedIds: ReadonlySet<string>): void {
    const filter = Object.entries(labels);
    for (const [id, task] of this.tasks) {
      if (!listedIds.has(id) && filter.every(([key, value]) => task.labels[key] === value)) this.forget(id);
    }
  }

  /** Writes what changed since the last write, now. */
  close(): void {
    clearTimeout(this.saveTimer);
    this.saveTimer = undefined;
    if (this.unsaved) this.save();
  }

  private changed(): void {
    if (!this.options.file) return;
    this.unsaved = true;
    if (this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.save();
    }, SAVE_DELAY_MS);
    this.saveTimer.unref();
  }

  /** Writes every task (a few hundred KB at most: synchronously, through a file renamed over the last). */
  private save(): void {
    const file = this.options.file;
    const bootId = this.bootId();
    if (!file || bootId === undefined) return;
    const saved: SavedTasks = { bootId, tasks: {} };
    for (const [id, task] of this.tasks) saved.tasks[id] = { pid: task.process.pid, startTime: task.startTime, labels: task.labels };
    try {
      mkdirSync(dirname(file), { recursive: true });
      writeFileSync(`${file}.tmp`, JSON.stringify(saved));
      renameSync(`${file}.tmp`, file);
      this.unsaved = false;
    } catch {
      // Not saved: the next listing after a restart asks containerd about every task, as with none saved.
    }
  }

  /**
   * The tasks a previous run saved on this boot. Each is still checked against /proc before it is
   * answered; a file of another boot, unreadable, too large or not of this form is ignored.
   */
  private load(): void {
    const file = this.options.file;
    if (!file) return;
    let saved: Partial<SavedTasks>;
    try {
      if (statSync(file).size > MAX_SAVED_BYTES) return;
      saved = JSON.parse(readFileSync(file, 'utf8')) as Partial<SavedTasks>;
    } catch {
      return;
    }
    if (typeof saved !== 'object' || saved === null || saved.bootId !== this.bootId() || typeof saved.tasks !== 'object' || saved.tasks === null) return;
    for (const [id, task] of Object.entries(saved.tasks)) {
      if (!isSavedTask(task)) continue;
      this.tasks.set(id, { process: Process.fromPartial({ id, pid: task.pid, status: Status.RUNNING }), startTime: task.startTime, labels: task.labels });
    }
  }

  private bootId(): string | undefined {
    try {
      return readFileSync(`${this.procRoot}/sys/kernel/random/boot_id`, 'utf8').trim();
    } catch {
      return undefined;
    }
  }

  private isInCgroup(pid: number, cgroupPath: string): boolean {
    try {
      return readFileSync(`${this.procRoot}/${pid}/cgroup`, 'utf8')
        .split('\n')
        .some((line) => line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1) === cgroupPath);
    } catch {
      return false;
    }
  }
}

function isSavedTask(task: unknown): task is SavedTasks['tasks'][string] {
  if (typeof task !== 'object' || task === null) return false;
  const { pid, startTime, labels } = task as Record<string, unknown>;
  return (
    Number.isSafeInteger(pid) &&
    (pid as number) > 0 &&
    typeof startTime === 'string' &&
    /^\d+$/.test(startTime) &&
    typeof labels === 'object' &&
    labels !== null &&
    Object.values(labels).every((value) => typeof value === 'string')
  );
}
