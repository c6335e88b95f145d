import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SubnetMasquerade } from '../../src/engine/network/subnet-masquerade.js';
import { ProcessLauncher, type LaunchRequest, type LaunchResult } from '../../src/engine/process-launcher.js';

/** A launcher that answers iptables runs from a script: exit codes and stderr, in order; it starts nothing. */
function scriptedIptables(answers: { code: number; stderr?: string }[]): { launcher: ProcessLauncher; runs: string[][] } {
  const runs: string[][] = [];
  class ScriptedLauncher extends ProcessLauncher {
    override run(request: LaunchRequest): Promise<LaunchResult> {
      runs.push([request.file, ...(request.args ?? [])]);
      const next = answers.shift() ?? { code: 0 };
      return Promise.resolve({ code: next.code, signal: null, timedOut: false, stdout: '', stdoutBytes: 0, stderr: next.stderr ?? '' });
    }
  }
  return { launcher: new ScriptedLauncher(), runs };
}

describe('the default network masquerading rule', () => {
  const network = { subnet: '10.89.0.0/16', bridge: 'berth0' };
  const rule = ['-s', '10.89.0.0/16', '!', '-o', 'berth0', '-m', 'comment', '--comment', 'berth: masquerade task network 10.89.0.0/16', '-j', 'MASQUERADE'];

  it('adds the rule when iptables -C finds none, once for every later call', async () => {
    const { launcher, runs } = scriptedIptables([{ code: 1 }, { code: 0 }]);
    const masquerade = new SubnetMasquerade(network, 1000, launcher);
    await Promise.all([masquerade.ensure(), masquerade.ensure()]);
    await masquerade.ensure();
    assert.deepEqual(runs, [
      ['iptables', '-w', '-t', 'nat', '-C', 'POSTROUTING', ...rule],
      ['iptables', '-w', '-t', 'nat', '-A', 'POSTROUTING', ...rule],
    ]);
  });

  it('adds nothing when the rule is there', async () => {
    const { launcher, runs } = scriptedIptables([{ code: 0 }]);
    await new SubnetMasquerade(network, 1000, launcher).ensure();
    assert.equal(runs.length, 1);
  });

  it("fails with iptables' message, naming the subnet, and tries again on the next call", async () => {
    const { launcher, runs } = scriptedIptables([{ code: 4, stderr: "iptables v1.8.9 (nf_tables): can't initialize iptables table `nat'\n" }, { code: 1 }, { code: 0 }]);
    const masquerade = new SubnetMasquerade(network, 1000, launcher);
    await assert.rejects(
      masquerade.ensure(),
      /^Error: cannot masquerade task network 10\.89\.0\.0\/16: iptables -t nat -C POSTROUTING failed: iptables v1\.8\.9 \(nf_tables\): can't initialize iptables table `nat'$/,
    );
    await masquerade.ensure();
    assert.deepEqual(
      runs.map((r) => r[4]),
      ['-C', '-C', '-A'],
    );
  });
});
