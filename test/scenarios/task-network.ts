import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, afterEach, before, describe, it } from 'node:test';
import { LABELS } from '../../src/engine/tasks/labels.js';
import { PAUSE_CONTAINER } from '../../src/engine/tasks/pause-container.js';
import { resolvConf } from '../../src/runtime/etc-files.js';
import { EventCollector, readStream, startTestAgent, testPortRange, watching, type TestAgent } from '../harness/agent.js';
import { startAgentProcess, type AgentProcess } from '../harness/agent-process.js';
import { CNI_PLUGIN_DIR, createDefaultShapedNetwork, createTestNetwork, startOutsideHost, type TestNetwork } from '../harness/cni-network.js';
import { textOnceServed, waitUntil } from '../harness/processes.js';
import { startRuntimeEnvironment, type RuntimeEnvironment, type RuntimeKind } from '../harness/runtime-environment.js';
import { container, containerOf, ContainerStatus, is, NetworkMode, task, taskId, TaskStatus } from '../harness/task-builders.js';

const TASK_MODE = { networkMode: NetworkMode.NETWORK_MODE_TASK };

/** Whether `address` (CIDR) lies in the /24 `subnet`. */
function inSubnet(address: string, subnet: string): boolean {
  return address.split('.').slice(0, 3).join('.') === subnet.split('.').slice(0, 3).join('.');
}

/** The network mode `task` (and CNI in general) on a real daemon, with the real CNI plugins. */
export function taskNetworkScenarios(kind: RuntimeKind): void {
  const rangeFirst = Number(testPortRange(kind, 1100, 100).split('-')[0]);
  describe(`task network mode through CNI on a real ${kind}`, () => {
    let env: RuntimeEnvironment;
    let agent: TestAgent;
    const creds = () => ({ registryCredentials: env.credentials });

    before(async () => {
      env = await startRuntimeEnvironment('network', kind);
      agent = await startTestAgent(env, { resources: { dynamicPortRange: testPortRange(kind, 1100, 100) } });
    });
    after(async () => {
      await agent?.stop();
      await env?.stop();
    });

    const run = (definition: ReturnType<typeof task>, on: TestAgent = agent) => on.calls.run(definition);
    const stop = (id: string) => agent.calls.stop(id, 'test');
    const get = (id: string, on: TestAgent = agent) => on.calls.get(id);
    const pauseContainers = (id: string) => env.runtime.listContainers({ [LABELS.taskId]: id, [LABELS.containerName]: PAUSE_CONTAINER });
    // containerd's containers join the namespace berth makes; Docker's join a pause container's.
    const pausesPerTask = kind === 'docker' ? 1 : 0;
    const namespaceOf = (a: TestAgent, id: string) => `/run/netns/berth-${a.config.agentId}-${id}`;

    it('gives the task one namespace: its containers talk over localhost, a mapped host port reaches it from 127.0.0.1, its address is reported', async () => {
      const id = taskId('net');
      await watching(agent.client, { taskIds: [id] }, async (watch) => {
        await run(
          task(
            id,
            [
              container('web', env.image, {
                ...creds(),
                command: ['httpd', '-f', '-p', '8080', '-h', '/www'],
                portMappings: [{ containerPort: 8080, hostPort: 0, protocol: 0, hostIp: '', containerPortRange: '' }],
              }),
              // Reaches the web server on localhost, then exits 0; not essential, so the task goes on.
              container('client', env.image, {
                ...creds(),
                essential: false,
                command: ['sh', '-c', 'for i in $(seq 1 100); do wget -q -O - http://127.0.0.1:8080/index.html | grep -q "hello from berth" && exit 0; sleep 0.1; done; exit 1'],
              }),
            ],
            TASK_MODE,
          ),
        );
        const networkEvent = await watch.waitForEvent('network set up', (e) => e.taskId === id && e.change?.$case === 'network' && e.change.value.network !== undefined);
        await watch.waitForEvent('client STOPPED', is.container(id, 'client', ContainerStatus.CONTAINER_STATUS_STOPPED));
        const snapshot = await get(id);
        assert.equal(containerOf(snapshot, 'client').exitCode, 0, 'the client reached the web server on localhost');
        assert.equal(snapshot?.knownStatus, TaskStatus.TASK_STATUS_RUNNING);

        // The address: in the test network's subnet, the same in the event and in GetTask.
        const network = snapshot?.network;
        assert.ok(network, 'GetTask shows the network');
        assert.equal(network.networkName, env.network.name);
        assert.equal(network.interfaceName, 'eth0');
        assert.equal(network.ipAddresses.length, 1);
        assert.ok(inSubnet(network.ipAddresses[0]!, env.network.subnet), `${network.ipAddresses[0]} in ${env.network.subnet}`);
        assert.deepEqual(networkEvent.change?.$case === 'network' && networkEvent.change.value.network, network);
        assert.deepEqual(env.network.allocatedAddresses(), [network.ipAddresses[0]!.split('/')[0]]);
        // A pause container is the agent's, not the client's: GetTask does not show it.
        assert.deepEqual(snapshot?.containers.map((c) => c.name).sort(), ['client', 'web']);
        assert.equal((await pauseContainers(id)).length, pausesPerTask);
        // Docker's pause container has no libnetwork sandbox (runc makes its namespace): no start hook runs dockerd again.
        for (const pause of env.docker ? await pauseContainers(id) : []) assert.ok(!env.docker!.prestartHooksOf(pause.id).flat().includes('libnetwork-setkey'), 'no sandbox for the pause container');
        // Its containers see localhost in /etc/hosts and a resolver, the same on both runtimes.
        assert.match((await agent.calls.shell(id, 'web', 'cat /etc/hosts')).output, /^127\.0\.0\.1\s+localhost$/m);
        assert.equal((await agent.calls.shell(id, 'web', 'cat /etc/resolv.conf')).output, resolvConf(readFileSync('/etc/resolv.conf', 'utf8'), [], [], true).trim());
        // The container is in the namespace named after the task, which the address was given in.
        const { output: netns } = await agent.calls.shell(id, 'web', 'readlink /proc/self/ns/net');
        assert.equal(netns, `net:[${statSync(namespaceOf(agent, id)).ino}]`);

        // portmap: the dynamic host port, reserved by berth, reaches the task from 127.0.0.1.
        const binding = containerOf(snapshot, 'web').portBindings[0]!;
        assert.ok(binding.hostPort >= rangeFirst && binding.hostPort <= rangeFirst + 99, `host port ${binding.hostPort} from the range`);
        assert.deepEqual(snapshot?.resources?.tcpPorts, [binding.hostPort]);
        assert.equal(await textOnceServed(`http://127.0.0.1:${binding.hostPort}/index.html`), 'hello from berth\n');

        // Stats count the traffic of the task's namespace (eth0; loopback is not counted): the page
        // just served went out of it.
        const [sample] = await readStream(agent.client.stats({ taskId: id, containerName: 'web', stream: false, interval: { seconds: 0, nanos: 200_000_000 } }));
        const web = sample?.containers.find((c) => c.containerName === 'web');
        assert.ok(web && web.networkTxBytes > 0 && web.networkRxBytes > 0 && web.networkTxPackets > 0, JSON.stringify(web));

        await stop(id);
        await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED));
        // The network is torn down before the task counts as stopped, the pause container removed.
        await watch.waitForEvent('network torn down', (e) => e.taskId === id && e.change?.$case === 'network' && e.change.value.network === undefined);
        assert.equal((await get(id))?.network, undefined);
        assert.deepEqual(env.network.allocatedAddresses(), []);
        assert.deepEqual(env.network.bridgePorts(), []);
        assert.deepEqual(env.network.natRules(), [], 'no masquerading or port mapping rule left');
        assert.equal(existsSync(namespaceOf(agent, id)), false, 'the namespace name is deleted');
        assert.deepEqual(await pauseContainers(id), []);
        await assert.rejects(fetch(`http://127.0.0.1:${binding.hostPort}/index.html`, { signal: AbortSignal.timeout(2000) }));
      });
    });

    it("starts and stops 50 tasks with distinct addresses and leaves no address in host-local's store and no veth", async () => {
      const ids = Array.from({ length: 50 }, () => taskId('many'));
      await watching(agent.client, { taskIds: ids }, async (watch) => {
        await Promise.all(ids.map((id) => run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })], TASK_MODE))));
        await Promise.all(ids.map((id) => watch.waitForEvent(`${id} RUNNING`, is.task(id, TaskStatus.TASK_STATUS_RUNNING), 300_000)));
        const addresses = new Set<string>();
        for (const id of ids) {
          const address = (await get(id))?.network?.ipAddresses[0];
          assert.ok(address && !addresses.has(address), `${id} has an address of its own (${address})`);
          addresses.add(address);
        }
        assert.equal(env.network.allocatedAddresses().length, 50);
        assert.equal(env.network.bridgePorts().length, 50);
        assert.equal((await env.runtime.listContainers({ [LABELS.agentId]: agent.config.agentId, [LABELS.containerName]: PAUSE_CONTAINER })).length, 50 * pausesPerTask);
        await Promise.all(ids.map((id) => stop(id)));
        await Promise.all(ids.map((id) => watch.waitForEvent(`${id} STOPPED`, is.task(id, TaskStatus.TASK_STATUS_STOPPED), 300_000)));
      });
      assert.deepEqual(env.network.allocatedAddresses(), []);
      assert.deepEqual(env.network.bridgePorts(), []);
      assert.deepEqual(env.network.natRules(), []);
      assert.deepEqual(
        ids.filter((id) => existsSync(namespaceOf(agent, id))),
        [],
      );
    });

    it("berth's default network masquerades its whole subnet with one rule, none per task: a task reaches a host beyond with the host's address, and not without the rule", async () => {
      const network = createDefaultShapedNetwork();
      const { subnet } = network;
      const natTable = () => execFileSync('iptables', ['-t', 'nat', '-S'], { encoding: 'utf8' }).split('\n');
      const outside = await startOutsideHost();
      const agents: TestAgent[] = [];
      try {
        for (const round of [1, 2]) {
          // The second agent stands for the next run of the first: it finds the rule in place.
          const on = await startTestAgent(env, { network: network.agentSettings });
          agents.push(on);
          const id = taskId('masq');
          const running = await on.calls.runUntil(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })], TASK_MODE));
          assert.equal(running.network?.networkName, 'berth');
          assert.ok(inSubnet(running.network!.ipAddresses[0]!, subnet), `${running.network?.ipAddresses[0]} in ${subnet}`);

          // No loopback plugin in the list: lo is up all the same, on both runtimes.
          // IFF_UP (0x1) with IFF_LOOPBACK (0x8).
          assert.deepEqual(await on.calls.shell(id, 'app', 'cat /sys/class/net/lo/flags'), { code: 0, output: '0x9' }, `round ${round}: lo is up`);
          const reached = await on.calls.shell(id, 'app', `nc -w 5 ${outside.address} ${outside.port}`);
          assert.deepEqual(reached, { code: 0, output: outside.hostAddress }, `round ${round}: the outside host saw the host's address`);
          assert.equal(network.masqueradeRules().length, 1, `round ${round}: one rule for the subnet\n${natTable().join('\n')}`);
          assert.deepEqual(
            natTable().filter((rule) => rule.includes(`berth-${on.config.agentId}-${id}`)),
            [],
            'no chain or rule for the task',
          );
          assert.deepEqual(network.allocatedAddresses(), [running.network!.ipAddresses[0]!.split('/')[0]]);

          if (round === 2) {
            // Without the rule the task's own address goes out, and the outside host has no route back to it.
            for (const rule of network.masqueradeRules()) execFileSync('sh', ['-c', `iptables -t nat ${rule.replace(/^-A /, '-D ')}`]);
            const unanswered = await on.calls.shell(id, 'app', `nc -w 2 ${outside.address} ${outside.port}`);
            assert.notEqual(unanswered.code, 0, unanswered.output);
            assert.match(unanswered.output, /timed out/, `no answer without the rule\n${natTable().join('\n')}`);
          }
          await on.calls.stopAndWait(id);
          assert.deepEqual(network.allocatedAddresses(), [], 'the address is released');
        }
      } finally {
        for (const on of agents) await on.stop();
        network.remove();
        outside.remove();
      }
    });

    it(`keeps warm namespaces ready${kind === 'docker' ? ', each held by a pause container' : ''}: a task without host ports takes one, one with host ports makes its own; none is left after a stop or a SIGKILL`, async () => {
      const dir = mkdtempSync(join(env.dir, 'agent-'));
      const agentId = 'warmpool';
      const warmNamespaces = () => readdirSync('/run/netns').filter((n) => n.startsWith(`berth-${agentId}-warm-`));
      // On Docker a pause container named as its namespace holds each; containerd needs none.
      const pauses = async () => (await env.runtime.listContainers({ [LABELS.agentId]: agentId, [LABELS.containerName]: PAUSE_CONTAINER })).map((c) => c.name).sort();
      const warmPauses = async () => (await pauses()).filter((name) => name.startsWith(`berth-${agentId}-warm-`));
      const networkConfig = { ...env.networkConfig, cni: { ...env.networkConfig.cni, warmPoolSize: 2 } };
      const start = () =>
        startAgentProcess({
          dir,
          agentId,
          runtimeConfig: env.runtimeConfig,
          networkConfig,
          config: { resources: { dynamicPortRange: testPortRange(kind, 1200, 10) }, engine: { relistInterval: '2s' } },
        });
      const poolReady = (count: number) =>
        waitUntil(`${count} warm namespaces`, 60_000, async () => (env.network.allocatedAddresses().length === count && warmNamespaces().length === count ? true : undefined));
      let agentProcess = await start();
      try {
        await poolReady(2);
        assert.deepEqual(await warmPauses(), kind === 'docker' ? warmNamespaces().sort() : []);
        for (const pause of env.docker ? await env.runtime.listContainers({ [LABELS.agentId]: agentId, [LABELS.containerName]: PAUSE_CONTAINER }) : [])
          assert.ok(!env.docker!.prestartHooksOf(pause.id).flat().includes('libnetwork-setkey'), 'no sandbox for a warm pause container');
        if (kind === 'docker') {
          // One killed from outside the agent leaves the pool at the next relist, deleted with its
          // namespace; another takes its place.
          const [killed] = await warmPauses();
          await env.runtime.stopContainer(killed!, 0);
          await waitUntil('the killed warm pause container replaced', 60_000, async () =>
            !(await warmPauses()).includes(killed!) && !warmNamespaces().includes(killed!) && warmNamespaces().length === 2 ? true : undefined,
          );
          await poolReady(2);
        }
        const warmAddresses = env.network.allocatedAddresses();
        const plain = taskId('warm');
        const ported = taskId('warm-ports');
        await watching(agentProcess.client, { taskIds: [plain, ported] }, async (watch) => {
          await agentProcess.calls.run(task(plain, [container('app', env.image, { ...creds(), command: ['httpd', '-f', '-p', '8080', '-h', '/www'] })], TASK_MODE));
          await agentProcess.calls.run(
            task(
              ported,
              [
                container('app', env.image, {
                  ...creds(),
                  command: ['httpd', '-f', '-p', '8080', '-h', '/www'],
                  portMappings: [{ containerPort: 8080, hostPort: 0, protocol: 0, hostIp: '', containerPortRange: '' }],
                }),
              ],
              TASK_MODE,
            ),
          );
          await watch.waitForEvent('plain RUNNING', is.task(plain, TaskStatus.TASK_STATUS_RUNNING), 60_000);
          await watch.waitForEvent('ported RUNNING', is.task(ported, TaskStatus.TASK_STATUS_RUNNING), 60_000);
        });
        const plainAddress = (await agentProcess.calls.get(plain))?.network?.ipAddresses[0]?.split('/')[0];
        const portedTask = await agentProcess.calls.get(ported);
        const portedAddress = portedTask?.network?.ipAddresses[0]?.split('/')[0];
        assert.ok(plainAddress && warmAddresses.includes(plainAddress), `the task without host ports has a warm namespace's address (${plainAddress} in ${warmAddresses.join(', ')})`);
        assert.ok(portedAddress && !warmAddresses.includes(portedAddress), 'the task with a host port has an address of its own');
        // The warm namespace's container serves on its address; the other's host port reaches it.
        const { output: served } = await agentProcess.calls.shell(ported, 'app', `wget -q -O - http://${plainAddress}:8080/index.html`);
        assert.equal(served, 'hello from berth');
        assert.equal(await textOnceServed(`http://127.0.0.1:${containerOf(portedTask, 'app').portBindings[0]!.hostPort}/index.html`), 'hello from berth\n');
        // The one taken was made again: two warm namespaces, two tasks.
        await poolReady(4);
        // On Docker the task's pause container is the warm one it took (named as the namespace);
        // the task with a host port made its own.
        if (kind === 'docker') {
          assert.equal((await warmPauses()).length, 3);
          assert.equal((await pauseContainers(ported)).length, 1);
        }
        await watching(agentProcess.client, { taskIds: [plain, ported] }, async (watch) => {
          await agentProcess.calls.stop(plain, 'test');
          await agentProcess.calls.stop(ported, 'test');
          await watch.waitForEvent('plain STOPPED', is.task(plain, TaskStatus.TASK_STATUS_STOPPED), 60_000);
          await watch.waitForEvent('ported STOPPED', is.task(ported, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        });
        assert.equal(env.network.allocatedAddresses().length, 2, 'only the warm ones are held');
        assert.equal(env.network.bridgePorts().length, 2);
        assert.deepEqual(await pauses(), kind === 'docker' ? warmNamespaces().sort() : [], 'only the warm pause containers are left');
        // A SIGKILL leaves the warm namespaces; the next start deletes them and makes new ones.
        const before = warmNamespaces();
        await agentProcess.kill();
        agentProcess = await start();
        await waitUntil('the leftover warm namespaces deleted', 60_000, async () => (warmNamespaces().some((n) => before.includes(n)) ? undefined : true));
        await poolReady(2);
        assert.deepEqual(
          (await pauses()).filter((name) => before.includes(name)),
          [],
          'the leftover warm pause containers are removed',
        );
        // A clean stop deletes them.
        await agentProcess.stop();
        assert.deepEqual(warmNamespaces(), []);
        assert.deepEqual(await pauses(), []);
        assert.deepEqual(env.network.allocatedAddresses(), []);
        assert.deepEqual(env.network.bridgePorts(), []);
        assert.deepEqual(env.network.natRules(), []);
      } finally {
        await agentProcess.stop();
        for (const c of await env.runtime.listContainers({ [LABELS.agentId]: agentId })) await env.runtime.removeContainer(c.id);
      }
    });

    if (kind === 'containerd') {
      describe('with a plugin that takes its time', () => {
        let slow: TestNetwork;
        let slowAgent: TestAgent;
        let pluginDir: string;
        /**
         * The inode of a named namespace once it is mounted: berth's launcher (as `ip netns add`)
         * makes the file before it mounts the namespace on it, and until then the file is an empty
         * one of /run/netns.
         */
        const mountedNamespace = async (path: string) => {
          if (!existsSync(path)) return undefined;
          const file = statSync(path);
          return file.dev !== statSync(dirname(path)).dev ? file.ino : undefined;
        };
        /** Processes in the network namespace of inode `inode`. */
        const inNamespace = (inode: number) =>
          readdirSync('/proc')
            .filter((entry) => /^\d+$/.test(entry))
            .filter((pid) => {
              try {
                return readlinkSync(`/proc/${pid}/ns/net`) === `net:[${inode}]`;
              } catch {
                return false;
              }
            });
        /** While this file is missing, the test's plugin holds every ADD (for 30 s at most). */
        let gate: string;
        before(async () => {
          // A plugin of the test's own, last in the list: ADD passes the result on once the test
          // opens the gate, so that each test decides how long ADD runs.
          pluginDir = mkdtempSync(join(env.dir, 'slow-plugin-'));
          gate = join(pluginDir, 'open');
          const plugin = join(pluginDir, 'berth-test-slow');
          writeFileSync(
            plugin,
            `#!${process.execPath}
const { existsSync } = require('node:fs');
let input = '';
process.stdin.on('data', (chunk) => (input += chunk)).on('end', () => {
  const conf = JSON.parse(input || '{}');
  const command = process.env.CNI_COMMAND;
  if (command === 'VERSION') process.stdout.write(JSON.stringify({ cniVersion: '1.0.0', supportedVersions: ['0.4.0', '1.0.0'] }));
  else if (command === 'ADD') {
    const deadline = Date.now() + 30000;
    const pass = () => (existsSync(${JSON.stringify(gate)}) || Date.now() > deadline ? process.stdout.write(JSON.stringify(conf.prevResult)) : setTimeout(pass, 50));
    pass();
  }
});
`,
            { mode: 0o755 },
          );
          slow = createTestNetwork({ plugins: (defaults) => [...defaults, { type: 'berth-test-slow' }] });
          slowAgent = await startTestAgent(env, { network: { cni: { pluginDirs: [CNI_PLUGIN_DIR, pluginDir], config: slow.config } } });
        });
        // A test that failed half-way leaves its task holding an address the next test counts.
        afterEach(async () => {
          writeFileSync(gate, '');
          const left = (await slowAgent.calls.list()).filter((t) => t.desiredStatus !== TaskStatus.TASK_STATUS_STOPPED);
          await Promise.all(left.map((t) => slowAgent.calls.stopAndWait(t.definition?.id ?? '')));
        });
        after(async () => {
          await slowAgent?.stop();
          slow?.remove();
        });

        it("creates the containers' processes in the namespace while ADD runs, starts none before it is done, and removes them when the task is stopped first", async () => {
          const id = taskId('slownet');
          const namespace = namespaceOf(slowAgent, id);
          await watching(slowAgent.client, { taskIds: [id] }, async (watch) => {
            await run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })], TASK_MODE), slowAgent);
            const inode = await waitUntil('the namespace made', 30_000, () => mountedNamespace(namespace));
            // The container's process is created (not run) in the namespace while ADD waits.
            await waitUntil("the container's process created in the namespace", 30_000, async () => (inNamespace(inode).length > 0 ? true : undefined));
            await watch.waitForEvent('app CREATED', is.container(id, 'app', ContainerStatus.CONTAINER_STATUS_CREATED), 60_000);
            const during = await get(id, slowAgent);
            assert.equal(containerOf(during, 'app').knownStatus, ContainerStatus.CONTAINER_STATUS_CREATED);
            assert.equal(during?.network, undefined, 'ADD has not finished');
            await slowAgent.calls.stop(id, 'test');
            writeFileSync(gate, '');
            await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
            assert.ok(!watch.events.some(is.container(id, 'app', ContainerStatus.CONTAINER_STATUS_RUNNING)), 'the container never ran');
            assert.deepEqual(inNamespace(inode), [], 'its process is gone');
          });
          assert.equal(containerOf(await get(id, slowAgent), 'app').reason, 'the task stopped before the container started');
          assert.equal(existsSync(namespace), false);
          assert.deepEqual(slow.allocatedAddresses(), []);
          assert.deepEqual(slow.natRules(), []);
        });

        it('killed while ADD runs, after the container joined the namespace: the restarted agent adds it again in the same namespace, and the container runs on the network', async () => {
          const dir = mkdtempSync(join(env.dir, 'agent-'));
          const agentId = 'slowcrash';
          const id = taskId('slowcrash');
          const namespace = `/run/netns/berth-${agentId}-${id}`;
          const networkConfig = { ...env.networkConfig, cni: { pluginDirs: [CNI_PLUGIN_DIR, pluginDir], config: slow.config } };
          const start = () => startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig, networkConfig });
          rmSync(gate, { force: true });
          let agentProcess = await start();
          try {
            await agentProcess.calls.run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })], TASK_MODE));
            const inode = await waitUntil('the namespace made', 30_000, () => mountedNamespace(namespace));
            await waitUntil("the container's process created in the namespace", 30_000, async () => (inNamespace(inode).length > 0 ? true : undefined));
            await agentProcess.kill();
            writeFileSync(gate, '');
            agentProcess = await start();
            await watching(agentProcess.client, { taskIds: [id] }, async (watch) => {
              const now = await agentProcess.calls.get(id);
              if (now?.knownStatus !== TaskStatus.TASK_STATUS_RUNNING) await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING), 60_000);
            });
            assert.equal(statSync(namespace).ino, inode, 'the same namespace');
            const address = (await agentProcess.calls.get(id))?.network?.ipAddresses[0]?.split('/')[0];
            assert.ok(address);
            assert.deepEqual(slow.allocatedAddresses(), [address], 'the cut-short ADD was deleted, one address held');
            const { output } = await agentProcess.calls.shell(id, 'app', 'ip -4 -o addr show eth0');
            assert.match(output, new RegExp(`inet ${address.replaceAll('.', '\\.')}/`), 'the container has the address');
            await watching(agentProcess.client, { taskIds: [id] }, async (watch) => {
              await agentProcess.calls.stop(id, 'test');
              await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
            });
            assert.deepEqual(slow.allocatedAddresses(), []);
            assert.equal(existsSync(namespace), false);
          } finally {
            await agentProcess.stop();
            for (const c of await env.runtime.listContainers({ [LABELS.agentId]: agentId })) await env.runtime.removeContainer(c.id);
          }
        });
      });
    }

    describe('with a plugin that fails', () => {
      let broken: TestNetwork;
      let brokenAgent: TestAgent;
      before(async () => {
        // host-local refuses the range: the bridge plugin fails ADD with host-local's message.
        broken = createTestNetwork({ plugins: (defaults) => [defaults[0]!, { ...defaults[1]!, ipam: { type: 'host-local', ranges: [[{ subnet: '10.300.0.0/24' }]] } }] });
        brokenAgent = await startTestAgent(env, { network: { cni: { pluginDirs: [CNI_PLUGIN_DIR], config: broken.config } } });
      });
      after(async () => {
        await brokenAgent?.stop();
        broken?.remove();
      });

      it("ends the task STOPPED with the plugin's message, starts none of its containers and removes any pause container", async () => {
        const id = taskId('badnet');
        await watching(brokenAgent.client, { taskIds: [id] }, async (watch) => {
          await run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })], TASK_MODE), brokenAgent);
          await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
        });
        const snapshot = await get(id, brokenAgent);
        assert.match(snapshot?.reason ?? '', /^cannot set up the task's network: CNI ADD failed in plugin "bridge": .*10\.300\.0\.0/);
        // Without a pause container, ADD can fail before the image is even pulled.
        assert.match(containerOf(snapshot, 'app').reason, /^the task (stopped before the container started|was stopped before the image was pulled)$/);
        const left = await env.runtime.listContainers({ [LABELS.taskId]: id });
        assert.deepEqual(
          left.map((c) => [c.labels[LABELS.containerName], c.state]).filter(([, state]) => state !== 'created'),
          [],
          'nothing ran',
        );
        assert.deepEqual(await pauseContainers(id), [], 'the pause container was removed');
        assert.equal(existsSync(namespaceOf(brokenAgent, id)), false);
        assert.deepEqual(brokenAgent.agent.parts.store.loadCniAttachments(), [], 'the failed attachment was deleted');
      });
    });

    describe('when the agent is killed during network setup or teardown', () => {
      const CASES = [
        { point: 'before-network-add', stopFirst: false },
        { point: 'after-network-add', stopFirst: false },
        { point: 'after-network-del', stopFirst: true },
      ];
      let counter = 0;

      it('killed while the task runs, restarted: the task keeps its namespace and address, and stops cleanly', async () => {
        const dir = mkdtempSync(join(env.dir, 'agent-'));
        const agentId = `netcrash${counter++}`;
        const id = taskId('netkeep');
        const start = () => startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig, networkConfig: env.networkConfig });
        let agentProcess = await start();
        let address: string | undefined;
        await watching(agentProcess.client, { taskIds: [id] }, async (watch) => {
          await agentProcess.calls.run(task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })], TASK_MODE));
          await watch.waitForEvent('task RUNNING', is.task(id, TaskStatus.TASK_STATUS_RUNNING), 60_000);
          address = (await agentProcess.calls.get(id))?.network?.ipAddresses[0];
        });
        await agentProcess.kill();
        agentProcess = await start();
        try {
          const after = await waitUntil('the restarted agent has the task', 30_000, async () => await agentProcess.calls.get(id));
          assert.equal(after.knownStatus, TaskStatus.TASK_STATUS_RUNNING);
          assert.equal(after.network?.ipAddresses[0], address);
          assert.equal((await pauseContainers(id)).length, pausesPerTask);
          assert.deepEqual(env.network.allocatedAddresses(), [address!.split('/')[0]]);
          await watching(agentProcess.client, { taskIds: [id] }, async (watch) => {
            await agentProcess.calls.stop(id, 'test');
            await watch.waitForEvent('task STOPPED', is.task(id, TaskStatus.TASK_STATUS_STOPPED), 60_000);
          });
          assert.deepEqual(env.network.allocatedAddresses(), []);
          assert.deepEqual(env.network.bridgePorts(), []);
          assert.deepEqual(await pauseContainers(id), []);
        } finally {
          await agentProcess.stop();
          for (const c of await env.runtime.listContainers({ [LABELS.agentId]: agentId })) await env.runtime.removeContainer(c.id);
        }
      });

      for (const { point, stopFirst } of CASES) {
        it(`killed at ${point}, restarted: no leaked address, the task reaches its desired status`, async () => {
          const dir = mkdtempSync(join(env.dir, 'agent-'));
          const agentId = `netcrash${counter++}`;
          const id = taskId('netcrash');
          const definition = task(id, [container('app', env.image, { ...creds(), command: ['sleep', '300'] })], TASK_MODE);
          const start = (crashPoint?: string) => startAgentProcess({ dir, agentId, runtimeConfig: env.runtimeConfig, networkConfig: env.networkConfig, crashPoint });
          const reach = async (a: AgentProcess, watch: EventCollector, status: TaskStatus) => {
            const current = await a.calls.get(id).catch(() => undefined);
            if (current?.knownStatus !== status) await watch.waitForEvent(`task ${TaskStatus[status]}`, is.task(id, status), 60_000);
            return a.calls.get(id);
          };

          let agentProcess = await start(point);
          const first = new EventCollector(agentProcess.client, { taskIds: [id] });
          try {
            await agentProcess.calls.run(definition);
            if (stopFirst) {
              await reach(agentProcess, first, TaskStatus.TASK_STATUS_RUNNING);
              await agentProcess.calls.stop(id, 'test');
            }
            const signal = await Promise.race([agentProcess.exited, new Promise((resolve) => setTimeout(() => resolve('still running'), 60_000))]);
            assert.equal(signal, 'SIGKILL', `the agent was to crash at ${point}`);
          } finally {
            first.close();
          }

          agentProcess = await start();
          const second = new EventCollector(agentProcess.client, { taskIds: [id] });
          try {
            if (!stopFirst) {
              const running = await reach(agentProcess, second, TaskStatus.TASK_STATUS_RUNNING);
              const address = running?.network?.ipAddresses[0]?.split('/')[0];
              assert.ok(address, 'the task has its address');
              // Exactly one address held, the task's own: the cut-short ADD was deleted before the new one.
              assert.deepEqual(env.network.allocatedAddresses(), [address]);
              assert.equal((await pauseContainers(id)).length, pausesPerTask);
              await agentProcess.calls.stop(id, 'test');
            }
            await reach(agentProcess, second, TaskStatus.TASK_STATUS_STOPPED);
            assert.deepEqual(env.network.allocatedAddresses(), []);
            assert.deepEqual(env.network.bridgePorts(), []);
            assert.deepEqual(env.network.natRules(), []);
            assert.equal(existsSync(`/run/netns/berth-${agentId}-${id}`), false);
            assert.deepEqual(await pauseContainers(id), []);
          } finally {
            second.close();
            await agentProcess.stop();
            for (const c of await env.runtime.listContainers({ [LABELS.agentId]: agentId })) await env.runtime.removeContainer(c.id);
          }
        });
      }
    });
  });
}
