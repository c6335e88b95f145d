import type { PullProgress } from '../../runtime/types.js';

/**
 * Pull progress for events: at most one report per `intervalMs`, none that repeats the last
 * one's bytes, and always the one that completes the pull.
 */
export function throttledProgress(intervalMs: number, report: (progress: PullProgress) => void): (progress: PullProgress) => void {
  let last = 0;
  let lastDone = -1;
  return (progress) => {
    const now = Date.now();
    const complete = progress.bytesTotal > 0 && progress.bytesDone >= progress.bytesTotal;
    if (progress.bytesDone === lastDone || (now - last < intervalMs && !complete)) return;
    last = now;
    lastDone = progress.bytesDone;
    report(progress);
  };
}
