import type { ContainerRuntime } from '../../src/runtime/container-runtime.js';
import type { RuntimeEvent } from '../../src/runtime/types.js';

/**
 * Waits for a container's exit: its event on `stream`, or an inspection that shows it exited,
 * should the stream have missed it (a subscription made just before the exit may not be
 * registered by the runtime yet; the engine's relists catch such an exit the same way). At most
 * 30 s; the caller ends the stream.
 */
export async function exitOf(runtime: ContainerRuntime, stream: AsyncIterable<RuntimeEvent>, id: string): Promise<void> {
  let seen = false;
  let streamEnded = false;
  const onStream = (async () => {
    for await (const event of stream) {
      if (event.type === 'exit' && event.containerId === id) {
        seen = true;
        return;
      }
    }
  })()
    .catch(() => undefined)
    .finally(() => (streamEnded = true));
  const deadline = Date.now() + 30_000;
  while (!seen && Date.now() < deadline) {
    if ((await runtime.inspectContainer(id)).state === 'exited') return;
    // A stream that ended without the exit no longer cuts the pause between inspections short.
    const pause = new Promise((resolve) => setTimeout(resolve, 200));
    await (streamEnded ? pause : Promise.race([onStream, pause]));
  }
  if (!seen) throw new Error(`container ${id}: no exit within 30 s, neither as an event nor in an inspection`);
}
