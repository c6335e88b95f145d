#!/usr/bin/env -S node --max-semi-space-size=4
import { parseArgs } from 'node:util';
import { startAgent, createLogger } from './agent.js';
import { ConfigError, ENVIRONMENT_KEYS, loadConfig } from './config/config.js';
import { installLastResortHandlers, onInternalError } from './internal-errors.js';
import { AGENT_VERSION } from './version.js';

const USAGE = `berth ${AGENT_VERSION}: a node agent for containers

usage: berth [--config FILE]            run the agent
       berth controller [--config FILE] run a fleet controller (needs the config's "cluster" section)

  --config FILE   JSON config file (default: $BERTH_CONFIG, else built-in defaults)
  --version       print the version

environment: ${Object.keys(ENVIRONMENT_KEYS).join(', ')}, DOCKER_HOST`;

async function main(): Promise<void> {
  const { values, positionals } = parseArgs({ options: { config: { type: 'string' }, version: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, allowPositionals: true });
  const role = positionals[0] ?? 'agent';
  if (positionals.length > 1 || (role !== 'agent' && role !== 'controller')) {
    console.error(USAGE);
    process.exit(2);
  }
  if (values.help) return void console.log(USAGE);
  if (values.version) return void console.log(AGENT_VERSION);
  let config;
  try {
    config = loadConfig(values.config ?? process.env.BERTH_CONFIG);
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const logger = createLogger(config);
  onInternalError((source, error, incident) => logger.error({ err: error, source, incident }, 'unexpected error; the agent carries on'));
  installLastResortHandlers();
  if (role === 'controller' && !config.cluster) {
    console.error('berth controller: the config needs a "cluster" section (etcd endpoints, prefix)');
    process.exit(2);
  }
  // The controller's module (and etcd's client) is loaded only by a controller.
  const agent = role === 'controller' ? (await import('./cluster/controller/controller-process.js')).startController(config, logger) : await startAgent(config, logger);
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    logger.info({ signal }, role === 'controller' ? 'shutting down' : 'shutting down; containers keep running');
    agent.stop().then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGTERM', () => stop('SIGTERM'));
}

main().catch((error: unknown) => {
  console.error(error instanceof Error ? error.message : error);
  process.exit(1);
});
