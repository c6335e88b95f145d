import type { ContainerRuntime } from '../../src/runtime/container-runtime.js';
import type { ContainerSpec } from '../../src/runtime/types.js';
import { withConcurrency } from './concurrency.js';

/** The label of the containers the benchmarks create directly (no engine), to find and remove them. */
export const DIRECT_LABELS = { bench: 'direct' };

/**
 * The container the benchmarks' tasks run (`sleep`, no network, no limits), as a spec for the
 * runtime adapter: the runtime's own create+start of it is what berth's launches are compared with.
 */
export function directSpec(image: string, name: string): ContainerSpec {
  return {
    name,
    image,
    command: ['sleep', '600'],
    env: {},
    labels: DIRECT_LABELS,
    cpuShares: 0,
    memoryBytes: 0,
    memoryReservationBytes: 0,
    network: 'none',
    ports: [],
  };
}

/**
 * Creates and starts one container per name through the runtime adapter, at most `concurrency` at
 * once (as the control plane launches tasks); the time it took, in ms.
 */
export async function launchDirect(runtime: ContainerRuntime, image: string, names: string[], concurrency: number): Promise<number> {
  const started = performance.now();
  await withConcurrency(names, concurrency, async (name) => {
    await runtime.startContainer(await runtime.createContainer(directSpec(image, name)));
  });
  return performance.now() - started;
}

/** Removes every container the benchmark created directly (a running one is killed first), 50 at once. */
export async function removeDirect(runtime: ContainerRuntime): Promise<void> {
  const containers = await runtime.listContainers(DIRECT_LABELS);
  await withConcurrency(containers, 50, (container) => runtime.removeContainer(container.id));
}
