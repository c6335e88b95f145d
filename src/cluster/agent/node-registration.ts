import type { Etcd3, Lease } from 'etcd3';
import type { Logger } from 'pino';
import { sleep } from '../../engine/retry.js';
import { Node } from '../../gen/berth/cluster/v1/node.js';
import type { ClusterKeys } from '../keys.js';
import type { Membership } from '../membership.js';
import { Backoff } from '../backoff.js';

/** The longest an agent waits between two attempts to register. */
export const REGISTRATION_RETRY_MAX_MS = 5000;

/** How often the node record is compared with what was last written (and written when it differs). */
const RECORD_CHECK_MS = 1000;

/**
 * Keeps the agent's node record in etcd, bound to a lease it keeps alive. The record is rebuilt
 * every second and written only when it changed (free resources, task counts, runtime). When the
 * lease is lost (etcd unreachable for longer than its TTL), a new one is granted once etcd answers
 * again and the record is written under it; `onLease` is told, so that everything else bound to
 * the lease (the task reports) is written again too.
 */
export class NodeRegistration {
  private current: { lease: Lease; id: string } | undefined;
  private lastWritten: Buffer | undefined;

  constructor(
    private readonly etcd: Etcd3,
    private readonly keys: ClusterKeys,
    private readonly agentId: string,
    private readonly ttlSeconds: number,
    /** The record as of now (updated_at is set here). */
    private readonly record: () => Node,
    private readonly membership: Membership,
    private readonly onLease: () => void,
    private readonly log: Logger,
  ) {}

  /** The lease everything the agent writes is bound to, while it has one. */
  get leaseId(): string | undefined {
    return this.current?.id;
  }

  /** Runs until `signal` aborts; never throws. The lease is left to expire (a restart keeps the node listed). */
  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff(250, REGISTRATION_RETRY_MAX_MS);
    while (!signal.aborted) {
      const lease = this.etcd.lease(this.ttlSeconds);
      let lost: unknown;
      const lostNow = new AbortController();
      lease.on('lost', (error: unknown) => {
        lost = error;
        lostNow.abort();
      });
      // (typed as a response; what arrives is the error)
      lease.on('keepaliveFailed', (error: unknown) => this.membership.failed('registration', `lease keep-alive failed: ${(error as Error).message ?? String(error)}`));
      lease.on('keepaliveSucceeded', () => this.membership.ok('registration'));
      try {
        const id = await lease.grant();
        this.lastWritten = undefined;
        await this.write(id, true);
        this.current = { lease, id };
        this.membership.ok('registration');
        backoff.reset();
        this.log.info({ lease: id }, 'registered with etcd');
        this.onLease();
        const stop = AbortSignal.any([signal, lostNow.signal]);
        while (!stop.aborted) {
          await sleep(RECORD_CHECK_MS, stop);
          if (stop.aborted) break;
          await this.write(id, false).catch((error: unknown) => this.membership.failed('registration', `writing the node record: ${(error as Error).message}`));
        }
        if (lost) this.log.warn({ err: lost }, 'the etcd lease was lost; registering again');
      } catch (error) {
        this.membership.failed('registration', (error as Error).message);
        this.log.warn({ err: error }, 'cannot register with etcd; trying again');
      }
      this.current = undefined;
      lease.release();
      await sleep(signal.aborted ? 0 : backoff.next(), signal);
    }
  }

  /** Writes the record when it differs from the last one written (always with `force`). */
  private async write(leaseId: string, force: boolean): Promise<void> {
    const record = this.record();
    const comparable = Buffer.from(Node.encode({ ...record, updatedAt: undefined }).finish());
    if (!force && this.lastWritten?.equals(comparable)) return;
    const value = Buffer.from(Node.encode({ ...record, updatedAt: new Date() }).finish());
    await this.etcd.put(this.keys.node(this.agentId)).value(value).lease(leaseId).exec();
    this.lastWritten = comparable;
    this.membership.ok('registration');
  }
}
