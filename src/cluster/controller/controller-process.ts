import type { Logger } from 'pino';
import type { BerthConfig } from '../../config/config.js';
import { REGISTRATION_RETRY_MAX_MS } from '../agent/node-registration.js';
import { connectFleet } from '../fleet-client.js';
import { Controller } from './controller.js';

/** A running `berth controller`: `stop` resigns the lead (another replica takes it at once). */
export interface RunningController {
  controller: Controller;
  stop(): Promise<void>;
}

/**
 * Starts a controller replica from the agent's config format: `cluster` (etcd, prefix, leaseTtl
 * for the election) and `agentId` as the replica's name. Several replicas may run; one leads.
 */
export function startController(config: BerthConfig, log: Logger): RunningController {
  const cluster = config.cluster;
  if (!cluster) throw new Error('berth controller needs the config\'s "cluster" section (etcd endpoints, prefix)');
  const fleet = connectFleet(cluster);
  const ttlSeconds = Math.round(cluster.leaseTtlMs / 1000);
  // After an outage of etcd, agents get their lease's TTL twice over, and one retry, to register again.
  const controller = new Controller(fleet, { id: config.agentId, electionTtlSeconds: ttlSeconds, nodeLossGraceMs: 2 * cluster.leaseTtlMs + REGISTRATION_RETRY_MAX_MS }, log);
  const running = new AbortController();
  const done = controller.run(running.signal);
  log.info({ controller: config.agentId, endpoints: cluster.endpoints, prefix: cluster.prefix }, 'berth controller started');
  return {
    controller,
    async stop() {
      running.abort();
      await done;
      fleet.close();
      log.info('berth controller stopped');
    },
  };
}
