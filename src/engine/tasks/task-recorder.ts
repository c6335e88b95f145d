import type { Logger } from 'pino';
import { StoreUnavailableError } from '../errors.js';
import type { EventLog } from '../events/event-log.js';
import type { EventChange } from '../events/events.js';
import type { ManagedContainer } from './managed-container.js';
import type { TaskState } from '../store/records.js';
import type { StateStore } from '../store/state-store.js';
import type { TaskDefinition } from '../model/task-definition.js';

/**
 * Where one task's changes go: each change is saved with the event that reports it in one
 * transaction, so the store never holds an event without its state or a state without its event.
 * While the store takes no writes, changes stay in memory and `resave` saves the task whole later.
 */
export class TaskRecorder {
  /** The sequence of the task's last event. */
  lastSequence = 0;
  /** A change could not be saved (the store took no writes). */
  private unsaved = false;
  /** The agent is shutting down: a call still in flight changes nothing on disk. */
  private closed = false;

  constructor(
    private readonly taskId: string,
    private readonly store: StateStore,
    private readonly events: EventLog,
    private readonly log: Logger,
    /** The task's own state, as the store keeps it. */
    private readonly taskState: () => TaskState,
  ) {}

  /** Whether the store takes writes: nothing new may start while it does not. */
  get writable(): boolean {
    return this.store.writable;
  }

  close(): void {
    this.closed = true;
  }

  /**
   * Runs `work` in one transaction: what it records lands in one commit. When the store cannot
   * take the commit, the changes stay in memory, as a single change's do (see `saving`).
   */
  inOneCommit(work: () => void): void {
    this.saving(() => this.store.transaction(work));
  }

  /** Saves a new task with its containers and records its first event. Throws when the store cannot. */
  insert(definition: TaskDefinition, containers: Iterable<ManagedContainer>, firstEvent: EventChange): void {
    this.store.transaction(() => {
      this.store.insertTask(
        definition,
        this.taskState(),
        [...containers].map((c) => c.record()),
      );
      this.event(firstEvent);
    });
  }

  /** Appends an event and saves the task's state, and the container's when given. */
  event(change: EventChange, container?: ManagedContainer): void {
    if (this.closed) return;
    this.saving(() =>
      this.store.transaction(() => {
        this.lastSequence = this.events.append(this.taskId, change).sequence;
        if (container) this.saveContainer(container);
        this.store.saveTaskState(this.taskId, this.taskState());
      }),
    );
  }

  /** Saves a container's state without an event (the pause container, which clients do not see). */
  quietly(container: ManagedContainer): void {
    if (this.closed) return;
    this.saving(() => this.store.transaction(() => this.saveContainer(container)));
  }

  /**
   * The store takes writes again: when a change was not saved, saves every container as it is now
   * and, in the same transaction, what `report` records (an event with the task's state).
   */
  resave(containers: Iterable<ManagedContainer>, report: () => void): void {
    if (this.closed || !this.unsaved) return;
    this.unsaved = false;
    this.saving(() =>
      this.store.transaction(() => {
        for (const container of containers) this.saveContainer(container);
        report();
      }),
    );
  }

  private saveContainer(container: ManagedContainer): void {
    const saved = container.record();
    this.store.saveContainer(this.taskId, saved.name, saved.runtimeId, saved.state);
  }

  /**
   * Runs a write; when the store cannot take it, the change stays in memory only (and is saved by
   * `resave` once the store takes writes again), instead of failing whatever caused it.
   */
  private saving(write: () => void): void {
    try {
      write();
    } catch (error) {
      if (!(error instanceof StoreUnavailableError)) throw error;
      if (!this.unsaved) this.log.warn({ reason: error.reason }, 'the state store cannot be written; the task keeps its state in memory until it can');
      this.unsaved = true;
    }
  }
}
