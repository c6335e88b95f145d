import type { Server } from '@grpc/grpc-js';
import { HealthImplementation, type ServingStatus } from 'grpc-health-check';
import type { RuntimeMonitor } from '../engine/runtime-monitor.js';
import type { StoreHealth } from '../engine/task-engine.js';

export const TASK_SERVICE_NAME = 'berth.agent.v1.TaskService';

/**
 * grpc.health.v1: SERVING while the container runtime answers and the state store takes writes,
 * NOT_SERVING otherwise, for the server as a whole ("") and for berth.agent.v1.TaskService.
 */
export function addHealth(server: Server, monitor: RuntimeMonitor, store: StoreHealth): () => void {
  const health = new HealthImplementation();
  const update = () => {
    const status: ServingStatus = monitor.availability.available && store.writable ? 'SERVING' : 'NOT_SERVING';
    health.setStatus('', status);
    health.setStatus(TASK_SERVICE_NAME, status);
  };
  update();
  monitor.on('change', update);
  store.on('change', update);
  health.addToServer(server);
  return () => {
    monitor.off('change', update);
    store.off('change', update);
  };
}
