import type { Etcd3, IWatchResponse, Watcher } from 'etcd3';
import type { Logger } from 'pino';
import { sleep } from '../engine/retry.js';
import { Backoff } from './backoff.js';
import { cancelWatch, LIST_PAGE, prefixEnd, STEADY_WATCH_MS } from './etcd-watch.js';
import { ClusterKeys } from './keys.js';

/** One key's value and the revision that last changed it (for transactions conditioned on it). */
export interface CachedValue {
  value: Buffer;
  modRevision: number;
}

/**
 * Everything under one etcd prefix, in memory, kept current by a watch: listed at one revision,
 * then changed event by event; listed again after a compaction or an error. `onChange` is told
 * after every change (and after every listing). `ready` resolves after the first listing.
 */
export class FleetCache {
  readonly entries = new Map<string, CachedValue>();
  /** Keys this process deleted, with the revision of the deletion, until the watch has passed it. */
  private readonly deletedAt = new Map<string, number>();
  /** The revision the cache reflects. */
  revision = 0;
  private markReady!: () => void;
  readonly ready = new Promise<void>((resolve) => (this.markReady = resolve));
  private connected = false;
  /** When the watch last became live (0 while it is not). */
  private connectedAt = 0;

  constructor(
    private readonly etcd: Etcd3,
    readonly prefix: string,
    private readonly onChange: () => void,
    private readonly log: Logger,
  ) {}

  /** Whether the watch is live (false while etcd is away). */
  get isConnected(): boolean {
    return this.connected;
  }

  /** How long the watch has been live without a break (0 while it is not). */
  get connectedForMs(): number {
    return this.connected ? Date.now() - this.connectedAt : 0;
  }

  private setConnected(connected: boolean): void {
    if (connected && !this.connected) this.connectedAt = Date.now();
    this.connected = connected;
  }

  /** Keys directly under `dir` (a prefix ending in "/"), by their last part. */
  under(dir: string): Map<string, CachedValue> {
    const found = new Map<string, CachedValue>();
    for (const [key, value] of this.entries) {
      const leaf = ClusterKeys.leaf(dir, key);
      if (leaf !== undefined) found.set(leaf, value);
    }
    return found;
  }

  /**
   * Records a change this process made itself (at `revision`), before its watch event arrives.
   * Watch events older than it (of earlier changes to the key) then leave the key as it is.
   */
  wrote(key: string, value: Buffer | undefined, revision: number): void {
    if (value === undefined) {
      this.entries.delete(key);
      this.deletedAt.set(key, revision);
    } else {
      this.entries.set(key, { value, modRevision: revision });
      this.deletedAt.delete(key);
    }
  }

  /** Whether the cache holds a change of `key` made after `revision` (one this process wrote). */
  private holdsNewer(key: string, revision: number): boolean {
    return (this.entries.get(key)?.modRevision ?? 0) > revision || (this.deletedAt.get(key) ?? 0) > revision;
  }

  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(250, 5000);
    while (!signal.aborted) {
      try {
        await this.list();
        const watchedAt = Date.now();
        if ((await this.watch(signal)) === 'stopped') return;
        // After a watch that ran a while, list again at once; one that keeps ending waits longer each time.
        if (Date.now() - watchedAt > STEADY_WATCH_MS) {
          backoff.reset();
          continue;
        }
      } catch (error) {
        this.setConnected(false);
        this.log.warn({ err: error }, 'reading the fleet from etcd failed; trying again');
      }
      await sleep(backoff.next(), signal);
    }
  }

  private async list(): Promise<void> {
    const start = Buffer.from(this.prefix);
    const end = prefixEnd(start);
    const entries = new Map<string, CachedValue>();
    let from = start;
    let revision: number | undefined;
    for (;;) {
      const page = await this.etcd.kv.range({ key: from, range_end: end, limit: LIST_PAGE, ...(revision === undefined ? {} : { revision }) });
      revision ??= Number(page.header.revision);
      for (const kv of page.kvs) entries.set(kv.key.toString(), { value: kv.value, modRevision: Number(kv.mod_revision) });
      if (!page.more || page.kvs.length === 0) break;
      from = Buffer.concat([page.kvs[page.kvs.length - 1]!.key, Buffer.from([0])]);
    }
    this.entries.clear();
    this.deletedAt.clear();
    for (const [key, value] of entries) this.entries.set(key, value);
    this.revision = revision;
    this.setConnected(true);
    this.markReady();
    this.onChange();
  }

  private async watch(signal: AbortSignal): Promise<'relist' | 'stopped'> {
    const watcher: Watcher = await this.etcd
      .watch()
      .prefix(this.prefix)
      .startRevision(String(this.revision + 1))
      .create();
    let ended = false;
    try {
      return await new Promise((resolve) => {
        signal.addEventListener('abort', () => resolve('stopped'), { once: true });
        watcher.on('data', (response: IWatchResponse) => {
          for (const event of response.events) {
            const key = event.kv.key.toString();
            // (a deletion's mod revision is the revision that deleted the key)
            const revision = Number(event.kv.mod_revision);
            if (this.holdsNewer(key, revision)) continue;
            if (event.type === 'Put') this.entries.set(key, { value: event.kv.value, modRevision: revision });
            else this.entries.delete(key);
          }
          this.revision = Math.max(this.revision, Number(response.header.revision));
          for (const [key, revision] of this.deletedAt) if (revision <= this.revision) this.deletedAt.delete(key);
          try {
            this.onChange();
          } catch (error) {
            this.log.error({ err: error }, 'a fleet change handler failed');
          }
        });
        watcher.on('disconnected', () => this.setConnected(false));
        watcher.on('connected', () => this.setConnected(true));
        watcher.on('error', (error: Error) => {
          ended = true;
          this.log.warn({ err: error }, 'the fleet watch ended; listing again');
          resolve('relist');
        });
      });
    } finally {
      if (!ended) await cancelWatch(watcher);
    }
  }
}
