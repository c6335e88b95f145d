import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { CniInvoker, type CniRuntimeConf } from '../../src/engine/network/cni/cni-invoker.js';
import { parseNetworkConfigList } from '../../src/engine/network/cni/network-config.js';
import type { LaunchRequest, LaunchResult, ProcessLauncher } from '../../src/engine/process-launcher.js';

const conf: CniRuntimeConf = { containerId: 'c', netns: '/run/netns/none', ifName: 'eth0', args: {}, capabilityArgs: {} };
const ok = (stdout: string): LaunchResult => ({ code: 0, signal: null, timedOut: false, stdout, stdoutBytes: stdout.length, stderr: '' });

describe('CNI invoker: its bound on plugins at once', () => {
  // The invoker looks the plugin up on the disk; the launcher below never runs it.
  const dir = mkdtempSync(join(tmpdir(), 'berth-plugin-'));
  writeFileSync(join(dir, 'fake'), '#!/bin/sh\n');
  chmodSync(join(dir, 'fake'), 0o755);
  after(() => rmSync(dir, { recursive: true, force: true }));
  const list = parseNetworkConfigList({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'fake' }] }, 'test');

  it('frees the slot of a plugin the launcher could not start, even when it threw at once', async () => {
    const commands: string[] = [];
    let failNext = true;
    const launcher = {
      run(request: LaunchRequest): Promise<LaunchResult> {
        if (failNext) {
          failNext = false;
          throw new Error('spawn failed');
        }
        commands.push(String(request.env.CNI_COMMAND));
        return Promise.resolve(ok(request.env.CNI_COMMAND === 'VERSION' ? '{"supportedVersions":["1.0.0"]}' : '{"cniVersion":"1.0.0"}'));
      },
    } as unknown as ProcessLauncher;
    const invoker = new CniInvoker({ pluginDirs: [dir], timeoutMs: 5000, maxParallel: 1, launcher });
    await assert.rejects(invoker.add(list, conf), /spawn failed/);
    // With the slot lost, this would wait for ever: the race ends it after 5 s instead.
    let timer: NodeJS.Timeout | undefined;
    const stuck = new Promise<string>((resolve) => (timer = setTimeout(() => resolve('stuck'), 5000)));
    const outcome = await Promise.race([invoker.add(list, conf).then(() => 'added'), stuck]).finally(() => clearTimeout(timer));
    assert.equal(outcome, 'added');
    assert.deepEqual(commands, ['VERSION', 'ADD']);
  });
});
