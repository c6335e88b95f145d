import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freeLoopbackPort, requireBinary, startDaemon, waitUntil } from './processes.js';

export interface TestRegistry {
  /** host:port on 127.0.0.1 */
  address: string;
  username: string;
  password: string;
  /** The registry's log, access log included. */
  logFile: string;
  stop(): Promise<void>;
}

/** Starts a Docker registry on 127.0.0.1 that requires HTTP basic auth (htpasswd, bcrypt). */
export async function startRegistry(dir: string, username = 'berth', password = 'berth-secret'): Promise<TestRegistry> {
  const registry = requireBinary('/usr/bin/docker-registry', 'docker-registry');
  requireBinary('/usr/bin/htpasswd', 'apache2-utils');
  mkdirSync(join(dir, 'data'), { recursive: true });
  writeFileSync(join(dir, 'htpasswd'), execFileSync('htpasswd', ['-Bbn', username, password]));
  const port = await freeLoopbackPort();
  const address = `127.0.0.1:${port}`;
  writeFileSync(
    join(dir, 'config.yml'),
    [
      'version: 0.1',
      `storage: {filesystem: {rootdirectory: ${join(dir, 'data')}}}`,
      `http: {addr: "${address}"}`,
      `auth: {htpasswd: {realm: berth-test, path: ${join(dir, 'htpasswd')}}}`,
      'log: {level: info, accesslog: {disabled: false}}',
      '',
    ].join('\n'),
  );
  const daemon = startDaemon(registry, ['serve', join(dir, 'config.yml')], join(dir, 'registry.log'));
  await waitUntil('registry', 15_000, async () => {
    const response = await fetch(`http://${address}/v2/`);
    return response.status === 401 ? true : undefined;
  }, daemon);
  return { address, username, password, logFile: join(dir, 'registry.log'), stop: () => daemon.stop() };
}
