import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ManagedContainer } from '../../src/engine/tasks/managed-container.js';
import { pauseContainerDefinition } from '../../src/engine/tasks/pause-container.js';

describe('a managed container', () => {
  it('records a change of its fields once: the same values again are not a change', () => {
    let recorded = 0;
    // Any complete definition will do.
    const definition = { ...pauseContainerDefinition('registry.test/app:1'), name: 'app' };
    const container = new ManagedContainer(definition, 'unit-t-app', () => recorded++);
    const at = new Date(1_000);
    container.update({ restartCount: 1, lastRestartedAt: at, reason: 'exited with code 1; restarting in 20 ms' });
    assert.equal(recorded, 1);
    container.update({ restartCount: 1, lastRestartedAt: new Date(1_000), reason: 'exited with code 1; restarting in 20 ms' });
    assert.equal(recorded, 1, 'nothing changed');
    container.update({ reason: '' });
    assert.equal(recorded, 2);
    container.update({ healthCheckedAt: new Date(2_000) }, false);
    assert.equal(recorded, 2, 'not recorded when asked not to');
  });
});
