import { startTestEnvironment, type TestEnvironment } from '../harness/environment.js';
import { runtimeContract } from '../harness/runtime-contract.js';
import { DockerRuntime } from '../../src/runtime/docker/docker-runtime.js';

let env: TestEnvironment;

runtimeContract(
  'docker',
  async () => {
    env = await startTestEnvironment('docker-contract');
    return {
      runtime: new DockerRuntime({ host: env.docker.host, callTimeoutMs: 30_000, pullTimeoutMs: 120_000 }),
      image: env.image,
      privateImage: env.privateImage,
      missingImage: env.missingImage,
      credentials: env.credentials,
    };
  },
  () => env.stop(),
);
