import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { InvalidArgumentError, PermissionDeniedError } from '../../src/engine/errors.js';
import { checkTaskAllowed } from '../../src/engine/admission/security-policy.js';
import { checkRuntimeSupports } from '../../src/engine/admission/runtime-support.js';
import { validateTaskDefinition, type ContainerDefinitionInput, type TaskDefinitionInput } from '../../src/engine/admission/task-validation.js';
import { capabilitySet, DEFAULT_CAPABILITIES, hostCapabilities } from '../../src/runtime/capabilities.js';
import { hostsFile, resolvConf } from '../../src/runtime/etc-files.js';
import { parseSpec, runtimeSpec, specJson, tmpfsOptions } from '../../src/runtime/containerd/oci-spec.js';
import type { ContainerSpec } from '../../src/runtime/types.js';

const definition = (container: Partial<ContainerDefinitionInput>, networkMode = 'BRIDGE'): TaskDefinitionInput => ({
  id: 't1',
  networkMode,
  containers: [{ name: 'app', image: 'busybox', ...container }],
});

function fieldsRefused(input: TaskDefinitionInput): string[] {
  try {
    validateTaskDefinition(input);
  } catch (error) {
    assert.ok(error instanceof InvalidArgumentError);
    return error.violations.map((v) => `${v.field}: ${v.description}`);
  }
  return [];
}

describe('container options: validation', () => {
  it('normalizes capability names and signals, and keeps what was asked', () => {
    const def = validateTaskDefinition(
      definition({
        stopSignal: 'usr1',
        linuxParameters: {
          capabilities: { add: ['net_admin', 'CAP_SYS_TIME'], drop: ['ALL'] },
          initProcessEnabled: true,
          tmpfs: [{ containerPath: '/run/app', sizeMib: 8, mountOptions: ['exec', 'mode=1777'] }],
        },
        ulimits: [{ name: 'NOFILE', softLimit: 1024, hardLimit: 4096 }],
        hostname: 'web-1',
        extraHosts: [{ hostname: 'db.internal', ipAddress: '10.0.0.2' }],
        dnsServers: ['10.0.0.53'],
        dnsSearchDomains: ['corp.test'],
        readonlyRootFilesystem: true,
      }),
    ).containers[0]!;
    assert.equal(def.stopSignal, 'SIGUSR1');
    assert.deepEqual(def.linuxParameters, {
      capabilities: { add: ['CAP_NET_ADMIN', 'CAP_SYS_TIME'], drop: ['ALL'] },
      initProcessEnabled: true,
      sharedMemorySizeMib: 0,
      tmpfs: [{ containerPath: '/run/app', sizeMib: 8, mountOptions: ['exec', 'mode=1777'] }],
    });
    assert.deepEqual(def.ulimits, [{ name: 'nofile', softLimit: 1024, hardLimit: 4096 }]);
    assert.equal(def.readonlyRootFilesystem, true);
  });

  it('refuses bad values, each naming its field', () => {
    const refused = fieldsRefused(
      definition({
        stopSignal: 'SIGNOPE',
        linuxParameters: {
          capabilities: { add: ['NET_ADMIN', 'WIZARDRY'], drop: ['net_admin'] },
          sharedMemorySizeMib: -1,
          tmpfs: [
            { containerPath: 'relative', sizeMib: 8 },
            { containerPath: '/data', sizeMib: 0, mountOptions: ['size=1g', 'uid=x'] },
          ],
        },
        mountPoints: [{ hostPath: '/srv', containerPath: '/data' }],
        ulimits: [
          { name: 'nofile', softLimit: 10, hardLimit: 5 },
          { name: 'nofile', softLimit: 1, hardLimit: 1 },
          { name: 'wishes', softLimit: 1, hardLimit: 1 },
          { name: 'core', softLimit: -1, hardLimit: 5 },
        ],
        hostname: 'not a name',
        extraHosts: [{ hostname: 'ok', ipAddress: '300.1.1.1' }],
        dnsServers: ['resolver.corp'],
        dnsSearchDomains: ['bad domain'],
      }),
    ).map((r) => r.split(':')[0]);
    assert.deepEqual(refused.sort(), [
      'task.containers[0].dns_search_domains[0]',
      'task.containers[0].dns_servers[0]',
      'task.containers[0].extra_hosts[0].ip_address',
      'task.containers[0].hostname',
      'task.containers[0].linux_parameters.capabilities.add[1]',
      'task.containers[0].linux_parameters.capabilities.drop[0]',
      'task.containers[0].linux_parameters.shared_memory_size_mib',
      'task.containers[0].linux_parameters.tmpfs[0].container_path',
      'task.containers[0].linux_parameters.tmpfs[1].container_path',
      'task.containers[0].linux_parameters.tmpfs[1].mount_options[0]',
      'task.containers[0].linux_parameters.tmpfs[1].mount_options[1]',
      'task.containers[0].linux_parameters.tmpfs[1].size_mib',
      'task.containers[0].stop_signal',
      'task.containers[0].ulimits[0].soft_limit',
      'task.containers[0].ulimits[1].name',
      'task.containers[0].ulimits[2].name',
      'task.containers[0].ulimits[3].soft_limit',
    ]);
  });

  it('refuses a host name, extra hosts and resolver settings where the namespace is shared, as ECS does', () => {
    const names = { hostname: 'web', extraHosts: [{ hostname: 'db', ipAddress: '10.0.0.2' }], dnsServers: ['10.0.0.53'], dnsSearchDomains: ['corp.test'] };
    assert.deepEqual(
      fieldsRefused(definition(names, 'TASK')).map((r) => r.split(':')[0]),
      ['task.containers[0].hostname', 'task.containers[0].extra_hosts', 'task.containers[0].dns_servers', 'task.containers[0].dns_search_domains'],
    );
    assert.deepEqual(
      fieldsRefused(definition({ hostname: 'web' }, 'HOST')).map((r) => r.split(':')[0]),
      ['task.containers[0].hostname'],
    );
    assert.deepEqual(fieldsRefused(definition(names, 'NONE')), []);
  });

  it('takes namespaced sysctls only, the security options berth applies, host devices under /dev, and swap on top of a memory limit', () => {
    const refused = fieldsRefused(
      definition({
        systemControls: [
          { namespace: 'net.ipv4.ip_forward', value: '1' },
          { namespace: 'kernel.shmmax', value: '1024' },
          { namespace: 'kernel.panic', value: '1' },
          { namespace: 'vm.swappiness', value: '1' },
          { namespace: 'fs.mqueue.msg_max', value: '' },
          { namespace: 'kernel.shmmax', value: '2048' },
        ],
        dockerSecurityOptions: ['no-new-privileges', 'apparmor=docker-default', 'seccomp:/etc/profile.json', 'label:type:svirt_apache_t'],
        linuxParameters: { devices: [{ hostPath: '/dev/fuse' }, { hostPath: '/etc/passwd' }, { hostPath: '/dev/fuse', permissions: ['execute'] }], maxSwapMib: 10, swappiness: 101 },
      }),
    ).map((r) => r.split(':')[0]);
    assert.deepEqual(refused.sort(), [
      'task.containers[0].docker_security_options[2]',
      'task.containers[0].docker_security_options[3]',
      'task.containers[0].linux_parameters.devices[1].host_path',
      'task.containers[0].linux_parameters.devices[2].permissions[0]',
      'task.containers[0].linux_parameters.max_swap_mib',
      'task.containers[0].linux_parameters.swappiness',
      'task.containers[0].system_controls[2].namespace',
      'task.containers[0].system_controls[3].namespace',
      'task.containers[0].system_controls[4].value',
      'task.containers[0].system_controls[5].namespace',
    ]);
    assert.deepEqual(
      fieldsRefused(definition({ systemControls: [{ namespace: 'net.core.somaxconn', value: '1' }] }, 'TASK')).map((r) => r.split(':')[0]),
      ['task.containers[0].system_controls[0].namespace'],
    );
    const accepted = validateTaskDefinition(
      definition({
        memoryMib: 64,
        dockerSecurityOptions: ['no-new-privileges:true', 'seccomp=unconfined'],
        linuxParameters: { maxSwapMib: 0, devices: [{ hostPath: '/dev/fuse', permissions: ['READ'] }] },
      }),
    ).containers[0]!;
    assert.deepEqual(accepted.securityOptions, { noNewPrivileges: true, seccompUnconfined: true });
    assert.deepEqual(accepted.linuxParameters?.devices, [{ hostPath: '/dev/fuse', containerPath: '/dev/fuse', permissions: ['read'] }]);
  });

  it('asks for security.allowDevices for host devices and security.allowUnconfined for unconfined containers', () => {
    const task = validateTaskDefinition(definition({ dockerSecurityOptions: ['apparmor:unconfined'], linuxParameters: { devices: [{ hostPath: '/dev/fuse' }] } }));
    const none = { allowPrivileged: false, allowHostPathMounts: false, allowHostNetwork: false, allowDevices: false, allowUnconfined: false, allowHostPid: false, allowHostIpc: false };
    assert.throws(
      () => checkTaskAllowed(task, none),
      (error: unknown) =>
        error instanceof PermissionDeniedError &&
        error.violations.map((v) => `${v.field} ${v.setting}`).join() ===
          'task.containers[0].linux_parameters.devices[0] security.allowDevices,task.containers[0].docker_security_options security.allowUnconfined',
    );
    checkTaskAllowed(task, { ...none, allowDevices: true, allowUnconfined: true });
    checkTaskAllowed(validateTaskDefinition(definition({ dockerSecurityOptions: ['apparmor:docker-default', 'no-new-privileges'] })), none);
  });

  it('expands a container_port_range into a dynamic host port per container port, counted against the limit', () => {
    const def = validateTaskDefinition(definition({ portMappings: [{ containerPort: 0, containerPortRange: '8000-8002', protocol: 'UDP' }] })).containers[0]!;
    assert.deepEqual(
      def.portMappings.map((p) => `${p.containerPort}/${p.protocol}:${p.hostPort}`),
      ['8000/udp:0', '8001/udp:0', '8002/udp:0'],
    );
    assert.deepEqual(
      fieldsRefused(
        definition({
          portMappings: [
            { containerPort: 0, containerPortRange: '9000-8000' },
            { containerPort: 80, containerPortRange: '1-2' },
            { containerPort: 0, hostPort: 5, containerPortRange: '3-4' },
          ],
        }),
      ).map((r) => r.split(':')[0]),
      ['task.containers[0].port_mappings[0].container_port_range', 'task.containers[0].port_mappings[1].container_port_range', 'task.containers[0].port_mappings[2].host_port'],
    );
    assert.match(fieldsRefused(definition({ portMappings: [{ containerPort: 0, containerPortRange: '1000-60000' }] }))[0]!, /port_mappings: must have at most 100 port mappings/);
  });

  it('takes pid_mode and ipc_mode TASK in network mode task only, and asks for security settings for HOST', () => {
    assert.deepEqual(
      fieldsRefused({ ...definition({}), pidMode: 'TASK', ipcMode: 'SOMETIMES' }).map((r) => r.split(':')[0]),
      ['task.pid_mode', 'task.ipc_mode'],
    );
    const shared = validateTaskDefinition({ ...definition({}, 'TASK'), pidMode: 'TASK', ipcMode: 'TASK' });
    assert.deepEqual([shared.pidMode, shared.ipcMode], ['task', 'task']);
    const host = validateTaskDefinition({ ...definition({}), pidMode: 'HOST', ipcMode: 'HOST' });
    const none = { allowPrivileged: false, allowHostPathMounts: false, allowHostNetwork: false, allowDevices: false, allowUnconfined: false, allowHostPid: false, allowHostIpc: false };
    assert.throws(
      () => checkTaskAllowed(host, none),
      (error: unknown) => error instanceof PermissionDeniedError && error.violations.map((v) => v.setting).join() === 'security.allowHostPid,security.allowHostIpc',
    );
  });

  it('takes links in bridge mode to other containers of the task, each an implicit START dependency', () => {
    const def = validateTaskDefinition({
      id: 't1',
      networkMode: 'BRIDGE',
      containers: [
        { name: 'app', image: 'busybox', links: ['db:database', 'cache'] },
        { name: 'db', image: 'busybox' },
        { name: 'cache', image: 'busybox' },
      ],
    });
    assert.deepEqual(def.containers[0]!.links, [
      { container: 'db', alias: 'database' },
      { container: 'cache', alias: 'cache' },
    ]);
    assert.deepEqual(def.containers[0]!.dependsOn, [
      { containerName: 'db', condition: 'START' },
      { containerName: 'cache', condition: 'START' },
    ]);
    const refused = fieldsRefused({
      id: 't1',
      networkMode: 'BRIDGE',
      containers: [
        { name: 'app', image: 'busybox', links: ['app', 'ghost', 'db:bad alias', 'a:b:c'] },
        { name: 'db', image: 'busybox' },
      ],
    }).map((r) => r.split(':')[0]);
    assert.deepEqual(refused.sort(), ['task.containers[0].links[0]', 'task.containers[0].links[1]', 'task.containers[0].links[2]', 'task.containers[0].links[3]']);
    assert.deepEqual(
      fieldsRefused(definition({ links: ['x'] }, 'TASK')).map((r) => r.split(':')[0]),
      ['task.containers[0].links', 'task.containers[0].links[0]'],
    );
  });

  it('counts the repeated fields before reading them', () => {
    const refused = fieldsRefused(definition({ dnsServers: ['1.1.1.1', '1.0.0.1', '8.8.8.8', '8.8.4.4'], extraHosts: Array.from({ length: 101 }, () => ({ hostname: 'x', ipAddress: 'bad' })) }));
    assert.deepEqual(refused, ['task.containers[0].extra_hosts: must have at most 100 entries', 'task.containers[0].dns_servers: must have at most 3 entries']);
  });
});

describe('container options: what the runtimes are given', () => {
  it('computes one capability set for both runtimes: defaults, plus add, minus drop, ALL on either side', () => {
    assert.deepEqual([...capabilitySet([], [])].sort(), [...DEFAULT_CAPABILITIES].sort());
    assert.ok(capabilitySet(['CAP_NET_ADMIN'], ['CAP_CHOWN']).includes('CAP_NET_ADMIN'));
    assert.ok(!capabilitySet(['CAP_NET_ADMIN'], ['CAP_CHOWN']).includes('CAP_CHOWN'));
    assert.deepEqual(capabilitySet(['CAP_NET_BIND_SERVICE'], ['ALL']), ['CAP_NET_BIND_SERVICE']);
    assert.deepEqual(
      capabilitySet(['ALL'], ['CAP_SYS_ADMIN']),
      hostCapabilities().filter((c) => c !== 'CAP_SYS_ADMIN'),
    );
  });

  it('merges tmpfs options as Docker does: noexec,nosuid,nodev, each replaced by its opposite, values by later ones', () => {
    assert.deepEqual(tmpfsOptions([], 1024), ['noexec', 'nosuid', 'nodev', 'size=1024']);
    assert.deepEqual(tmpfsOptions(['exec', 'mode=700', 'mode=755', 'ro'], 2048), ['nosuid', 'nodev', 'exec', 'mode=755', 'ro', 'size=2048']);
  });

  it('writes /etc/hosts and /etc/resolv.conf with the extra hosts, name servers and search domains, keeping the host options', () => {
    assert.match(hostsFile('web-1', [{ hostname: 'db.internal', ipAddress: '10.1.2.3' }]), /127\.0\.1\.1\tweb-1\n10\.1\.2\.3\tdb\.internal\n$/);
    const host = '# from the host\nnameserver 192.0.2.1\nsearch example.org\noptions ndots:2\n';
    assert.equal(resolvConf(host), host);
    assert.equal(resolvConf(host, ['10.0.0.53']), 'search example.org\nnameserver 10.0.0.53\noptions ndots:2\n');
    assert.equal(resolvConf(host, [], ['corp.test']), 'search corp.test\nnameserver 192.0.2.1\noptions ndots:2\n');
    assert.equal(hostsFile(undefined), '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n');
  });

  it("leaves the host's loopback name servers out of a resolv.conf for a namespace of its own, as Docker does", () => {
    const resolved = 'nameserver 127.0.0.53\nnameserver 192.0.2.1\noptions edns0\n';
    assert.equal(resolvConf(resolved), resolved);
    assert.equal(resolvConf(resolved, [], [], true), 'nameserver 192.0.2.1\noptions edns0\n');
    assert.equal(resolvConf('nameserver 127.0.0.53\nnameserver ::1\nsearch lan\n', [], [], true), 'search lan\nnameserver 8.8.8.8\nnameserver 8.8.4.4\n');
    assert.equal(resolvConf('nameserver 127.0.0.53\n', ['10.0.0.53'], [], true), 'nameserver 10.0.0.53\n');
  });

  it('writes unlimited rlimits as 2^64-1 for containerd, and reads them back as unlimited', () => {
    const spec: ContainerSpec = {
      name: 'c',
      image: 'busybox',
      env: {},
      labels: {},
      cpuShares: 0,
      memoryBytes: 0,
      memoryReservationBytes: 0,
      network: 'none',
      ports: [],
      ulimits: [
        { name: 'core', soft: -1, hard: -1 },
        { name: 'nofile', soft: 1024, hard: 4096 },
      ],
      init: true,
      readonlyRootfs: true,
    };
    const oci = runtimeSpec({
      id: 'c',
      namespace: 'n',
      spec,
      image: { config: { Cmd: ['sleep', '1'] }, rootfs: { type: 'layers', diff_ids: [] } },
      user: { uid: 0, gid: 0 },
      files: { hosts: '/h', hostname: '/n', resolvConf: '/r' },
      initBinary: '/usr/bin/tini-static',
    });
    const json = specJson(oci);
    assert.match(json, /"rlimits":\[\{"type":"RLIMIT_CORE","soft":18446744073709551615,"hard":18446744073709551615\},\{"type":"RLIMIT_NOFILE","soft":1024,"hard":4096\}\]/);
    assert.match(json, /"args":\["\/sbin\/docker-init","--","sleep","1"\]/);
    assert.match(json, /"root":\{"path":"rootfs","readonly":true\}/);
    assert.equal(specJson(parseSpec(json)), json);
  });
});

describe('container options: what a runtime cannot do alike', () => {
  it('refuses interactive without pseudo_terminal on a runtime that cannot keep stdin open without a terminal, naming the field', () => {
    const definition = validateTaskDefinition({
      id: 't',
      containers: [
        { name: 'a', image: 'busybox', interactive: true, pseudoTerminal: true },
        { name: 'b', image: 'busybox', interactive: true },
      ],
    });
    assert.equal(definition.containers[1]?.interactive, true);
    checkRuntimeSupports(definition, { name: 'docker', opensStdinWithoutTerminal: true, logConfigurationProblem: () => undefined });
    assert.throws(
      () => checkRuntimeSupports(definition, { name: 'containerd', opensStdinWithoutTerminal: false, logConfigurationProblem: () => undefined }),
      (error: unknown) => error instanceof InvalidArgumentError && error.violations.length === 1 && error.violations[0]?.field === 'task.containers[1].interactive',
    );
  });
});
