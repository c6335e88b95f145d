import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pushBusyboxImage } from './busybox-image.js';
import { startDockerDaemon, type TestDockerDaemon } from './docker-daemon.js';
import { startRegistry, type TestRegistry } from './registry.js';

/** Everything the integration tests run against: a private dockerd and an authenticated registry. */
export interface TestEnvironment {
  dir: string;
  docker: TestDockerDaemon;
  registry: TestRegistry;
  /** A busybox image whose default command is `sh`. */
  image: string;
  /** Pushed but meant to be pulled with wrong credentials, so never pulled successfully. */
  privateImage: string;
  /** A reference to a repository the registry does not have. */
  missingImage: string;
  credentials: { username: string; password: string };
  stop(): Promise<void>;
}

export async function startTestEnvironment(name: string): Promise<TestEnvironment> {
  const dir = mkdtempSync(join(tmpdir(), `berth-${name}-`));
  const registry = await startRegistry(join(dir, 'registry'));
  let docker: TestDockerDaemon | undefined;
  try {
    docker = await startDockerDaemon(join(dir, 'docker'));
    const image = await pushBusyboxImage(registry, 'berth-test/busybox', '1');
    const privateImage = await pushBusyboxImage(registry, 'berth-test/private', '1');
    const started = docker;
    return {
      dir,
      docker,
      registry,
      image,
      privateImage,
      missingImage: `${registry.address}/berth-test/does-not-exist:1`,
      credentials: { username: registry.username, password: registry.password },
      async stop() {
        await started.stop();
        await registry.stop();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  } catch (error) {
    await docker?.stop();
    await registry.stop();
    throw error;
  }
}
