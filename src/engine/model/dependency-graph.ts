import type { ContainerDefinition, DependencyCondition } from './task-definition.js';
import type { ContainerStatus, HealthStatus } from './status.js';

/** What the dependency rules need to know about a container at one moment. */
export interface DependencyView {
  knownStatus: ContainerStatus;
  /** True once the container has been seen running. */
  started: boolean;
  /** When it started (ms since the epoch), once it did. */
  startedAtMs?: number;
  exitCode?: number;
  healthStatus: HealthStatus;
  /** How long dependents wait for it to meet COMPLETE, SUCCESS or HEALTHY once it started. */
  startTimeoutMs?: number;
}

export type DependencyVerdict =
  | { kind: 'satisfied' }
  /** `deadlineMs`: when the wait turns into a failure (the dependency's start timeout). */
  | { kind: 'waiting'; reason: string; deadlineMs?: number }
  /** The condition can never be met: the task must stop. */
  | { kind: 'failed'; reason: string };

/** Returns one cycle as a list of names (first = last), or undefined when there is none. */
export function findCycle(containers: Pick<ContainerDefinition, 'name' | 'dependsOn'>[]): string[] | undefined {
  const edges = new Map(containers.map((c) => [c.name, c.dependsOn.map((d) => d.containerName)]));
  const state = new Map<string, 'visiting' | 'done'>();
  const path: string[] = [];
  const visit = (name: string): string[] | undefined => {
    if (state.get(name) === 'done') return undefined;
    if (state.get(name) === 'visiting') return [...path.slice(path.indexOf(name)), name];
    state.set(name, 'visiting');
    path.push(name);
    for (const next of edges.get(name) ?? []) {
      if (!edges.has(next)) continue;
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    path.pop();
    state.set(name, 'done');
    return undefined;
  };
  for (const name of edges.keys()) {
    const cycle = visit(name);
    if (cycle) return cycle;
  }
  return undefined;
}

/** Whether `dependency` meets `condition`, may still meet it, or never will. */
export function evaluateCondition(dependencyName: string, condition: DependencyCondition, dependency: DependencyView, nowMs = Date.now()): DependencyVerdict {
  const stopped = dependency.knownStatus === 'STOPPED';
  const neverRan = stopped && !dependency.started;
  const deadlineMs = condition !== 'START' && dependency.startTimeoutMs !== undefined && dependency.startedAtMs !== undefined ? dependency.startedAtMs + dependency.startTimeoutMs : undefined;
  const waiting = (what: string): DependencyVerdict => {
    if (deadlineMs !== undefined && nowMs >= deadlineMs) {
      return { kind: 'failed', reason: `dependency "${dependencyName}" did not ${what} within its start timeout of ${dependency.startTimeoutMs} ms (condition ${condition})` };
    }
    return { kind: 'waiting', reason: `waiting for container "${dependencyName}" to ${what}`, deadlineMs };
  };
  const failed = (why: string): DependencyVerdict => ({ kind: 'failed', reason: `dependency "${dependencyName}" ${why} (condition ${condition})` });
  if (neverRan) return failed('stopped without ever running');
  switch (condition) {
    case 'START':
      return dependency.started ? { kind: 'satisfied' } : waiting('start');
    case 'COMPLETE':
      return stopped ? { kind: 'satisfied' } : waiting('complete');
    case 'SUCCESS':
      if (!stopped) return waiting('exit with code 0');
      return dependency.exitCode === 0 ? { kind: 'satisfied' } : failed(`exited with code ${dependency.exitCode ?? 'unknown'}`);
    case 'HEALTHY':
      if (dependency.healthStatus === 'HEALTHY') return { kind: 'satisfied' };
      if (stopped) return failed('stopped before it was healthy');
      return waiting('become healthy');
  }
}

/**
 * Evaluates every dependency of a container: the first permanent failure wins, then the first
 * wait; satisfied when all are met.
 */
export function evaluateDependencies(definition: Pick<ContainerDefinition, 'dependsOn'>, lookup: (name: string) => DependencyView, nowMs = Date.now()): DependencyVerdict {
  let firstWait: Extract<DependencyVerdict, { kind: 'waiting' }> | undefined;
  let deadlineMs: number | undefined;
  for (const dependency of definition.dependsOn) {
    const verdict = evaluateCondition(dependency.containerName, dependency.condition, lookup(dependency.containerName), nowMs);
    if (verdict.kind === 'failed') return verdict;
    if (verdict.kind === 'waiting') {
      firstWait ??= verdict;
      if (verdict.deadlineMs !== undefined) deadlineMs = Math.min(deadlineMs ?? Infinity, verdict.deadlineMs);
    }
  }
  return firstWait ? { ...firstWait, deadlineMs } : { kind: 'satisfied' };
}

/** The names of the containers that depend on `name` (they must stop before it does). */
export function dependentsOf(name: string, containers: Pick<ContainerDefinition, 'name' | 'dependsOn'>[]): string[] {
  return containers.filter((c) => c.dependsOn.some((d) => d.containerName === name)).map((c) => c.name);
}
