import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { describe, it } from 'node:test';
import { containerIdFor } from '../../src/runtime/containerd/containerd-runtime.js';
import { endLeftoverExecs, execIdOf, newExecDir } from '../../src/runtime/containerd/exec-dirs.js';
import type { ContainerdClient } from '../../src/runtime/containerd/containerd-client.js';
import { chainIds } from '../../src/runtime/containerd/image-puller.js';
import { processArgs, processEnv, runtimeSpec } from '../../src/runtime/containerd/oci-spec.js';
import { ChangesUnderWay } from '../../src/runtime/containerd/changes-under-way.js';
import { isBundleInUse } from '../../src/runtime/containerd/stale-runc-state.js';
import { resolveUser } from '../../src/runtime/containerd/user.js';
import { RuntimeError } from '../../src/runtime/errors.js';
import { parseImageName } from '../../src/runtime/oci/image-name.js';
import { parseChallenge } from '../../src/runtime/oci/registry-client.js';

const image = { config: { Env: ['PATH=/bin', 'LANG=C'], Entrypoint: ['/entry'], Cmd: ['serve'], WorkingDir: '/app' }, rootfs: { type: 'layers', diff_ids: [] } };

describe('containerd adapter parts', () => {
  it('names images as containerd and the distribution API want them', () => {
    assert.deepEqual(parseImageName('busybox'), {
      reference: 'docker.io/library/busybox:latest',
      registry: 'docker.io',
      endpoint: 'registry-1.docker.io',
      repository: 'library/busybox',
      tagOrDigest: 'latest',
    });
    assert.deepEqual(parseImageName('127.0.0.1:5000/team/app:1'), {
      reference: '127.0.0.1:5000/team/app:1',
      registry: '127.0.0.1:5000',
      endpoint: '127.0.0.1:5000',
      repository: 'team/app',
      tagOrDigest: '1',
    });
    assert.equal(parseImageName('quay.io/x/y@sha256:abc').tagOrDigest, 'sha256:abc');
  });

  it('parses Bearer and Basic challenges', () => {
    assert.deepEqual(parseChallenge('Bearer realm="https://auth.example/token",service="registry.example",scope="repository:a/b:pull"'), {
      scheme: 'bearer',
      params: { realm: 'https://auth.example/token', service: 'registry.example', scope: 'repository:a/b:pull' },
    });
    assert.equal(parseChallenge('Basic realm="berth-test"').scheme, 'basic');
  });

  it('computes chain ids from diff ids', () => {
    const a = `sha256:${'a'.repeat(64)}`;
    const b = `sha256:${'b'.repeat(64)}`;
    const second = `sha256:${createHash('sha256').update(`${a} ${b}`).digest('hex')}`;
    assert.deepEqual(chainIds([a, b]), [a, second]);
  });

  it('builds the process from the image and the overrides by Docker rules', () => {
    assert.deepEqual(processArgs({}, image), ['/entry', 'serve']);
    assert.deepEqual(processArgs({ command: ['run', 'x'] }, image), ['/entry', 'run', 'x']);
    assert.deepEqual(processArgs({ entrypoint: ['sh', '-c'], command: ['true'] }, image), ['sh', '-c', 'true']);
    assert.deepEqual(processArgs({ entrypoint: ['env'] }, image), ['env']);
    assert.deepEqual(processEnv({ env: { LANG: 'en', A: '1' } }, image), ['PATH=/bin', 'LANG=en', 'A=1']);
  });

  it('writes limits, namespaces and the files berth provides into the OCI spec', () => {
    const spec = runtimeSpec({
      id: 'c1',
      namespace: 'berth',
      image,
      user: { uid: 1000, gid: 1000 },
      files: { hosts: '/s/hosts', hostname: '/s/hostname', resolvConf: '/s/resolv.conf' },
      spec: { name: 'c1', image: 'x', env: {}, labels: {}, cpuShares: 512, memoryBytes: 64 << 20, memoryReservationBytes: 0, network: 'none', ports: [], pidsLimit: 20 },
    }) as {
      linux: { namespaces: { type: string }[]; resources: Record<string, unknown>; cgroupsPath: string };
      mounts: { destination: string; source: string }[];
      process: { cwd: string; user: unknown };
    };
    assert.deepEqual(
      spec.linux.namespaces.map((n) => n.type),
      ['pid', 'ipc', 'uts', 'mount', 'network'],
    );
    // As Docker: as much swap as memory unless the spec says otherwise.
    assert.deepEqual(spec.linux.resources.memory, { limit: 64 << 20, swap: 128 << 20 });
    assert.deepEqual(spec.linux.resources.cpu, { shares: 512 });
    assert.deepEqual(spec.linux.resources.pids, { limit: 20 });
    assert.equal(spec.linux.cgroupsPath, '/berth/c1');
    assert.equal(spec.mounts.find((m) => m.destination === '/etc/resolv.conf')?.source, '/s/resolv.conf');
    assert.equal(spec.process.cwd, '/app');
    assert.deepEqual(spec.process.user, { uid: 1000, gid: 1000 });
  });

  it("resolves numeric users directly and names from the image's passwd and group", async () => {
    const files = async () => ({ passwd: 'root:x:0:0::/root:/bin/sh\nwww:x:33:34::/var/www:/bin/sh\n', group: 'root:x:0:\nstaff:x:50:\n' });
    const untouched = async () => assert.fail('no need to read the image');
    assert.deepEqual(await resolveUser('1000:1000', untouched), { uid: 1000, gid: 1000 });
    assert.deepEqual(await resolveUser(undefined, untouched), { uid: 0, gid: 0 });
    assert.deepEqual(await resolveUser('www', files), { uid: 33, gid: 34 });
    assert.deepEqual(await resolveUser('www:staff', files), { uid: 33, gid: 50 });
    await assert.rejects(resolveUser('nobody-here', files), /no user "nobody-here"/);
  });

  it('uses a container name as its containerd id when containerd accepts it, a stable hash otherwise', () => {
    assert.equal(containerIdFor('berth-agent-task-app'), 'berth-agent-task-app');
    const long = `berth-${'x'.repeat(80)}`;
    assert.match(containerIdFor(long), /^berth-[0-9a-f]{40}$/);
    assert.equal(containerIdFor(long), containerIdFor(long));
    assert.match(containerIdFor('has space'), /^berth-[0-9a-f]{40}$/);
  });

  it('names each exec process with a valid containerd identifier, whatever the container id is cut at', () => {
    const identifier = /^[A-Za-z0-9]+(?:[._-](?:[A-Za-z0-9]+))*$/;
    // Cut at 40 characters, these end with a separator (".", "-", "--").
    for (const id of ['berth-test-14499-0.own-namespaces-14499-5.a', 'berth-test-14499-0.own-namespaces-1234.5.a', `${'a'.repeat(38)}--b`, 'short']) {
      for (const kind of ['exec', 'session'] as const) {
        const name = basename(newExecDir('/state/exec', id, kind));
        assert.match(name, identifier, `${name} (from ${id})`);
        assert.ok(name.length <= 76, 'within containerd’s length for an identifier');
        assert.equal(execIdOf(newExecDir('/state/exec', id, kind)).startsWith(id.slice(0, 10)), true);
      }
    }
  });

  it('removes the one-shot exec output files older agents left in the exec directory, and only those', async () => {
    const root = mkdtempSync(join(tmpdir(), 'berth-exec-root-'));
    try {
      const old = new Date(Date.now() - process.uptime() * 1000 - 60_000);
      for (const name of ['berth-a.b.app-exec-0a1b2c3d4e5f.log', 'berth-a.b.app-exec-ffffffffffff.log', 'notes.log', 'berth-a.b.app-exec-0a1b.txt']) {
        writeFileSync(join(root, name), 'output');
        utimesSync(join(root, name), old, old);
      }
      // Written while this agent runs: an exec of its own, not a leftover.
      writeFileSync(join(root, 'berth-a.b.app-exec-123456789abc.log'), 'output');
      // Named like an output file but a directory: left alone, and the sweep goes on.
      mkdirSync(join(root, 'berth-a.b.app-exec-000000000000.log'));
      utimesSync(join(root, 'berth-a.b.app-exec-000000000000.log'), old, old);
      // No exec directory in the root: the client is never called.
      assert.equal(await endLeftoverExecs({} as ContainerdClient, root), 0);
      assert.deepEqual(readdirSync(root).sort(), ['berth-a.b.app-exec-000000000000.log', 'berth-a.b.app-exec-0a1b.txt', 'berth-a.b.app-exec-123456789abc.log', 'notes.log']);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
  it('tells a task create that collided with another create of the same task (its bundle taken, or removed under it) from other failures', () => {
    const task = '/var/lib/containerd/io.containerd.runtime.v2.task/berth/app-1';
    const failed = (detail: string) => new RuntimeError('internal', 'create task app-1', detail);
    assert.equal(isBundleInUse(failed(`failed to start shim: mkdir /run/containerd/io.containerd.runtime.v2.task/berth/app-1: file exists`), 'berth', 'app-1'), true);
    assert.equal(isBundleInUse(failed(`failed to start shim: symlink ${task} /run/containerd/io.containerd.runtime.v2.task/berth/app-1/work: no such file or directory`), 'berth', 'app-1'), true);
    // Another container's bundle, another namespace, another failure.
    assert.equal(isBundleInUse(failed(`failed to start shim: mkdir /run/containerd/io.containerd.runtime.v2.task/berth/app-10: file exists`), 'berth', 'app-1'), false);
    assert.equal(isBundleInUse(failed(`failed to start shim: symlink ${task} /run/containerd/io.containerd.runtime.v2.task/other/app-1/work: no such file or directory`), 'berth', 'app-1'), false);
    assert.equal(isBundleInUse(failed('failed to start shim: exec: "containerd-shim-runc-v2": executable file not found in $PATH'), 'berth', 'app-1'), false);
    assert.equal(isBundleInUse(new Error('mkdir /run/containerd/io.containerd.runtime.v2.task/berth/app-1: file exists'), 'berth', 'app-1'), false);
  });
  it('lets a change its caller stopped waiting for go on, and has the next call for it wait for that one instead of making another', async () => {
    const changes = new ChangesUnderWay(50);
    let made = 0;
    let finish!: (value: string) => void;
    const change = () => {
      made++;
      return new Promise<string>((resolve) => (finish = resolve));
    };
    await assert.rejects(changes.wait('create task a', changes.joinOrStart('task:a', change)), (e: unknown) => e instanceof RuntimeError && e.kind === 'timeout');
    let settled = false;
    const settling = changes.settled('task:a', 'start:a').then(() => (settled = true));
    const retried = changes.wait('create task a', changes.joinOrStart('task:a', change));
    assert.equal(settled, false, 'still under way');
    finish('created');
    assert.equal(await retried, 'created');
    assert.equal(made, 1, 'the retry joined the change under way');
    await settling;
    // Once it ended, the next call makes the change again; a failure ends it too.
    const again = changes.joinOrStart('task:a', () => Promise.reject(new Error('failed')));
    await assert.rejects(again, /failed/);
    await changes.settled('task:a');
    assert.equal(await changes.joinOrStart('task:a', () => Promise.resolve('made again')), 'made again');
  });
});
