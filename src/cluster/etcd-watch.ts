import type { Watcher } from 'etcd3';
import { sleep } from '../engine/retry.js';
import { ETCD_CALL_TIMEOUT_MS } from './etcd-connection.js';

/** What the fleet's list-then-watch loops (the agent's assignments, the controller's cache) share. */

/** Keys read per range request while listing. */
export const LIST_PAGE = 500;

/** A watch that lasted this long counts as healthy: the next listing comes without delay. */
export const STEADY_WATCH_MS = 10_000;

/** The end of the range of keys that start with `prefix`. */
export function prefixEnd(prefix: Buffer): Buffer {
  const end = Buffer.from(prefix);
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i]! < 0xff) {
      end[i]!++;
      return end.subarray(0, i + 1);
    }
  }
  return Buffer.from([0]);
}

/** Cancels a watch; cancelling waits for etcd's answer, so not for long when etcd is away. */
export async function cancelWatch(watcher: Watcher): Promise<void> {
  await Promise.race([watcher.cancel().catch(() => undefined), sleep(ETCD_CALL_TIMEOUT_MS)]);
}
