/** Exponential back-off with jitter between `minMs` and `maxMs`; `reset` after a success. */
export class Backoff {
  private attempt = 0;

  constructor(
    private readonly minMs: number,
    private readonly maxMs: number,
  ) {}

  next(): number {
    const ms = Math.min(this.maxMs, this.minMs * 2 ** this.attempt);
    this.attempt = Math.min(this.attempt + 1, 30);
    return ms / 2 + Math.random() * (ms / 2);
  }

  reset(): void {
    this.attempt = 0;
  }
}
