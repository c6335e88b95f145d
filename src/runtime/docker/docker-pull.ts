import type { PullProgress } from '../types.js';

export interface DockerPullMessage {
  id?: string;
  status?: string;
  error?: string;
  errorDetail?: { message?: string };
  progressDetail?: { current?: number; total?: number };
}

/** Sums per-layer progress messages of a Docker pull into bytes done / total. */
export class PullProgressTracker {
  private readonly layers = new Map<string, { done: number; total: number }>();

  /** Records one message; returns the new totals when it changed them. */
  record(message: DockerPullMessage): PullProgress | undefined {
    if (!message.id) return undefined;
    const layer = this.layers.get(message.id) ?? { done: 0, total: 0 };
    const status = message.status ?? '';
    if (status === 'Downloading' && message.progressDetail?.total) {
      layer.done = message.progressDetail.current ?? layer.done;
      layer.total = message.progressDetail.total;
    } else if (status === 'Download complete' || status === 'Already exists' || status === 'Pull complete') {
      layer.done = layer.total;
    } else {
      return undefined;
    }
    this.layers.set(message.id, layer);
    return this.totals();
  }

  totals(): PullProgress {
    let bytesDone = 0;
    let bytesTotal = 0;
    for (const layer of this.layers.values()) {
      bytesDone += layer.done;
      bytesTotal += layer.total;
    }
    return { bytesDone, bytesTotal };
  }
}
