import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
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

/**
 * Starts a Docker registry on 127.0.0.1 that requires HTTP basic auth (htpasswd, bcrypt), or, with
 * `anonymous`, one anybody may pull from (as the registry of a node's pause image usually is).
 */
export async function startRegistry(dir: string, username = 'berth', password = 'berth-secret', options: { anonymous?: boolean } = {}): Promise<TestRegistry> {
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
      ...(options.anonymous ? [] : [`auth: {htpasswd: {realm: berth-test, path: ${join(dir, 'htpasswd')}}}`]),
      'log: {level: info, accesslog: {disabled: false}}',
      '',
    ].join('\n'),
  );
  const daemon = startDaemon(registry, ['serve', join(dir, 'config.yml')], join(dir, 'registry.log'));
  await waitUntil(
    'registry',
    15_000,
    async () => {
      const response = await fetch(`http://${address}/v2/`);
      return response.status === (options.anonymous ? 200 : 401) ? true : undefined;
    },
    daemon,
  );
  return { address, username, password, logFile: join(dir, 'registry.log'), stop: () => daemon.stop() };
}

/**
 * The pulls the registry served from now on, as image references, in order: one per
 * `HEAD /v2/<repository>/manifests/<tag>` answered 200, which is how both Docker and berth's own
 * client resolve a tag once per pull. Runtime-neutral, unlike a daemon's own pull events.
 */
export function watchRegistryPulls(registry: TestRegistry): { pulls(): string[] } {
  const read = () => readFileSync(registry.logFile, 'utf8').split('\n');
  const from = read().length;
  return {
    pulls() {
      return read()
        .slice(from - 1)
        .flatMap((line) => {
          const match = /"HEAD \/v2\/(.+)\/manifests\/([^/\s]+) HTTP\/[\d.]+" 200 /.exec(line);
          return match && !match[2]!.startsWith('sha256:') ? [`${registry.address}/${match[1]}:${match[2]}`] : [];
        });
    },
  };
}
