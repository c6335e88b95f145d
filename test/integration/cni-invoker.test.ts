import assert from 'node:assert/strict';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { pino } from 'pino';
import { CniError } from '../../src/engine/network/cni/cni-error.js';
import { CniInvoker, type CniRuntimeConf } from '../../src/engine/network/cni/cni-invoker.js';
import { parseCniResult, taskAddresses } from '../../src/engine/network/cni/cni-result.js';
import { defaultNetworkConfigList, parseNetworkConfigList, withoutPortMapping } from '../../src/engine/network/cni/network-config.js';
import { NetworkNamespaces } from '../../src/engine/network/cni/network-namespaces.js';
import { ProcessLauncher } from '../../src/engine/process-launcher.js';
import { StateStore } from '../../src/engine/store/state-store.js';
import { TaskNetworking } from '../../src/engine/network/task-network.js';
import { CNI_PLUGIN_DIR, createDefaultShapedNetwork, createNamespace, createTestNetwork, scriptPlugin, startNamespaceHolder } from '../harness/cni-network.js';
import { freeLoopbackPort, waitUntil } from '../harness/processes.js';

/** One launcher for every invoker of the file, as an agent has. */
const launcher = new ProcessLauncher();

/** Reads what a TCP server at 127.0.0.1:port says first; undefined when nothing answers. */
function readFrom(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let data = '';
    socket.setTimeout(3000, () => socket.destroy());
    socket.on('data', (chunk) => (data += chunk.toString()));
    socket.on('close', () => resolve(data === '' ? undefined : data));
    socket.on('error', () => resolve(undefined));
  });
}

const conf = (ns: string, containerId: string, capabilityArgs: Record<string, unknown> = {}): CniRuntimeConf => ({
  containerId,
  netns: ns,
  ifName: 'eth0',
  args: { IgnoreUnknown: '1', BERTH_TASK_ID: containerId },
  capabilityArgs,
});

describe('CNI invoker with the real plugins in real network namespaces', () => {
  const invoker = new CniInvoker({ pluginDirs: [CNI_PLUGIN_DIR], timeoutMs: 20_000, launcher });
  const cleanups: (() => void)[] = [];
  after(() => {
    for (const cleanup of cleanups.reverse()) cleanup();
  });

  it('ADD chains loopback, bridge and portmap; DEL in reverse releases the address, the veth and the port', async () => {
    const network = createTestNetwork();
    cleanups.push(() => network.remove());
    const ns = createNamespace();
    cleanups.push(() => ns.remove());
    const list = parseNetworkConfigList(network.config, 'test');
    const hostPort = await freeLoopbackPort();
    const attachment = conf(ns.path, 'invoker-add', { portMappings: [{ hostPort, containerPort: 8080, protocol: 'tcp' }] });

    const result = await invoker.add(list, attachment);
    const addresses = taskAddresses(parseCniResult(result));
    assert.equal(addresses.ipAddresses.length, 1);
    const [ip] = addresses.ipAddresses[0]!.split('/');
    assert.ok(network.allocatedAddresses().includes(ip!), `host-local holds ${ip}`);
    assert.match(ns.exec(['ip', '-o', 'addr', 'show', 'eth0']), new RegExp(`inet ${ip!.replace(/\./g, '\\.')}/24`));
    assert.match(ns.exec(['ip', '-o', 'link', 'show', 'lo']), /UP/);
    assert.equal(network.bridgePorts().length, 1);

    // A server in the namespace answers on the mapped host port of 127.0.0.1.
    const server = spawn('ip', ['netns', 'exec', ns.name, 'busybox', 'nc', '-l', '-p', '8080', '-e', 'echo', 'hello-from-the-namespace']);
    try {
      const answer = await waitUntil('the server in the namespace answers on the host port', 10_000, () => readFrom(hostPort));
      assert.equal(answer.trim(), 'hello-from-the-namespace');
    } finally {
      server.kill('SIGKILL');
    }

    assert.ok(network.natRules().length > 0, 'masquerading and the port mapping are in place');
    await invoker.del(list, attachment, result);
    assert.deepEqual(network.allocatedAddresses(), []);
    assert.deepEqual(network.bridgePorts(), []);
    assert.deepEqual(network.natRules(), []);
    assert.doesNotMatch(ns.exec(['ip', '-o', 'link']), /eth0/);
    // DEL is idempotent, also once the namespace is gone (no namespace given).
    await invoker.del(list, attachment, result);
    ns.remove();
    await invoker.del(list, { ...attachment, netns: '' }, result);
  });

  it("CHECK passes on a network as ADD left it, and fails with the plugin's error once the interface is gone", async () => {
    // Without portmap: its CHECK in 1.1 fails for every IPv4-only attachment (containernetworking/plugins#819).
    // Without masquerading: the bridge plugin finds the rule to delete through the interface, which
    // this test removes.
    const network = createTestNetwork({ plugins: (defaults) => [defaults[0]!, { ...defaults[1]!, ipMasq: false }] });
    cleanups.push(() => network.remove());
    const ns = createNamespace();
    cleanups.push(() => ns.remove());
    const list = parseNetworkConfigList(network.config, 'test');
    const attachment = conf(ns.path, 'invoker-check');
    const result = await invoker.add(list, attachment);
    await invoker.check(list, attachment, result);
    ns.exec(['ip', 'link', 'delete', 'eth0']);
    await assert.rejects(invoker.check(list, attachment, result), (error: unknown) => {
      assert.ok(error instanceof CniError);
      assert.equal(error.command, 'CHECK');
      return true;
    });
    await invoker.del(list, attachment, result);
    assert.deepEqual(network.allocatedAddresses(), []);
    assert.deepEqual(network.natRules(), []);
  });

  it("turns a plugin's error result into a structured error with code, message and plugin", async () => {
    const network = createTestNetwork({
      plugins: (defaults) => [defaults[0]!, { ...defaults[1]!, ipam: { type: 'host-local', ranges: [[{ subnet: '10.300.0.0/24' }]] } }],
    });
    cleanups.push(() => network.remove());
    const ns = createNamespace();
    cleanups.push(() => ns.remove());
    const list = parseNetworkConfigList(network.config, 'test');
    await assert.rejects(invoker.add(list, conf(ns.path, 'invoker-error')), (error: unknown) => {
      assert.ok(error instanceof CniError, String(error));
      assert.equal(error.command, 'ADD');
      assert.equal(error.plugin, 'bridge');
      assert.ok(error.code !== undefined && error.code > 0);
      assert.match(error.msg, /10\.300\.0\.0/);
      assert.match(error.message, /CNI ADD failed in plugin "bridge"/);
      return true;
    });
  });

  it('checks VERSION against each plugin, and reports a missing plugin by name', async () => {
    const dir = scriptPlugin('old-plugin', `echo '{"cniVersion":"0.2.0","supportedVersions":["0.1.0","0.2.0"]}'`);
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const withOld = new CniInvoker({ pluginDirs: [dir, CNI_PLUGIN_DIR], timeoutMs: 5000, launcher });
    const list = parseNetworkConfigList({ cniVersion: '1.0.0', name: 'v', plugins: [{ type: 'loopback' }, { type: 'old-plugin' }] }, 'test');
    await assert.rejects(withOld.checkVersions(list), /plugin "old-plugin": the plugin does not speak CNI 1\.0\.0 \(it speaks 0\.1\.0, 0\.2\.0\) \(code 1, incompatible CNI version\)/);
    const missing = parseNetworkConfigList({ cniVersion: '1.0.0', name: 'v', plugins: [{ type: 'no-such-plugin' }] }, 'test');
    await assert.rejects(withOld.checkVersions(missing), /no executable "no-such-plugin" in .*:\/usr\/lib\/cni/);
  });

  it('gives capability arguments only to plugins that declare them, passes CNI_ARGS and GOMAXPROCS=1, and kills a plugin that hangs', async () => {
    const seen = mkdtempSync(join(tmpdir(), 'berth-seen-'));
    cleanups.push(() => rmSync(seen, { recursive: true, force: true }));
    const script = (name: string) => `
      if [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
      cat > ${seen}/${name}.stdin
      echo "$CNI_ARGS" > ${seen}/${name}.args
      echo "$GOMAXPROCS" > ${seen}/${name}.gomaxprocs
      echo '{"cniVersion":"1.0.0","interfaces":[{"name":"eth0","sandbox":"/x"}],"ips":[{"address":"192.0.2.7/24","interface":0}]}'`;
    const dir = scriptPlugin('first', script('first'));
    const second = scriptPlugin('second', script('second'));
    const hang = scriptPlugin('hang', `if [ "$CNI_COMMAND" = VERSION ]; then echo '{"supportedVersions":["1.0.0"]}'; exit 0; fi\nexec sleep 30`);
    cleanups.push(() => [dir, second, hang].forEach((d) => rmSync(d, { recursive: true, force: true })));
    // A timeout a loaded machine never reaches for the plugins that answer; a short one for the one that hangs.
    const scripted = new CniInvoker({ pluginDirs: [dir, second, hang], timeoutMs: 30_000, launcher });
    const impatient = new CniInvoker({ pluginDirs: [hang], timeoutMs: 500, launcher });
    const list = parseNetworkConfigList({ cniVersion: '1.0.0', name: 'caps', plugins: [{ type: 'first', capabilities: { portMappings: true, ips: true } }, { type: 'second' }] }, 'test');
    const result = await scripted.add(list, conf('/run/netns/none', 'caps', { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }], ips: ['192.0.2.7/24'], bandwidth: {} }));
    const first = JSON.parse(readFileSync(join(seen, 'first.stdin'), 'utf8'));
    const secondInput = JSON.parse(readFileSync(join(seen, 'second.stdin'), 'utf8'));
    assert.deepEqual(first.runtimeConfig, { portMappings: [{ hostPort: 1, containerPort: 2, protocol: 'tcp' }], ips: ['192.0.2.7/24'] });
    assert.equal(first.name, 'caps');
    assert.equal(first.prevResult, undefined);
    assert.equal(secondInput.runtimeConfig, undefined);
    assert.deepEqual(secondInput.prevResult.ips, [{ address: '192.0.2.7/24', interface: 0 }]);
    assert.equal(readFileSync(join(seen, 'first.args'), 'utf8').trim(), 'IgnoreUnknown=1;BERTH_TASK_ID=caps');
    assert.equal(readFileSync(join(seen, 'first.gomaxprocs'), 'utf8').trim(), '1', 'plugins run with one P');
    assert.deepEqual(taskAddresses(parseCniResult(result)).ipAddresses, ['192.0.2.7/24']);

    const hanging = parseNetworkConfigList({ cniVersion: '1.0.0', name: 'h', plugins: [{ type: 'hang' }] }, 'test');
    await assert.rejects(impatient.add(hanging, conf('/run/netns/none', 'hang')), /did not finish within 500 ms and was killed/);
  });

  it('runs at most maxParallel plugin programs at once; without a limit all at once', async () => {
    const marks = mkdtempSync(join(tmpdir(), 'berth-parallel-'));
    cleanups.push(() => rmSync(marks, { recursive: true, force: true }));
    // Each ADD marks itself running, writes how many are, and stays a moment.
    const dir = scriptPlugin(
      'counted',
      `if [ "$CNI_COMMAND" = VERSION ]; then echo '{"cniVersion":"1.0.0","supportedVersions":["1.0.0"]}'; exit 0; fi
      touch ${marks}/running.$$
      ls ${marks} | grep -c '^running' >> ${marks}/counts.$CNI_CONTAINERID
      sleep 0.3
      rm ${marks}/running.$$
      echo '{"cniVersion":"1.0.0"}'`,
    );
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const list = parseNetworkConfigList({ cniVersion: '1.0.0', name: 'counted', plugins: [{ type: 'counted' }] }, 'test');
    const mostAtOnce = async (invoker: CniInvoker, label: string) => {
      await Promise.all(Array.from({ length: 8 }, (_, i) => invoker.add(list, conf('/run/netns/none', `${label}-${i}`))));
      const counts = Array.from({ length: 8 }, (_, i) =>
        readFileSync(join(marks, `counts.${label}-${i}`), 'utf8')
          .trim()
          .split('\n')
          .map(Number),
      );
      return Math.max(...counts.flat());
    };
    assert.equal(await mostAtOnce(new CniInvoker({ pluginDirs: [dir], timeoutMs: 30_000, maxParallel: 2, launcher }), 'limited'), 2);
    assert.ok((await mostAtOnce(new CniInvoker({ pluginDirs: [dir], timeoutMs: 30_000, launcher }), 'unlimited')) > 2, 'without a limit the ADDs overlap');
  });

  it('keeps the attachment in the state store: a restarted agent deletes what an earlier one added', async () => {
    const network = createTestNetwork();
    cleanups.push(() => network.remove());
    const dir = mkdtempSync(join(tmpdir(), 'berth-netstore-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const log = pino({ level: 'silent' });
    const settings = { agentId: 'cni-test', list: parseNetworkConfigList(network.config, 'test'), ifName: 'eth0' };
    const namespaces = new NetworkNamespaces(5000, launcher);
    // A process in a namespace of its own stands in for the pause container.
    const holder = await startNamespaceHolder();
    cleanups.push(() => holder.stop());
    const definition = { id: 'restart-1', family: 'f', revision: 1, networkMode: 'task' as const, containers: [], cpuUnits: 0, memoryMib: 0 };

    const firstStore = new StateStore(join(dir, 'berth.db'), { count: 100, maxAgeMs: 3_600_000 });
    const first = new TaskNetworking(settings, invoker, namespaces, firstStore, log);
    const setUp = await first.setUp(definition, holder.pid, []);
    assert.ok(setUp.ok, JSON.stringify(setUp));
    assert.equal(network.allocatedAddresses().length, 1);
    firstStore.close();
    holder.stop();

    const secondStore = new StateStore(join(dir, 'berth.db'), { count: 100, maxAgeMs: 3_600_000 });
    const second = new TaskNetworking(settings, invoker, namespaces, secondStore, log);
    assert.deepEqual(second.restoredState('restart-1'), { kind: 'ready', status: setUp.status });
    // The task is gone from the agent: its attachment is a stray, deleted at start.
    await second.releaseStrays(new Set());
    assert.deepEqual(network.allocatedAddresses(), []);
    assert.deepEqual(network.natRules(), [], 'DEL ran in the named namespace, which outlived its process');
    assert.deepEqual(network.bridgePorts(), []);
    assert.equal(await namespaces.exists(second.namespaceName('restart-1')), false);
    assert.deepEqual(secondStore.loadCniAttachments(), []);
    secondStore.close();
  });

  it('a network whose plugin is missing fails set-up with a reason naming it, and tearing it down leaves nothing behind', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'berth-netstore-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = new StateStore(join(dir, 'berth.db'), { count: 100, maxAgeMs: 3_600_000 });
    cleanups.push(() => store.close());
    const list = parseNetworkConfigList({ cniVersion: '1.0.0', name: 'missing', plugins: [{ type: 'loopback' }, { type: 'not-installed' }] }, 'test');
    const namespaces = new NetworkNamespaces(5000, launcher);
    const networking = new TaskNetworking({ agentId: 'cni-test', list, ifName: 'eth0' }, invoker, namespaces, store, pino({ level: 'silent' }));
    const holder = await startNamespaceHolder();
    cleanups.push(() => holder.stop());
    const definition = { id: 'missing-1', family: 'f', revision: 1, networkMode: 'task' as const, containers: [], cpuUnits: 0, memoryMib: 0 };
    const setUp = await networking.setUp(definition, holder.pid, []);
    assert.deepEqual(setUp, { ok: false, reason: `cannot set up the task's network: CNI VERSION failed in plugin "not-installed": no executable "not-installed" in ${CNI_PLUGIN_DIR}` });
    assert.equal(networking.hasAttachment('missing-1'), true, 'kept until torn down');
    await networking.tearDown('missing-1');
    assert.equal(networking.hasAttachment('missing-1'), false);
    assert.deepEqual(store.loadCniAttachments(), []);
    assert.equal(await namespaces.exists(networking.namespaceName('missing-1')), false);
  });

  it("names namespaces as `ip netns` does, without starting it: made with lo up, kept when there, a crash's empty file replaced, a process's attached, deleted", async () => {
    const namespaces = new NetworkNamespaces(5000, launcher);
    const name = `berth-test-ns-${process.pid}`;
    const path = namespaces.pathOf(name);
    cleanups.push(() => spawnSync('ip', ['netns', 'delete', name], { stdio: 'ignore' }));
    const inode = () => statSync(path).ino;
    const lo = () => execFileSync('ip', ['-netns', name, '-o', 'link', 'show', 'lo'], { encoding: 'utf8' });

    assert.equal(await namespaces.create(name), path);
    assert.match(execFileSync('ip', ['netns', 'list'], { encoding: 'utf8' }), new RegExp(`^${name}\\b`, 'm'));
    assert.match(lo(), /<LOOPBACK,UP,LOWER_UP>/);
    // A namespace of its own, not the host's.
    assert.notEqual(statSync(path).ino, statSync('/proc/self/ns/net').ino);
    const made = inode();
    // Made again (an ADD cut short by a crash): the same namespace, lo brought up again.
    execFileSync('ip', ['-netns', name, 'link', 'set', 'lo', 'down']);
    await namespaces.create(name);
    assert.equal(inode(), made);
    assert.match(lo(), /<LOOPBACK,UP,LOWER_UP>/);

    await namespaces.remove(name);
    assert.equal(existsSync(path), false);
    await namespaces.remove(name); // gone already: done

    // A crash between making the file and mounting the namespace on it leaves an empty file.
    writeFileSync(path, '');
    await namespaces.create(name);
    assert.match(lo(), /<LOOPBACK,UP,LOWER_UP>/);
    await namespaces.remove(name);

    const holder = await startNamespaceHolder();
    cleanups.push(() => holder.stop());
    await namespaces.attach(name, holder.pid);
    assert.equal(statSync(path).ino, statSync(`/proc/${holder.pid}/ns/net`).ino);
    await namespaces.remove(name);
    assert.equal(existsSync(path), false);

    for (const bad of ['../etc', 'a\0b', '..']) await assert.rejects(launcher.networkNamespace({ op: 'add', name: bad }, 5000), /a namespace name without "\/"/);
    await assert.rejects(launcher.networkNamespace({ op: 'attach', name, pid: 2 ** 22 + 1 }, 5000), /cannot attach network namespace .*No such file or directory/);
    assert.equal(existsSync(path), false);
  });

  it("berth's default network: lo is up in the namespace berth makes, with no loopback plugin; a task without host ports runs the bridge plugin alone, one with a host port portmap too; DEL runs what ADD ran", async () => {
    const network = createDefaultShapedNetwork();
    cleanups.push(() => network.remove());
    // Each plugin is run through a script that logs its command and type, then becomes the real one.
    const plugins = mkdtempSync(join(tmpdir(), 'berth-plugins-'));
    cleanups.push(() => rmSync(plugins, { recursive: true, force: true }));
    const log = join(plugins, 'runs.log');
    for (const type of ['loopback', 'bridge', 'host-local', 'portmap']) {
      writeFileSync(join(plugins, type), `#!/bin/sh\necho "$CNI_COMMAND ${type}" >> ${log}\nexec ${join(CNI_PLUGIN_DIR, type)}\n`);
      chmodSync(join(plugins, type), 0o755);
    }
    const ran = () => {
      const runs = existsSync(log) ? readFileSync(log, 'utf8').split('\n') : [];
      rmSync(log, { force: true });
      return runs.filter((run) => run !== '' && !run.startsWith('VERSION '));
    };
    const dir = mkdtempSync(join(tmpdir(), 'berth-netstore-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const store = new StateStore(join(dir, 'berth.db'), { count: 100, maxAgeMs: 3_600_000 });
    cleanups.push(() => store.close());
    const list = parseNetworkConfigList(defaultNetworkConfigList({ subnet: network.subnet, bridge: network.bridge }), 'test');
    const namespaces = new NetworkNamespaces(5000, launcher);
    const networking = new TaskNetworking(
      { agentId: 'cni-default', list, listWithoutPorts: withoutPortMapping(list), ifName: 'eth0' },
      new CniInvoker({ pluginDirs: [plugins], timeoutMs: 20_000, launcher }),
      namespaces,
      store,
      pino({ level: 'silent' }),
    );
    const definition = (id: string) => ({ id, family: 'f', revision: 1, networkMode: 'task' as const, containers: [], cpuUnits: 0, memoryMib: 0 });

    const plain = await networking.setUp(definition('plain-1'), undefined, []);
    assert.ok(plain.ok, JSON.stringify(plain));
    assert.deepEqual(ran(), ['ADD bridge', 'ADD host-local']);
    const plainName = networking.namespaceName('plain-1');
    assert.match(execFileSync('ip', ['-netns', plainName, '-o', 'link', 'show', 'lo'], { encoding: 'utf8' }), /<LOOPBACK,UP,LOWER_UP>/);

    const hostPort = await freeLoopbackPort();
    const ported = await networking.setUp(definition('ported-1'), undefined, [{ hostPort, containerPort: 8080, protocol: 'tcp' }]);
    assert.ok(ported.ok, JSON.stringify(ported));
    assert.deepEqual(ran(), ['ADD bridge', 'ADD host-local', 'ADD portmap']);
    const server = spawn('ip', ['netns', 'exec', networking.namespaceName('ported-1'), 'busybox', 'nc', '-l', '-p', '8080', '-e', 'echo', 'hello-from-the-task']);
    try {
      const answer = await waitUntil('the server in the namespace answers on the host port', 10_000, () => readFrom(hostPort));
      assert.equal(answer.trim(), 'hello-from-the-task');
    } finally {
      server.kill('SIGKILL');
    }
    assert.deepEqual(
      store
        .loadCniAttachments()
        .map((a) => [a.taskId, (a.config as { plugins: { type: string }[] }).plugins.map((p) => p.type)])
        .sort(),
      [
        ['plain-1', ['bridge']],
        ['ported-1', ['bridge', 'portmap']],
      ],
      'each attachment keeps the list its ADD ran',
    );

    await networking.tearDown('ported-1');
    assert.deepEqual(ran(), ['DEL portmap', 'DEL bridge', 'DEL host-local']);
    await networking.tearDown('plain-1');
    assert.deepEqual(ran(), ['DEL bridge', 'DEL host-local']);
    assert.deepEqual(network.allocatedAddresses(), []);
    assert.equal(await namespaces.exists(plainName), false);
    assert.deepEqual(store.loadCniAttachments(), []);
  });
});
