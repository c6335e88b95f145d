import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { chooseAppArmorProfile, type AppArmorHost } from '../../src/runtime/containerd/apparmor.js';
import { runtimeSpec } from '../../src/runtime/containerd/oci-spec.js';

/** A host described by files shaped like the kernel's. */
function host(enabled: string | undefined, profiles: string | undefined): AppArmorHost {
  const dir = mkdtempSync(join(tmpdir(), 'berth-apparmor-'));
  const files = { enabledFile: join(dir, 'enabled'), profilesFile: join(dir, 'profiles') };
  if (enabled !== undefined) writeFileSync(files.enabledFile, enabled);
  if (profiles !== undefined) writeFileSync(files.profilesFile, profiles);
  return files;
}

describe('AppArmor profile of containerd containers', () => {
  it('uses docker-default where AppArmor is on and the profile is loaded, as Docker does', () => {
    assert.deepEqual(chooseAppArmorProfile('', host('Y\n', 'docker-default (enforce)\nlsb_release (enforce)\n')), { profile: 'docker-default' });
  });

  it('runs without a profile on a host without AppArmor, and warns where AppArmor is on but docker-default is not loaded', () => {
    assert.deepEqual(chooseAppArmorProfile('', host(undefined, undefined)), {});
    assert.deepEqual(chooseAppArmorProfile('', host('N\n', undefined)), {});
    const choice = chooseAppArmorProfile('', host('Y\n', 'lsb_release (enforce)\n'));
    assert.equal(choice.profile, undefined);
    assert.match(choice.warning ?? '', /"docker-default" profile is not loaded: containers run without an AppArmor profile/);
  });

  it('uses a configured profile only if the host can apply it', () => {
    assert.deepEqual(chooseAppArmorProfile('berth-strict', host('Y\n', 'berth-strict (enforce)\n')), { profile: 'berth-strict' });
    assert.throws(() => chooseAppArmorProfile('berth-strict', host('Y\n', 'docker-default (enforce)\n')), /no profile of that name is loaded/);
    assert.throws(() => chooseAppArmorProfile('berth-strict', host('N\n', '')), /AppArmor is not enabled on this host/);
  });

  it('puts the profile into the spec of unprivileged containers only', () => {
    const spec = (privileged: boolean) =>
      runtimeSpec({
        id: 'c1',
        namespace: 'berth',
        image: { rootfs: { type: 'layers', diff_ids: [] } },
        user: { uid: 0, gid: 0 },
        files: { hosts: '/s/hosts', hostname: '/s/hostname', resolvConf: '/s/resolv.conf' },
        apparmorProfile: 'docker-default',
        spec: { name: 'c1', image: 'x', env: {}, labels: {}, cpuShares: 0, memoryBytes: 0, memoryReservationBytes: 0, network: 'none', ports: [], privileged },
      }) as { process: { apparmorProfile?: string }; linux: { seccomp?: unknown } };
    assert.equal(spec(false).process.apparmorProfile, 'docker-default');
    assert.ok(spec(false).linux.seccomp);
    assert.equal(spec(true).process.apparmorProfile, undefined);
    assert.equal(spec(true).linux.seccomp, undefined);
  });
});
