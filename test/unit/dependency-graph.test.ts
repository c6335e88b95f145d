import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { dependentsOf, evaluateCondition, findCycle, type DependencyView } from '../../src/engine/model/dependency-graph.js';

const view = (overrides: Partial<DependencyView>): DependencyView => ({ knownStatus: 'NONE', started: false, healthStatus: 'NONE', ...overrides });
const c = (name: string, ...deps: string[]) => ({ name, dependsOn: deps.map((d) => ({ containerName: d, condition: 'START' as const })) });

describe('dependency graph', () => {
  it('finds cycles and returns them as a path', () => {
    assert.equal(findCycle([c('a', 'b'), c('b', 'c'), c('c')]), undefined);
    assert.deepEqual(findCycle([c('a', 'b'), c('b', 'c'), c('c', 'a')]), ['a', 'b', 'c', 'a']);
    assert.deepEqual(findCycle([c('x'), c('a', 'b'), c('b', 'a')]), ['a', 'b', 'a']);
  });

  it('START is met once the dependency ran, and fails if it stopped without running', () => {
    assert.equal(evaluateCondition('d', 'START', view({ knownStatus: 'CREATED' })).kind, 'waiting');
    assert.equal(evaluateCondition('d', 'START', view({ knownStatus: 'RUNNING', started: true })).kind, 'satisfied');
    assert.equal(evaluateCondition('d', 'START', view({ knownStatus: 'STOPPED', started: true, exitCode: 1 })).kind, 'satisfied');
    assert.equal(evaluateCondition('d', 'START', view({ knownStatus: 'STOPPED' })).kind, 'failed');
  });

  it('COMPLETE waits for any exit; SUCCESS needs exit code 0 and fails otherwise', () => {
    assert.equal(evaluateCondition('d', 'COMPLETE', view({ knownStatus: 'RUNNING', started: true })).kind, 'waiting');
    assert.equal(evaluateCondition('d', 'COMPLETE', view({ knownStatus: 'STOPPED', started: true, exitCode: 2 })).kind, 'satisfied');
    assert.equal(evaluateCondition('d', 'SUCCESS', view({ knownStatus: 'STOPPED', started: true, exitCode: 0 })).kind, 'satisfied');
    const failed = evaluateCondition('d', 'SUCCESS', view({ knownStatus: 'STOPPED', started: true, exitCode: 2 }));
    assert.equal(failed.kind, 'failed');
    assert.match(failed.kind === 'failed' ? failed.reason : '', /dependency "d" exited with code 2 \(condition SUCCESS\)/);
  });

  it('HEALTHY waits for a healthy report and fails when the dependency stops first', () => {
    assert.equal(evaluateCondition('d', 'HEALTHY', view({ knownStatus: 'RUNNING', started: true, healthStatus: 'UNKNOWN' })).kind, 'waiting');
    assert.equal(evaluateCondition('d', 'HEALTHY', view({ knownStatus: 'RUNNING', started: true, healthStatus: 'HEALTHY' })).kind, 'satisfied');
    assert.equal(evaluateCondition('d', 'HEALTHY', view({ knownStatus: 'STOPPED', started: true, exitCode: 0 })).kind, 'failed');
  });

  it('lists the dependents that must stop first', () => {
    assert.deepEqual(dependentsOf('db', [c('db'), c('app', 'db'), c('worker', 'db', 'app')]), ['app', 'worker']);
  });
});
