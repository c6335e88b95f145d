/**
 * Token buckets, one per key: `burst` requests at once, refilled at `perSecond`. What the ECS
 * agent does for its task metadata endpoint (steady 40, burst 60 per container by default).
 */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();

  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Takes one request's token; false when the key has none left (answer 429). */
  take(key: string): boolean {
    const now = this.now();
    const bucket = this.buckets.get(key) ?? { tokens: this.burst, at: now };
    bucket.tokens = Math.min(this.burst, bucket.tokens + ((now - bucket.at) / 1000) * this.perSecond);
    bucket.at = now;
    const allowed = bucket.tokens >= 1;
    if (allowed) bucket.tokens -= 1;
    this.buckets.set(key, bucket);
    // Full buckets carry no information: drop them, so the map holds only busy keys.
    if (this.buckets.size > 10_000) for (const [k, b] of this.buckets) if (b.tokens >= this.burst - 1) this.buckets.delete(k);
    return allowed;
  }

  /** Seconds until the key has a token again. */
  retryAfter(key: string): number {
    const bucket = this.buckets.get(key);
    return bucket ? Math.max(1, Math.ceil((1 - bucket.tokens) / this.perSecond)) : 0;
  }
}
