import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { ClusterKeys } from '../../src/cluster/keys.js';
import { TaskStatus } from '../../src/gen/berth/agent/v1/task.js';
import { ClusterTask, ConstraintOperator, NodeControl, PlacementStrategy } from '../../src/gen/berth/cluster/v1/cluster_task.js';
import { berthctl } from '../harness/berthctl.js';
import { EtcdCluster } from '../harness/etcd.js';

/** berthctl cluster's submissions and controls as they land in a real etcd (no agents needed). */
describe('berthctl cluster against a real etcd', () => {
  let etcd: EtcdCluster;
  let client: Etcd3;
  let dir: string;
  const keys = new ClusterKeys(`/ctl-${process.pid}/`);
  const ctl = (...args: string[]) => berthctl(['cluster', ...args], { env: { BERTH_ETCD_ENDPOINTS: etcd.endpoints.join(','), BERTH_ETCD_PREFIX: keys.prefix } });
  const taskFile = (name: string, text: string) => {
    const file = join(dir, name);
    writeFileSync(file, text);
    return file;
  };

  before(async () => {
    etcd = await EtcdCluster.start(1);
    client = etcd.client();
    dir = mkdtempSync(join(tmpdir(), 'berth-ctl-cluster-'));
  });
  after(async () => {
    client?.close();
    await etcd?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('run -f submits the task with its constraints, strategy and replacement; again is a no-op; a different one under the id is refused', async () => {
    const file = taskFile('web.yaml', 'id: web-1\nfamily: web\ncontainers:\n  - name: app\n    image: busybox\n    cpuUnits: 64\n');
    const first = await ctl('run', '-f', file, '--constraint', 'zone==a|b', '--constraint', 'disk!=hdd', '--strategy', 'spread:zone', '--replace');
    assert.equal(first.code, 0, first.stderr);
    assert.equal(first.stdout, 'web-1\n');
    const stored = ClusterTask.decode((await client.get(keys.task('web-1')).buffer())!);
    assert.equal(stored.definition!.containers[0]!.cpuUnits, 64);
    assert.deepEqual(stored.constraints, [
      { attribute: 'zone', operator: ConstraintOperator.CONSTRAINT_OPERATOR_EQUAL, values: ['a', 'b'] },
      { attribute: 'disk', operator: ConstraintOperator.CONSTRAINT_OPERATOR_NOT_EQUAL, values: ['hdd'] },
    ]);
    assert.equal(stored.strategy, PlacementStrategy.PLACEMENT_STRATEGY_SPREAD);
    assert.equal(stored.spreadAttribute, 'zone');
    assert.equal(stored.replaceOnNodeLoss, true);

    const again = await ctl('run', '-f', file, '--constraint', 'zone==a|b', '--constraint', 'disk!=hdd', '--strategy', 'spread:zone', '--replace');
    assert.equal(again.code, 0, again.stderr);
    assert.equal(again.stdout, 'web-1 (already submitted)\n');
    const other = await ctl('run', '-f', file);
    assert.equal(other.code, 1);
    assert.match(other.stderr, /web-1 exists with a different definition/);
  });

  it('refuses bad input with exit 2 and says why', async () => {
    const file = taskFile('ok.yaml', 'id: ok-1\ncontainers:\n  - name: app\n    image: busybox\n');
    for (const [args, message] of [
      [['run', '-f', file, '--constraint', 'zone=a'], /ATTRIBUTE==VALUE/],
      [['run', '-f', file, '--strategy', 'random'], /--strategy must be/],
      [
        ['run', '-f', taskFile('password.yaml', 'id: p-1\ncontainers:\n  - name: app\n    image: busybox\n    registryCredentials: { username: u, password: secret }\n')],
        /no registry passwords in etcd/,
      ],
      [['frobnicate'], /unknown cluster verb/],
    ] as const) {
      const result = await ctl(...args);
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /secret/);
    }
    const noEtcd = await berthctl(['cluster', 'ps']);
    assert.equal(noEtcd.code, 2);
    assert.match(noEtcd.stderr, /BERTH_ETCD_ENDPOINTS/);
  });

  it('stop, cordon, drain and uncordon write what the controller acts on; a missing task is exit 1; etcd away is exit 3', async () => {
    assert.equal((await ctl('stop', 'web-1')).code, 0);
    assert.equal(ClusterTask.decode((await client.get(keys.task('web-1')).buffer())!).desiredStatus, TaskStatus.TASK_STATUS_STOPPED);
    const missing = await ctl('stop', 'nothing-here');
    assert.equal(missing.code, 1);
    assert.match(missing.stderr, /no cluster task nothing-here/);

    assert.equal((await ctl('cordon', 'node-1', '--reason', 'kernel update')).code, 0);
    assert.deepEqual(NodeControl.decode((await client.get(keys.control('node-1')).buffer())!), { cordoned: true, draining: false, reason: 'kernel update' });
    assert.equal((await ctl('drain', 'node-1')).code, 0);
    assert.equal(NodeControl.decode((await client.get(keys.control('node-1')).buffer())!).draining, true);
    assert.equal((await ctl('uncordon', 'node-1')).code, 0);
    assert.equal(await client.get(keys.control('node-1')).buffer(), null);

    const away = await berthctl(['cluster', 'ps', '--etcd', '127.0.0.1:1']);
    assert.equal(away.code, 3, away.stderr);
  });
});
