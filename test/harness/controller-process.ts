import { mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { AGENT_NODE_OPTIONS } from '../../src/agent-node-options.js';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { haltDaemon, startDaemon, type DaemonProcess } from './processes.js';

const REPO = PACKAGE_ROOT ?? resolve(import.meta.dirname, '../..');

/** A `berth controller` replica in a process of its own (the built bin), so that it can be SIGKILLed. */
export interface ControllerProcess {
  id: string;
  daemon: DaemonProcess;
  kill(): Promise<void>;
  stop(): Promise<void>;
}

/** Starts `dist/berth.mjs controller` (after `npm run build`) with `cluster` as its config's section. */
export function startControllerProcess(dir: string, id: string, cluster: Record<string, unknown>): ControllerProcess {
  mkdirSync(dir, { recursive: true });
  const configFile = join(dir, `${id}.json`);
  writeFileSync(configFile, JSON.stringify({ agentId: id, dataDir: dir, logLevel: process.env.BERTH_TEST_LOG_LEVEL ?? 'info', cluster }, null, 2));
  const daemon = startDaemon(process.execPath, [...AGENT_NODE_OPTIONS, join(REPO, 'dist/berth.mjs'), 'controller', '--config', configFile], join(dir, `${id}.log`), { cwd: REPO });
  return {
    id,
    daemon,
    kill: () => haltDaemon(daemon, 'SIGKILL'),
    stop: () => daemon.stop(),
  };
}
