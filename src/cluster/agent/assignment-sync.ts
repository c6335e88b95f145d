import type { Etcd3, IKeyValue, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { sleep } from '../../engine/retry.js';
import { cancelWatch, LIST_PAGE, prefixEnd, STEADY_WATCH_MS } from '../etcd-watch.js';
import { ClusterKeys } from '../keys.js';
import type { Membership } from '../membership.js';
import { RetryLaterError, type AssignmentApplier } from './assignment-applier.js';
import { Backoff } from '../backoff.js';
import type { MemberStore } from './member-store.js';

/** What a task id looks like (RunTask's rule). */
const TASK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$/;

/**
 * Follows the agent's assignments in etcd the way an informer does: it watches from the revision
 * it last applied (kept in the member store), so changes made while the agent was away or cut off
 * are applied in order; when that revision has been compacted, or the first time, it lists every
 * assignment at one revision, reconciles (runs what is new, stops what is gone) and watches from
 * there. Never throws; retries with back-off while etcd is unreachable.
 */
export class AssignmentSync {
  private readonly dir: string;

  constructor(
    private readonly etcd: Etcd3,
    keys: ClusterKeys,
    agentId: string,
    private readonly applier: AssignmentApplier,
    private readonly store: MemberStore,
    private readonly membership: Membership,
    private readonly log: Logger,
  ) {
    this.dir = keys.assignmentsOf(agentId);
  }

  /** Follows until `signal` aborts; `listFirst`: list every assignment before watching, whatever was applied. */
  async run(signal: AbortSignal, listFirst = false): Promise<void> {
    const backoff = new Backoff(250, 5000);
    let mustList = listFirst || this.store.appliedRevision === 0;
    while (!signal.aborted) {
      try {
        if (mustList) await this.list();
        mustList = true;
        const watchedAt = Date.now();
        const outcome = await this.watch(this.store.appliedRevision + 1, signal);
        if (outcome === 'stopped') return;
        this.log.info({ revision: this.store.appliedRevision, why: outcome }, 'listing the assignments again');
        // After a watch that ran a while, at once; a watch that keeps ending, or work the engine
        // cannot take yet, waits longer each time.
        if (outcome === 'relist' && Date.now() - watchedAt > STEADY_WATCH_MS) {
          backoff.reset();
          continue;
        }
      } catch (error) {
        this.membership.failed('assignments', (error as Error).message);
        this.log.warn({ err: error }, 'following the assignments failed; trying again');
      }
      await sleep(backoff.next(), signal);
    }
  }

  /** Every assignment at one revision, applied; assigned tasks without one are released. */
  private async list(): Promise<void> {
    const start = Buffer.from(this.dir);
    const end = prefixEnd(start);
    let from: Buffer = start;
    let revision: number | undefined;
    const present = new Set<string>();
    for (;;) {
      const page = await this.etcd.kv.range({ key: from, range_end: end, limit: LIST_PAGE, ...(revision === undefined ? {} : { revision }) });
      revision ??= Number(page.header.revision);
      for (const kv of page.kvs) {
        const taskId = ClusterKeys.leaf(this.dir, kv.key.toString());
        if (taskId === undefined) continue;
        present.add(taskId);
        this.applyOne(taskId, kv.value, Number(kv.mod_revision));
      }
      if (!page.more || page.kvs.length === 0) break;
      from = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    this.applier.releaseAllBut(present);
    this.store.appliedRevision = revision;
    this.membership.appliedRevision = revision;
  }

  /**
   * Applies changes from `fromRevision` until the watch must start over: 'relist' after a
   * compaction or cancellation, 'retry' when an assignment could not be applied yet, 'stopped'
   * when `signal` aborted.
   */
  private async watch(fromRevision: number, signal: AbortSignal): Promise<'relist' | 'retry' | 'stopped'> {
    const watcher: Watcher = await this.etcd.watch().prefix(this.dir).startRevision(String(fromRevision)).withPreviousKV().create();
    this.membership.ok('assignments');
    let ended = false;
    // Once an assignment could not be applied, what the watch still brings until it is cancelled
    // is left alone: the revision applied must not pass the one that failed.
    let failed = false;
    try {
      return await new Promise((resolve) => {
        const onAbort = () => resolve('stopped');
        signal.addEventListener('abort', onAbort, { once: true });
        watcher.on('data', (response: IWatchResponse) => {
          if (failed) return;
          try {
            for (const event of response.events) {
              const taskId = ClusterKeys.leaf(this.dir, event.kv.key.toString());
              if (taskId !== undefined) this.applyOne(taskId, event.type === 'Put' ? event.kv.value : undefined, Number(event.kv.mod_revision));
              this.store.appliedRevision = Number(event.kv.mod_revision);
            }
            this.store.appliedRevision = Math.max(this.store.appliedRevision, Number(response.header.revision));
            this.membership.appliedRevision = this.store.appliedRevision;
          } catch (error) {
            if (!(error instanceof RetryLaterError)) this.log.error({ err: error }, 'applying an assignment failed');
            failed = true;
            resolve('retry');
          }
        });
        watcher.on('disconnected', (error: Error) => this.membership.failed('assignments', `watch disconnected: ${error.message}`));
        watcher.on('connected', () => this.membership.ok('assignments'));
        watcher.on('error', (error: Error) => {
          // etcd cancelled the watch (its revision compacted): the watcher is gone already.
          ended = true;
          this.log.warn({ err: error }, 'the assignments watch ended');
          resolve('relist');
        });
      });
    } finally {
      if (!ended) await cancelWatch(watcher);
    }
  }

  private applyOne(taskId: string, value: IKeyValue['value'] | undefined, revision: number): void {
    // A key that cannot name a task gets no task and no report (its report's key would carry it).
    if (!TASK_ID.test(taskId)) {
      this.log.warn({ key: `${this.dir}${taskId.slice(0, 128)}` }, 'an assignment key that is not a task id is ignored');
      return;
    }
    this.applier.apply(taskId, value, revision);
  }
}
