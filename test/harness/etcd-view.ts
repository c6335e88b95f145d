import type { Etcd3, Watcher } from 'etcd3';

/**
 * The keys under a prefix, kept current by a watch, with waits that end when a condition on them
 * holds (checked on every change) or fail after their deadline: tests await what agents write to
 * etcd instead of polling it.
 */
export class EtcdView {
  readonly values = new Map<string, { value: Buffer; version: number; lease: string }>();
  private readonly waiters = new Set<() => void>();
  private readonly listeners = new Set<(key: string, value: Buffer | undefined) => void>();

  private constructor(private readonly watcher: Watcher) {}

  static async open(etcd: Etcd3, prefix: string): Promise<EtcdView> {
    const listing = await etcd.getAll().prefix(prefix).exec();
    const watcher = await etcd
      .watch()
      .prefix(prefix)
      .startRevision(String(Number(listing.header.revision) + 1))
      .create();
    const view = new EtcdView(watcher);
    for (const kv of listing.kvs) view.values.set(kv.key.toString(), { value: kv.value, version: Number(kv.version), lease: String(kv.lease) });
    watcher.on('put', (kv) => {
      view.values.set(kv.key.toString(), { value: kv.value, version: Number(kv.version), lease: String(kv.lease) });
      view.changed(kv.key.toString(), kv.value);
    });
    watcher.on('delete', (kv) => {
      view.values.delete(kv.key.toString());
      view.changed(kv.key.toString(), undefined);
    });
    return view;
  }

  private changed(key: string, value: Buffer | undefined): void {
    for (const listener of [...this.listeners]) listener(key, value);
    for (const waiter of [...this.waiters]) waiter();
  }

  /** Calls `listener` with every change from now on (the value is undefined for a delete); returns what ends that. */
  onChange(listener: (key: string, value: Buffer | undefined) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /**
   * Resolves with what `check` returns once it returns something other than undefined. On timeout
   * the error carries what `explain` says of the keys then (what is still missing, and why).
   */
  until<T>(what: string, check: () => T | undefined, timeoutMs = 60_000, explain?: () => string): Promise<T> {
    const now = check();
    if (now !== undefined) return Promise.resolve(now);
    return new Promise((resolve, reject) => {
      const waiter = () => {
        const value = check();
        if (value === undefined) return;
        this.waiters.delete(waiter);
        clearTimeout(timer);
        resolve(value);
      };
      const timer = setTimeout(() => {
        this.waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}${explain ? `: ${explain()}` : ''}`));
      }, timeoutMs);
      this.waiters.add(waiter);
    });
  }

  close(): Promise<void> {
    return this.watcher.cancel();
  }
}
