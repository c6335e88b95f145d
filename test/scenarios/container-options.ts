import assert from 'node:assert/strict';
import { status, type ServiceError } from '@grpc/grpc-js';
import { after, before, describe, it } from 'node:test';
import { DEFAULT_CAPABILITIES, LINUX_CAPABILITIES } from '../../src/runtime/capabilities.js';
import { existsSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { LinuxParameters, NamespaceMode, type ContainerDefinition } from '../../src/gen/berth/agent/v1/task_definition.js';
import { readStream, startTestAgent, type TestAgent } from '../harness/agent.js';
import { logFileSeenByDaemon } from '../harness/daemon-witness.js';
import { waitUntil } from '../harness/processes.js';
import { startSyslog } from '../harness/rsyslog.js';
import { decodeMessagePack } from '../harness/msgpack.js';
import { runtimeContainerName } from '../../src/engine/tasks/labels.js';
import { createServer, type AddressInfo } from 'node:net';
import { once } from 'node:events';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, containerOf, ContainerStatus, NetworkMode, task, taskId, TaskStatus } from '../harness/task-builders.js';

/** The CapEff mask /proc/self/status shows for a set of capabilities. */
function capabilityMask(names: readonly string[]): string {
  const mask = names.reduce((m, name) => m | (1n << BigInt(LINUX_CAPABILITIES.indexOf(name as (typeof LINUX_CAPABILITIES)[number]))), 0n);
  return mask.toString(16).padStart(16, '0');
}

/**
 * Polls up to 5 s for the orphan `usleep` an earlier exec left behind: "zombie" when it exited and
 * nothing reaped it, "reaped" when it is gone.
 */
const ORPHAN_FATE =
  'i=0; while [ $i -lt 50 ]; do s=$(cat /proc/[0-9]*/stat 2>/dev/null | grep "(usleep)"); case "$s" in *") Z "*) echo zombie; exit 0;; "") echo reaped; exit 0;; esac; i=$((i+1)); sleep 0.1; done; echo running';

/**
 * The container options beyond the core (ulimits, capabilities, read-only root, tmpfs, /dev/shm,
 * host name and name resolution, an init, the stop signal), each observed from inside the
 * container. The same expectations hold on both runtimes.
 */
export function containerOptionScenarios(kind: RuntimeKind): void {
  describe(`container options observed from inside the container on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;

    before(async () => {
      env = await startRuntimeEnvironment('options', kind);
      agent = await startTestAgent(env, { engine: { defaultUlimits: ['nofile=2048:4096'] }, security: { allowDevices: true, allowHostPid: true, allowHostIpc: true } });
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const sleeper = (name: string, overrides: Partial<ContainerDefinition> = {}) => container(name, env.image, { registryCredentials: env.credentials, command: ['sleep', '300'], ...overrides });
    const start = (id: string, containers: ContainerDefinition[], networkMode = NetworkMode.NETWORK_MODE_BRIDGE) => agent.calls.runUntil(task(id, containers, { networkMode }));
    /** Runs a shell script in a container: its output; fails the test on a non-zero exit. */
    const inside = async (id: string, name: string, script: string) => {
      const { code, output } = await agent.calls.shell(id, name, script);
      assert.equal(code, 0, `${script}: ${output}`);
      return output;
    };
    /** Soft and hard limits of open files and core size of the container's PID 1 (from /proc/1/limits). */
    const limitsOf = async (id: string, name: string) => {
      const lines = (await inside(id, name, "grep -E '^Max (open files|core file size) ' /proc/1/limits")).split('\n');
      return Object.fromEntries(lines.map((line) => /^Max (open files|core file size) +(\S+) +(\S+)/.exec(line)!).map((m) => [m[1]!, `${m[2]} ${m[3]}`]));
    };

    it('applies ulimits (and engine.defaultUlimits where none is set), capabilities, a read-only root with a writable tmpfs, and the /dev/shm size', async () => {
      const id = taskId('limits');
      await start(id, [
        sleeper('app', {
          ulimits: [
            { name: 'nofile', softLimit: 4096, hardLimit: 8192 },
            { name: 'core', softLimit: -1, hardLimit: -1 },
          ],
          linuxParameters: LinuxParameters.fromPartial({
            capabilities: { add: ['NET_ADMIN', 'cap_sys_time'], drop: ['CHOWN', 'NET_RAW'] },
            sharedMemorySizeMib: 128,
            tmpfs: [{ containerPath: '/scratch', sizeMib: 16, mountOptions: ['exec', 'mode=700'] }],
          }),
          readonlyRootFilesystem: true,
        }),
        sleeper('plain', { linuxParameters: LinuxParameters.fromPartial({ capabilities: { add: [], drop: ['ALL'] } }) }),
      ]);
      // The container's own process (PID 1), as berth set it up. Not `ulimit` in an exec'd shell:
      // runc applies an exec's limits from outside while its Go init starts, and Go raises the
      // soft limit of open files to the hard one at start-up, so which one an exec ends with
      // depends on timing.
      assert.deepEqual(await limitsOf(id, 'app'), { 'open files': '4096 8192', 'core file size': 'unlimited unlimited' });
      assert.equal((await limitsOf(id, 'plain'))['open files'], '2048 4096', 'the agent default (engine.defaultUlimits) where the container sets none');

      const added = [...DEFAULT_CAPABILITIES.filter((c) => c !== 'CAP_CHOWN' && c !== 'CAP_NET_RAW'), 'CAP_NET_ADMIN', 'CAP_SYS_TIME'];
      assert.equal(await inside(id, 'app', 'grep CapEff /proc/self/status'), `CapEff:\t${capabilityMask(added)}`);
      assert.equal(await inside(id, 'plain', 'grep CapEff /proc/self/status'), `CapEff:\t${capabilityMask([])}`);

      assert.match(await inside(id, 'app', 'touch /written 2>&1; echo "exit $?"'), /Read-only file system[\s\S]*exit 1$/);
      assert.equal(await inside(id, 'app', 'echo ok > /scratch/file && cat /scratch/file'), 'ok');
      const scratch = (await inside(id, 'app', 'grep " /scratch " /proc/mounts')).split(' ');
      assert.equal(scratch[2], 'tmpfs');
      const options = scratch[3]!.split(',');
      for (const option of ['rw', 'nosuid', 'nodev', 'size=16384k', 'mode=700']) assert.ok(options.includes(option), `${option} in ${scratch[3]}`);
      assert.ok(!options.includes('noexec'), `exec replaced the default noexec: ${scratch[3]}`);
      /** The size of /dev/shm in KiB, as df shows it. */
      const shmKib = async (name: string) => (await inside(id, name, 'df -k /dev/shm')).split('\n').at(-1)!.split(/\s+/)[1];
      assert.equal(await shmKib('app'), '131072');
      assert.equal(await shmKib('plain'), '65536', 'the default /dev/shm is 64 MiB');
      await agent.calls.stopAndWait(id);
    });

    it('sets the host name, extra /etc/hosts lines and the resolver', async () => {
      const id = taskId('names');
      await start(id, [
        sleeper('app', {
          hostname: 'web-1',
          extraHosts: [{ hostname: 'db.internal', ipAddress: '10.1.2.3' }],
          dnsServers: ['10.0.0.53', '10.0.0.54'],
          dnsSearchDomains: ['corp.test'],
        }),
      ]);
      assert.equal(await inside(id, 'app', 'hostname; cat /etc/hostname'), 'web-1\nweb-1');
      assert.match(await inside(id, 'app', 'cat /etc/hosts'), /^10\.1\.2\.3\s+db\.internal$/m);
      const resolv = (await inside(id, 'app', 'cat /etc/resolv.conf')).split('\n');
      assert.deepEqual(
        resolv.filter((l) => /^(nameserver|search)\s/.test(l)),
        ['search corp.test', 'nameserver 10.0.0.53', 'nameserver 10.0.0.54'],
      );
      await agent.calls.stopAndWait(id);
    });

    it('runs an init as PID 1 that reaps orphans, and without one the orphan stays a zombie', async () => {
      const id = taskId('init');
      const linux = (initProcessEnabled: boolean) => LinuxParameters.fromPartial({ initProcessEnabled });
      await start(id, [sleeper('init', { linuxParameters: linux(true) }), sleeper('bare', { linuxParameters: linux(false) })]);
      assert.equal(await inside(id, 'init', "tr '\\0' ' ' < /proc/1/cmdline"), '/sbin/docker-init -- sleep 300');
      assert.equal(await inside(id, 'bare', "tr '\\0' ' ' < /proc/1/cmdline"), 'sleep 300');
      for (const name of ['init', 'bare']) await inside(id, name, 'usleep 200000 & exit 0');
      assert.equal(await inside(id, 'init', ORPHAN_FATE), 'reaped');
      assert.equal(await inside(id, 'bare', ORPHAN_FATE), 'zombie');
      await agent.calls.stopAndWait(id);
    });

    it('sets namespaced sysctls, no-new-privileges, swap and swappiness, gives a host device with its permissions, and disables networking', async () => {
      const id = taskId('kernel');
      await start(id, [
        sleeper('app', {
          memoryMib: 64,
          systemControls: [
            { namespace: 'net.core.somaxconn', value: '1000' },
            { namespace: 'kernel.shmmni', value: '2048' },
          ],
          dockerSecurityOptions: ['no-new-privileges:true'],
          linuxParameters: LinuxParameters.fromPartial({ maxSwapMib: 0, swappiness: 10, devices: [{ hostPath: '/dev/fuse', containerPath: '/dev/fuse', permissions: ['read'] }] }),
        }),
        sleeper('plain'),
        sleeper('offline', { disableNetworking: true }),
      ]);
      assert.equal(await inside(id, 'app', 'cat /proc/sys/net/core/somaxconn /proc/sys/kernel/shmmni'), '1000\n2048');
      assert.equal(await inside(id, 'app', 'grep NoNewPrivs /proc/self/status'), 'NoNewPrivs:\t1');
      assert.equal(await inside(id, 'plain', 'grep NoNewPrivs /proc/self/status'), 'NoNewPrivs:\t0', 'off unless asked for, as on Docker');
      const memory = '/sys/fs/cgroup/memory';
      const [limit, withSwap, swappiness] = (await inside(id, 'app', `cat ${memory}/memory.limit_in_bytes ${memory}/memory.memsw.limit_in_bytes ${memory}/memory.swappiness`)).split('\n');
      assert.equal(limit, String(64 * 1024 * 1024));
      assert.equal(withSwap, limit, 'max_swap 0: no swap on top of the limit');
      assert.equal(swappiness, '10');
      // /dev/fuse is not among the devices every container may use: only this one has it, to read.
      assert.equal(await inside(id, 'app', 'exec 3< /dev/fuse && echo opened'), 'opened');
      assert.match(await inside(id, 'app', '(exec 3> /dev/fuse) 2>&1; echo "exit $?"'), /Operation not permitted[\s\S]*exit [1-9]/, 'read permission only');
      assert.equal(await inside(id, 'plain', 'test -e /dev/fuse; echo $?'), '1');
      assert.equal(await inside(id, 'offline', 'ls /sys/class/net'), 'lo');
      assert.match(await inside(id, 'plain', 'ls /sys/class/net'), /eth0/);
      await agent.calls.stopAndWait(id);
    });

    it("shares the process and IPC namespaces of a task's containers in pid_mode and ipc_mode task, gives the host's in host, and private ones without /dev/shm in ipc_mode none", async () => {
      const shared = taskId('namespaces');
      await agent.calls.runUntil(
        task(shared, [sleeper('a', { command: ['sleep', '301'] }), sleeper('b')], {
          networkMode: NetworkMode.NETWORK_MODE_TASK,
          pidMode: NamespaceMode.NAMESPACE_MODE_TASK,
          ipcMode: NamespaceMode.NAMESPACE_MODE_TASK,
        }),
      );
      const namespaces = (name: string) => inside(shared, name, 'readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc');
      assert.equal(await namespaces('a'), await namespaces('b'));
      // b sees a's process.
      assert.match(await inside(shared, 'b', 'cat /proc/[0-9]*/cmdline | tr "\\0" " "'), /sleep 301/);
      await agent.calls.stopAndWait(shared);

      const separate = taskId('own-namespaces');
      await agent.calls.runUntil(task(separate, [sleeper('a'), sleeper('b')], { networkMode: NetworkMode.NETWORK_MODE_TASK }));
      assert.notEqual(await inside(separate, 'a', 'readlink /proc/self/ns/pid'), await inside(separate, 'b', 'readlink /proc/self/ns/pid'));
      await agent.calls.stopAndWait(separate);

      const noShm = taskId('ipc-none');
      await agent.calls.runUntil(task(noShm, [sleeper('a'), sleeper('b')], { networkMode: NetworkMode.NETWORK_MODE_TASK, ipcMode: NamespaceMode.NAMESPACE_MODE_NONE }));
      const ipcOf = (name: string) => inside(noShm, name, 'readlink /proc/self/ns/ipc; grep " /dev/shm " /proc/mounts || echo "no /dev/shm"; [ -e /dev/shm ] || echo gone');
      const [a, b] = [await ipcOf('a'), await ipcOf('b')];
      assert.match(a, /^ipc:\[\d+\]\nno \/dev\/shm\ngone$/);
      assert.notEqual(a.split('\n')[0], b.split('\n')[0]);
      assert.notEqual(a.split('\n')[0], readlinkSync('/proc/self/ns/ipc'));
      await agent.calls.stopAndWait(noShm);

      const host = taskId('host-namespaces');
      await agent.calls.runUntil(
        task(host, [sleeper('app')], { networkMode: NetworkMode.NETWORK_MODE_BRIDGE, pidMode: NamespaceMode.NAMESPACE_MODE_HOST, ipcMode: NamespaceMode.NAMESPACE_MODE_HOST }),
      );
      assert.equal(await inside(host, 'app', 'readlink /proc/self/ns/pid; readlink /proc/self/ns/ipc'), `${readlinkSync('/proc/self/ns/pid')}\n${readlinkSync('/proc/self/ns/ipc')}`);
      await agent.calls.stopAndWait(host);
    });

    it('lets a container of a bridge-mode task reach linked ones by alias (or by name without one), started after them', async () => {
      const id = taskId('links');
      const server = (name: string, port: number) => container(name, env.image, { registryCredentials: env.credentials, command: ['httpd', '-f', '-p', String(port), '-h', '/www'] });
      await agent.calls.runUntil(task(id, [sleeper('app', { links: ['db:database', 'cache'] }), server('db', 8080), server('cache', 8081)], { networkMode: NetworkMode.NETWORK_MODE_BRIDGE }));
      // The static busybox cannot resolve names (glibc's NSS is not in the image): the script looks
      // the name up in /etc/hosts as the resolver would, and fetches from the address it finds.
      const fetchByName = (name: string, port: number) =>
        `addr=; while read a names; do for n in $names; do [ "$n" = ${name} ] && addr=$a; done; done < /etc/hosts; [ -n "$addr" ] || exit 2; i=0; until wget -q -O - http://$addr:${port}/index.html; do i=$((i+1)); [ $i -ge 50 ] && exit 1; sleep 0.1; done`;
      assert.equal(await inside(id, 'app', fetchByName('database', 8080)), 'hello from berth');
      assert.equal(await inside(id, 'app', fetchByName('cache', 8081)), 'hello from berth');
      assert.equal((await agent.calls.shell(id, 'app', fetchByName('db', 8080))).code, 2, 'with an alias, the link is known by the alias');
      const started = (await agent.calls.get(id))!.containers;
      const startedAt = (name: string) => started.find((c) => c.name === name)!.startedAt!.getTime();
      assert.ok(startedAt('app') >= startedAt('db'), 'the linking container started after the linked one');
      await agent.calls.stopAndWait(id);
    });

    it(`gives a container a terminal (pseudo_terminal) and an open standard input (interactive), as docker run -it does${kind === 'containerd' ? '; refuses interactive without a terminal' : ''}`, async () => {
      const id = taskId('tty');
      // Each reads a line first: end-of-file at once without interactive, a wait with it.
      const script = 'if [ -t 1 ]; then echo "stdout: terminal"; else echo "stdout: pipe"; fi; read line; echo "stdin ended"; exec sleep 300';
      const stdinOnly = sleeper('stdin', { interactive: true, command: ['sh', '-c', script] });
      if (kind === 'containerd') {
        // The shim gives a process that logs through berth's log writer no stdin: refused, not ignored.
        await assert.rejects(agent.calls.run(task(taskId('stdin'), [stdinOnly])), (error: ServiceError) => {
          assert.equal(error.code, status.INVALID_ARGUMENT);
          assert.match(error.details, /containers\[0\]\.interactive: the containerd runtime cannot keep standard input open without a terminal/);
          return true;
        });
      }
      await start(id, [
        sleeper('plain', { command: ['sh', '-c', script] }),
        sleeper('terminal', { pseudoTerminal: true, command: ['sh', '-c', `tty; ${script}`] }),
        ...(kind === 'docker' ? [stdinOnly] : []),
        // docker run -it busybox sh: a shell that waits at its prompt.
        sleeper('both', { interactive: true, pseudoTerminal: true, command: ['sh'] }),
      ]);
      /** The container's log, each line with "\n", followed until it matches `until`. */
      const logOf = async (name: string, until: RegExp) => {
        let log = '';
        const stream = agent.client.logs({ taskId: id, containerName: name, follow: true, streams: [], tail: undefined, since: undefined });
        await readStream(stream, (message) => {
          for (const line of message.lines) log += `${Buffer.from(line.text).toString('utf8')}\n`;
          if (until.test(log)) stream.cancel();
        });
        return log;
      };
      // The plain one read end-of-file from /dev/null; its output is a pipe.
      assert.match(await logOf('plain', /stdin ended/), /^stdout: pipe\nstdin ended\n$/);
      assert.equal(await inside(id, 'plain', 'readlink /proc/1/fd/0'), '/dev/null');
      // The terminal one writes to a pseudo-terminal (its lines end in \r\n), and waits on it for input.
      assert.match(await logOf('terminal', /stdout: terminal/), /^\/dev\/pts\/0\r\nstdout: terminal\r\n$/);
      assert.match(await inside(id, 'terminal', 'readlink /proc/1/fd/0; readlink /proc/1/fd/1; readlink /proc/1/fd/2'), /^\/dev\/pts\/0\n\/dev\/pts\/0\n\/dev\/pts\/0$/);
      if (kind === 'docker') {
        // The interactive one has an open pipe for stdin and is still waiting on it.
        assert.match(await logOf('stdin', /stdout: pipe/), /^stdout: pipe\n$/);
        assert.match(await inside(id, 'stdin', 'readlink /proc/1/fd/0; cat /proc/1/comm'), /^pipe:\[\d+\]\nsh$/);
      }
      // The shell with both is at its prompt on the terminal.
      assert.match(await inside(id, 'both', 'readlink /proc/1/fd/0; cat /proc/1/comm'), /^\/dev\/pts\/0\nsh$/);
      const running = await agent.calls.get(id);
      assert.deepEqual(
        running?.containers.map((c) => [c.name, c.knownStatus]),
        ['plain', 'terminal', ...(kind === 'docker' ? ['stdin'] : []), 'both'].map((name) => [name, ContainerStatus.CONTAINER_STATUS_RUNNING]),
      );
      await agent.calls.stopAndWait(id);
    });

    it('sends each line to a real rsyslog with the syslog log driver (RFC 5424 over tcp, tcp+tls, udp and a unix datagram socket) and keeps it for Logs', async () => {
      const syslog = await startSyslog();
      try {
        const id = taskId('syslog');
        const logged = (transport: string, address: string, facility: string) =>
          sleeper(transport, {
            command: ['sh', '-c', `echo "hello over ${transport}"; echo "oops over ${transport}" >&2; exec sleep 300`],
            logConfiguration: { logDriver: 'syslog', options: { 'syslog-address': address, tag: `berth-${transport}`, 'syslog-facility': facility, 'syslog-format': 'rfc5424' }, secretOptions: [] },
          });
        const tls = logged('tls', `tcp+tls://${syslog.tlsAddress}`, 'local1');
        tls.logConfiguration!.options['syslog-tls-ca-cert'] = syslog.tlsCaFile;
        await start(
          id,
          [logged('tcp', `tcp://${syslog.tcpAddress}`, 'local3'), tls, logged('udp', `udp://${syslog.udpAddress}`, 'daemon'), logged('unixgram', `unixgram://${syslog.socketPath}`, 'local7')],
          NetworkMode.NETWORK_MODE_NONE,
        );
        await syslog.waitFor([
          'local3.info berth-tcp hello over tcp',
          'local3.err berth-tcp oops over tcp',
          'local1.info berth-tls hello over tls',
          'local1.err berth-tls oops over tls',
          'daemon.info berth-udp hello over udp',
          'daemon.err berth-udp oops over udp',
          'local7.info berth-unixgram hello over unixgram',
          'local7.err berth-unixgram oops over unixgram',
        ]);
        // berth's (or Docker's dual logging) copy still serves Logs.
        const lines = (await readStream(agent.client.logs({ taskId: id, containerName: 'tcp', follow: false, streams: [], tail: undefined, since: undefined }))).flatMap((r) => r.lines);
        assert.deepEqual(lines.map((l) => Buffer.from(l.text).toString('utf8')).sort(), ['hello over tcp', 'oops over tcp']);
        await agent.calls.stopAndWait(id);
      } finally {
        await syslog.stop();
      }
    });

    // No fluentd is packaged for Debian: the receiver here decodes the Forward protocol itself, and
    // Docker's own fluentd driver is the reference of what must arrive.
    it("sends each line to a Forward protocol receiver as Docker's fluentd driver does", async () => {
      const chunks: Buffer[] = [];
      const receiver = createServer((socket) => socket.on('data', (chunk: Buffer) => chunks.push(chunk)));
      receiver.listen(0, '127.0.0.1');
      await once(receiver, 'listening');
      try {
        const id = taskId('fluentd');
        const before = Math.floor(Date.now() / 1000);
        await start(
          id,
          [
            sleeper('app', {
              command: ['sh', '-c', 'echo hello; echo oops >&2; exec sleep 300'],
              logConfiguration: { logDriver: 'fluentd', options: { 'fluentd-address': `tcp://127.0.0.1:${(receiver.address() as AddressInfo).port}`, tag: 'web' }, secretOptions: [] },
            }),
          ],
          NetworkMode.NETWORK_MODE_NONE,
        );
        const app = containerOf(await agent.calls.get(id), 'app');
        const decoded = () => decodeMessagePack(Buffer.concat(chunks)).values as [string, number, Record<string, string>, Record<string, never>][];
        await waitUntil('both lines arrive', 15_000, async () => (decoded().length >= 2 ? true : undefined));
        const messages = decoded();
        const name = `/${runtimeContainerName(agent.config.agentId, id, 'app')}`;
        assert.deepEqual(
          messages.map(([tag, , record, option]) => [tag, record, option] as const).sort((a, b) => a[1].log!.localeCompare(b[1].log!)),
          [
            ['web', { container_id: app.runtimeId, container_name: name, source: 'stdout', log: 'hello' }, {}],
            ['web', { container_id: app.runtimeId, container_name: name, source: 'stderr', log: 'oops' }, {}],
          ],
        );
        for (const [, time] of messages) assert.ok(Number.isInteger(time) && time >= before && time <= before + 60, `time ${time}`);
        await agent.calls.stopAndWait(id);
      } finally {
        receiver.close();
      }
    });

    it(`refuses log configurations the runtime cannot honour ${kind === 'containerd' ? 'at admission, naming the driver or option' : 'with the reason Docker gives at create'}`, async () => {
      const bad = (logConfiguration: ContainerDefinition['logConfiguration']) => task(taskId('bad-log'), [sleeper('app', { logConfiguration })]);
      if (kind === 'containerd') {
        const refusal = async (definition: ReturnType<typeof bad>, field: string) =>
          assert.rejects(agent.calls.run(definition), (error: ServiceError) => {
            assert.equal(error.code, status.INVALID_ARGUMENT);
            assert.ok(error.details.includes(field), error.details);
            return true;
          });
        await refusal(bad({ logDriver: 'gelf', options: {}, secretOptions: [] }), 'containers[0].log_configuration.log_driver: containerd takes the log drivers json-file, local, fluentd, syslog');
        await refusal(bad({ logDriver: 'syslog', options: { 'syslog-address': 'tcp://127.0.0.1:1', 'syslog-tls-cert': '/x' }, secretOptions: [] }), 'log_configuration.options[syslog-tls-cert]');
        await refusal(bad({ logDriver: 'json-file', options: { 'max-size': 'lots' }, secretOptions: [] }), 'log_configuration.options[max-size]');
      } else {
        const definition = bad({ logDriver: 'syslog', options: { 'syslog-address': 'bogus://nowhere' }, secretOptions: [] });
        const stopped = await agent.calls.runUntil(definition, TaskStatus.TASK_STATUS_STOPPED);
        assert.match(stopped?.containers[0]?.reason ?? '', /cannot create container: .*(syslog|bogus)/i);
      }
    });

    it("rotates the container's log as json-file's max-size and max-file say", async () => {
      const id = taskId('rotation');
      // 200 lines of 100 bytes, 20 KB: files of 4 KB, 3 kept.
      await start(
        id,
        [
          sleeper('app', {
            command: ['sh', '-c', 'i=0; while [ $i -lt 200 ]; do printf "%099d\\n" $i; i=$((i+1)); done; echo done; exec sleep 300'],
            logConfiguration: { logDriver: 'json-file', options: { 'max-size': '4k', 'max-file': '3' }, secretOptions: [] },
          }),
        ],
        NetworkMode.NETWORK_MODE_NONE,
      );
      const logPath = await logFileSeenByDaemon(env, containerOf(await agent.calls.get(id), 'app').runtimeId);
      await waitUntil('the last line is logged', 15_000, async () => (readFileSync(logPath, 'utf8').includes('done') ? true : undefined));
      const sizes = [logPath, `${logPath}.1`, `${logPath}.2`].map((f) => statSync(f).size);
      assert.ok(
        sizes.every((size) => size > 0 && size <= 4096),
        `three files of at most 4 KB: ${sizes.join(', ')}`,
      );
      assert.equal(existsSync(`${logPath}.3`), false, 'no fourth file');
      await agent.calls.stopAndWait(id);
    });

    it("stops a container with its stop signal instead of the image's", async () => {
      const id = taskId('signal');
      await start(id, [
        container('app', env.image, { registryCredentials: env.credentials, command: ['sh', '-c', 'trap "exit 42" USR1; touch /trapped; while :; do sleep 1; done'], stopSignal: 'SIGUSR1' }),
      ]);
      // A signal that came before the trap was set would be lost (the container's first process has
      // no default action for it): the stop waits for the shell to have set it, at most 10 s.
      await waitUntil("the shell's trap for SIGUSR1", 10_000, async () => ((await agent.calls.shell(id, 'app', 'test -e /trapped')).code === 0 ? true : undefined));
      await agent.calls.stopAndWait(id);
      assert.equal(containerOf(await agent.calls.get(id), 'app').exitCode, 42);
    });
  });
}
