/**
 * Runs an async pass one at a time. A call while a pass runs asks for one more pass after it,
 * however many calls come in meanwhile; every caller's promise resolves once a pass that began
 * after its call has finished (or rejects with that pass's error).
 */
export class CoalescedRun {
  private pass: Promise<void> | undefined;
  private again = false;

  constructor(
    private readonly body: () => Promise<void>,
    /** Checked before each extra pass; false stops the passes (e.g. on shutdown). */
    private readonly shouldContinue: () => boolean = () => true,
  ) {}

  run(): Promise<void> {
    if (this.pass) {
      this.again = true;
      return this.pass;
    }
    this.pass = (async () => {
      try {
        do {
          this.again = false;
          await this.body();
        } while (this.again && this.shouldContinue());
      } finally {
        this.pass = undefined;
      }
    })();
    return this.pass;
  }

  /** The pass in progress, if any. */
  get running(): Promise<void> | undefined {
    return this.pass;
  }
}
