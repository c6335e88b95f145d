import { liveProcessStartTime } from '../proc-stat.js';

/**
 * Leases carry the process that made them. A lease outlives a process that is killed in the middle
 * of a pull or a create, and with it what it protects (half-unpacked snapshots, partial blobs) until
 * it expires; a later agent ends the leases of processes that are gone, so containerd's garbage
 * collector takes that at once. Agents sharing a namespace never end each other's live leases.
 */
export const LEASE_OWNER_LABEL = 'berth.lease-owner';

/** `<pid>:<start time>`: a pid alone could be reused by another process. */
export function leaseOwner(pid: number = process.pid): string | undefined {
  const start = liveProcessStartTime(pid);
  return start === undefined ? undefined : `${pid}:${start}`;
}

const OWNER = leaseOwner();

/** Labels of a new lease: containerd ends it after `lifetimeMs` at the latest; this process owns it. */
export function leaseLabels(lifetimeMs: number): Record<string, string> {
  return { 'containerd.io/gc.expire': new Date(Date.now() + lifetimeMs).toISOString(), ...(OWNER ? { [LEASE_OWNER_LABEL]: OWNER } : {}) };
}

/** Whether the process that made a lease with this owner label is still running. */
export function ownerAlive(owner: string): boolean {
  const match = /^(\d+):(\d+)$/.exec(owner);
  if (!match) return true; // not ours to judge
  return liveProcessStartTime(Number(match[1])) === match[2];
}
