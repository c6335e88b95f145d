import { EventEmitter } from 'node:events';
import type { Etcd3 } from 'etcd3';

/** A stand-in for etcd in unit tests: an empty listing at revision 1, then a watch whose responses the test sends. */
export function scriptedEtcd() {
  let listening!: () => void;
  /** Resolves once something listens to the watch. */
  const watching = new Promise<void>((resolve) => (listening = resolve));
  const watcher = Object.assign(new EventEmitter(), { cancel: async () => undefined });
  watcher.on('newListener', (event: string) => {
    if (event === 'data') setImmediate(listening);
  });
  const builder = { prefix: () => builder, startRevision: () => builder, withPreviousKV: () => builder, create: async () => watcher };
  const etcd = {
    kv: { range: async () => ({ kvs: [], more: false, header: { revision: '1' } }) },
    watch: () => builder,
  } as unknown as Etcd3;
  const send = (revision: number, events: { type: 'Put' | 'Delete'; key: string; value?: string | Uint8Array; modRevision: number }[]) =>
    watcher.emit('data', {
      header: { revision: String(revision) },
      events: events.map((e) => ({ type: e.type, kv: { key: Buffer.from(e.key), value: Buffer.from(e.value ?? ''), mod_revision: String(e.modRevision) } })),
    });
  return { etcd, watching, send };
}
