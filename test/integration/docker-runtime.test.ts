import { join } from 'node:path';
import { startBearerProxy, type BearerProxy } from '../harness/bearer-proxy.js';
import { pushBusyboxImage, sharedLayerImages } from '../harness/busybox-image.js';
import { startRuntimeEnvironment, type RuntimeEnvironment } from '../harness/runtime-environment.js';
import { runtimeContract } from '../harness/runtime-contract.js';
import { DockerRuntime } from '../../src/runtime/docker/docker-runtime.js';

let env: RuntimeEnvironment;
let bearer: BearerProxy;

runtimeContract(
  'docker',
  async () => {
    env = await startRuntimeEnvironment('docker-contract', 'docker');
    bearer = await startBearerProxy(env.registry);
    const multi = await pushBusyboxImage(env.registry, 'berth-test/multi', '1', { multiPlatform: true });
    return {
      bearerImage: multi.replace(env.registry.address, bearer.address),
      bearerTokensIssued: () => bearer.tokensIssued(),
      bearerBlobsFromStorage: () => bearer.blobsFromStorage(),
      runtime: new DockerRuntime({ host: env.docker!.host, callTimeoutMs: 30_000, pullTimeoutMs: 120_000, stateDir: join(env.dir, 'contract') }),
      image: env.image,
      privateImage: env.privateImage,
      hostilePasswdImage: await pushBusyboxImage(env.registry, 'berth-test/hostile-passwd', '1', { passwdLink: '/dev/zero' }),
      sharedLayerImages: await sharedLayerImages(env.registry),
      usr1StopImage: await pushBusyboxImage(env.registry, 'berth-test/usr1-stop', '1', { stopSignal: 'SIGUSR1' }),
      missingImage: env.missingImage,
      credentials: env.credentials,
      daemonNetworkOf: async (id) => env.docker!.prestartHooksOf(id).some((hook) => hook.includes('libnetwork-setkey')),
    };
  },
  async () => {
    await bearer?.stop();
    await env?.stop();
  },
);
