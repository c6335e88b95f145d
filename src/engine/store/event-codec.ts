import type { EventChange } from '../events/events.js';
import type { ContainerSnapshot } from '../model/task-snapshot.js';

const SNAPSHOT_DATES = ['healthCheckedAt', 'lastRestartedAt', 'pulledAt', 'createdAt', 'startedAt', 'finishedAt'] as const satisfies readonly (keyof ContainerSnapshot)[];

/** An event's change as stored: JSON, dates as ISO strings. */
export function encodeChange(change: EventChange): string {
  return JSON.stringify(change);
}

export function decodeChange(text: string): EventChange {
  const change = JSON.parse(text) as EventChange;
  if (change.type === 'container') {
    const container = change.container as unknown as Record<string, unknown>;
    for (const field of SNAPSHOT_DATES) {
      const value = container[field];
      if (typeof value === 'string') container[field] = new Date(value);
    }
  }
  return change;
}
