import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { ContainerRuntime } from '../../src/runtime/container-runtime.js';
import { isRuntimeError } from '../../src/runtime/errors.js';
import { tmpdir, totalmem } from 'node:os';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { resolvConf } from '../../src/runtime/etc-files.js';
import { waitUntil } from './processes.js';
import type { ContainerSpec, LogLine, LogOptions, RuntimeEvent } from '../../src/runtime/types.js';
import { exitOf } from './container-exit.js';

export interface ContractContext {
  runtime: ContainerRuntime;
  image: string;
  privateImage: string;
  /** An image whose /etc/passwd is a symbolic link to /dev/zero. */
  hostilePasswdImage: string;
  /** Images that share a layer no other image has (pulled by no other test). */
  sharedLayerImages: string[];
  /** An image whose STOPSIGNAL is SIGUSR1. */
  usr1StopImage: string;
  missingImage: string;
  credentials: { username: string; password: string };
  /** A multi-platform image (a manifest list) behind a registry that wants Bearer tokens. */
  bearerImage: string;
  bearerTokensIssued(): number;
  /** Blobs the Bearer front redirected to its storage and that were fetched there. */
  bearerBlobsFromStorage(): number;
  /** Whether the daemon made a network of its own for the container (Docker's libnetwork sandbox); undefined where there is none to make. */
  daemonNetworkOf?(id: string): Promise<boolean>;
}

/**
 * The behaviour every ContainerRuntime adapter must show, run against a real daemon. `setup`
 * starts the daemon and the registry; `teardown` stops them.
 */
export function runtimeContract(name: string, setup: () => Promise<ContractContext>, teardown: () => Promise<void>): void {
  describe(`ContainerRuntime contract: ${name}`, () => {
    let ctx: ContractContext;
    const labels = { 'berth.test': `contract-${process.pid}` };
    let counter = 0;
    const spec = (overrides: Partial<ContainerSpec>): ContainerSpec => ({
      name: `contract-${process.pid}-${counter++}`,
      image: ctx.image,
      env: {},
      labels,
      cpuShares: 0,
      memoryBytes: 0,
      memoryReservationBytes: 0,
      network: 'none',
      ports: [],
      ...overrides,
    });

    before(async () => {
      ctx = await setup();
    });
    after(async () => {
      await teardown();
    });

    it('answers ping with its version', async () => {
      const version = await ctx.runtime.ping();
      assert.equal(version.name, ctx.runtime.name);
      assert.ok(version.version.length > 0);
      assert.match(version.apiVersion, /^\d+\.\d+$/, 'an API version, not a revision');
    });

    it('pulls with correct credentials and reports progress', async () => {
      const progress: number[] = [];
      const image = await ctx.runtime.pullImage(ctx.image, { auth: ctx.credentials, onProgress: (p) => progress.push(p.bytesDone) });
      assert.match(image.id, /^sha256:/);
      assert.ok(progress.length > 0, 'no progress reported');
      const inspected = await ctx.runtime.inspectImage(ctx.image);
      assert.equal(inspected.id, image.id);
    });

    it('refuses wrong credentials with "unauthorized"', async () => {
      await assert.rejects(ctx.runtime.pullImage(ctx.privateImage, { auth: { username: ctx.credentials.username, password: 'wrong' } }), (error) => isRuntimeError(error, 'unauthorized'));
      await assert.rejects(ctx.runtime.inspectImage(ctx.privateImage), (error) => isRuntimeError(error, 'not-found'));
    });

    it('pulls a multi-platform image through Bearer token auth, picking the host platform', async () => {
      await assert.rejects(ctx.runtime.pullImage(ctx.bearerImage, { auth: { username: ctx.credentials.username, password: 'wrong' } }), (error) => isRuntimeError(error, 'unauthorized'));
      const image = await ctx.runtime.pullImage(ctx.bearerImage, { auth: ctx.credentials });
      assert.match(image.id, /^sha256:/);
      assert.ok(ctx.bearerTokensIssued() > 0, 'a token was asked for');
      assert.ok(ctx.bearerBlobsFromStorage() > 0, 'blob downloads followed the redirect to storage');
      // Exits 7 only in the host platform's image (the other one says "other-platform").
      const s = spec({ image: ctx.bearerImage, command: ['sh', '-c', 'test "$(cat /etc/berth-test-image)" = host-platform && exit 7; exit 1'] });
      const id = await ctx.runtime.createContainer(s);
      const events = new AbortController();
      const stream = await ctx.runtime.events(labels, events.signal);
      await ctx.runtime.startContainer(id);
      await exitOf(ctx.runtime, stream, id);
      events.abort();
      assert.equal((await ctx.runtime.inspectContainer(id)).exitCode, 7, 'the chosen manifest runs here');
      await ctx.runtime.removeContainer(id);
    });

    it('pulls images that share a layer side by side: every pull succeeds and each image runs', async () => {
      await Promise.all(ctx.sharedLayerImages.map((image) => ctx.runtime.pullImage(image, { auth: ctx.credentials })));
      for (const [i, image] of ctx.sharedLayerImages.entries()) {
        const id = await ctx.runtime.createContainer(spec({ image, command: ['sh', '-c', 'echo "$IMAGE $(cat /etc/berth-test-image)"'] }));
        await ctx.runtime.startContainer(id);
        // Following ends when the process exits.
        const lines: string[] = [];
        for await (const line of await ctx.runtime.logs(id, { follow: true, signal: AbortSignal.timeout(30_000) })) lines.push(line.text.toString('utf8'));
        assert.deepEqual(lines, [`${i} shared layer`]);
        await ctx.runtime.removeContainer(id);
      }
    });

    it('refuses an image reference outside the grammar with "invalid" in every image call (dockerd would redirect "//")', async () => {
      for (const reference of ['127.0.0.1:5000//acc/busybox:1', 'Not::A@@Valid/Reference', 'busybox/./x:1']) {
        const invalid = (error: unknown) => isRuntimeError(error, 'invalid') && (error as Error).message.includes('image reference');
        await assert.rejects(ctx.runtime.pullImage(reference, { auth: ctx.credentials }), invalid, reference);
        await assert.rejects(ctx.runtime.inspectImage(reference), invalid, reference);
        await assert.rejects(ctx.runtime.checkImageAccess(reference, ctx.credentials), invalid, reference);
        await assert.rejects(ctx.runtime.removeImage(reference), invalid, reference);
        await assert.rejects(ctx.runtime.createContainer(spec({ image: reference })), invalid, reference);
      }
      assert.ok((await ctx.runtime.ping()).version, 'the adapter still works');
    });

    it('reports a missing image as "not-found"', async () => {
      await assert.rejects(ctx.runtime.pullImage(ctx.missingImage, { auth: ctx.credentials }), (error) => isRuntimeError(error, 'not-found'));
    });

    it('creates, starts, inspects, reports the exit and removes a container', async () => {
      const events = new AbortController();
      const seen: RuntimeEvent[] = [];
      const stream = await ctx.runtime.events(labels, events.signal);
      const collecting = (async () => {
        for await (const event of stream) {
          seen.push(event);
          if (event.type === 'exit') return;
        }
      })();
      const s = spec({ command: ['sh', '-c', 'echo hi; exit 3'], env: { A: 'b' } });
      const id = await ctx.runtime.createContainer(s);
      const created = await ctx.runtime.inspectContainer(s.name);
      assert.equal(created.id, id);
      assert.equal(created.state, 'created');
      assert.equal(created.labels['berth.test'], labels['berth.test']);
      await ctx.runtime.startContainer(id);
      await collecting;
      events.abort();
      const exit = seen.find((e) => e.type === 'exit');
      assert.ok(exit && exit.type === 'exit');
      assert.equal(exit.containerId, id);
      assert.equal(exit.exitCode, 3);
      assert.ok(seen.some((e) => e.type === 'start' && e.containerId === id));
      const exited = await ctx.runtime.inspectContainer(id);
      assert.equal(exited.state, 'exited');
      assert.equal(exited.exitCode, 3);
      const listed = await ctx.runtime.listContainers(labels);
      const inList = listed.find((c) => c.id === id);
      assert.equal(inList?.state, 'exited', 'the list shows the state too');
      assert.equal(inList?.name, s.name);
      await ctx.runtime.removeContainer(id);
      await ctx.runtime.removeContainer(id); // idempotent
      await assert.rejects(ctx.runtime.inspectContainer(id), (error) => isRuntimeError(error, 'not-found'));
    });

    it('lists each container as it is, listing after listing, and an exit from outside once it happened', async () => {
      await ctx.runtime.pullImage(ctx.image, { auth: ctx.credentials });
      const own = { ...labels, 'berth.listing': String(process.pid) };
      // More containers than containerd's adapter asks about one by one, then fewer.
      const idle = await Promise.all(Array.from({ length: 17 }, () => ctx.runtime.createContainer(spec({ labels: own, command: ['true'] }))));
      const id = await ctx.runtime.createContainer(spec({ labels: own, command: ['sleep', '600'] }));
      const listing = async () => new Map((await ctx.runtime.listContainers(own)).map((c) => [c.id, c]));
      try {
        await ctx.runtime.startContainer(id);
        for (const round of [1, 2, 3]) {
          const listed = await listing();
          assert.equal(listed.size, 18, `listing ${round}`);
          assert.equal(listed.get(id)?.state, 'running', `listing ${round}`);
          for (const other of idle) assert.equal(listed.get(other)?.state, 'created', `listing ${round}`);
        }
        await Promise.all(idle.splice(2).map((other) => ctx.runtime.removeContainer(other)));
        assert.equal((await listing()).get(id)?.state, 'running');
        const pid = (await ctx.runtime.inspectContainer(id)).pid;
        assert.ok(pid, 'a running container has a pid');
        const events = new AbortController();
        const stream = await ctx.runtime.events(own, events.signal);
        // Killed from outside the runtime: only the process's end tells.
        process.kill(pid, 'SIGKILL');
        await exitOf(ctx.runtime, stream, id);
        events.abort();
        // Docker updates what it lists a moment after its die event: a listing still showing the
        // process running is repeated, for at most 2 s (one that never sees the exit fails).
        let listed = await listing();
        for (let attempt = 0; attempt < 40 && listed.get(id)?.state === 'running'; attempt++) {
          await new Promise((resolve) => setTimeout(resolve, 50));
          listed = await listing();
        }
        assert.equal(listed.size, 3);
        assert.equal(listed.get(id)?.state, 'exited');
        for (const other of idle) assert.equal(listed.get(other)?.state, 'created');
        // The exit code is the inspection's (Docker does not list it).
        assert.equal((await ctx.runtime.inspectContainer(id)).exitCode, 137);
      } finally {
        await Promise.all([...idle, id].map((other) => ctx.runtime.removeContainer(other)));
      }
    });

    it('refuses a second container with the same name with "already-exists"', async () => {
      const s = spec({ command: ['true'] });
      const id = await ctx.runtime.createContainer(s);
      await assert.rejects(ctx.runtime.createContainer(s), (error) => isRuntimeError(error, 'already-exists'));
      await ctx.runtime.removeContainer(id);
    });

    it('stops a container that ignores SIGTERM by killing it after the timeout', async () => {
      const id = await ctx.runtime.createContainer(spec({ command: ['sh', '-c', "trap '' TERM; while true; do sleep 1; done"] }));
      await ctx.runtime.startContainer(id);
      const started = Date.now();
      await ctx.runtime.stopContainer(id, 1000);
      const info = await ctx.runtime.inspectContainer(id);
      assert.equal(info.state, 'exited');
      assert.equal(info.exitCode, 137);
      assert.ok(Date.now() - started >= 900, 'killed before the stop timeout');
      await ctx.runtime.stopContainer(id, 1000); // idempotent
      await ctx.runtime.removeContainer(id);
    });

    it("stops a container with its image's stop signal", async () => {
      await ctx.runtime.pullImage(ctx.usr1StopImage, { auth: ctx.credentials });
      // SIGTERM is ignored; only SIGUSR1 ends the process, with 0. A stop by SIGTERM would end in SIGKILL (137).
      const id = await ctx.runtime.createContainer(
        spec({ image: ctx.usr1StopImage, command: ['sh', '-c', "trap '' TERM; trap 'exit 0' USR1; touch /trapped; while true; do sleep 1 & wait $!; done"] }),
      );
      await ctx.runtime.startContainer(id);
      // A signal that came before the trap was set would be lost: the container's first process has
      // no default action for it. (One run stopped it that early, and it was killed after 30 s.)
      await fileAppears(ctx.runtime, id, '/trapped');
      await ctx.runtime.stopContainer(id, 30_000);
      const info = await ctx.runtime.inspectContainer(id);
      assert.equal(info.exitCode, 0, 'ended by SIGUSR1, not killed');
      await ctx.runtime.removeContainer(id);
    });

    it('reports the pid of a running container, and lets another join its network namespace (network "container")', async () => {
      const holder = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'] }));
      await ctx.runtime.startContainer(holder);
      const { pid } = await ctx.runtime.inspectContainer(holder);
      assert.ok(pid !== undefined && pid > 1, `pid ${pid}`);
      const joiner = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'], network: 'container', networkContainer: { id: holder, netnsPath: `/proc/${pid}/ns/net` } }));
      await ctx.runtime.startContainer(joiner);
      const namespaceOf = async (id: string) => (await ctx.runtime.exec(id, ['ls', '-l', '/proc/self/ns/net'], { timeoutMs: 10_000 })).output.toString('utf8').match(/net:\[\d+\]/)?.[0];
      const held = await namespaceOf(holder);
      assert.ok(held, 'the namespace of the holder');
      assert.equal(await namespaceOf(joiner), held);
      const own = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'] }));
      await ctx.runtime.startContainer(own);
      assert.notEqual(await namespaceOf(own), held, 'network "none" is a namespace of its own');
      for (const id of [joiner, own, holder]) await ctx.runtime.removeContainer(id);
      const stopped = await ctx.runtime.createContainer(spec({ command: ['true'] }));
      assert.equal((await ctx.runtime.inspectContainer(stopped)).pid, undefined, 'no pid before it runs');
      await ctx.runtime.removeContainer(stopped);
    });

    it("lets containers join a namespace holder (networkHolder): loopback up, /etc/hosts and a resolv.conf without the host's loopback servers, read-only", async () => {
      const holder = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'], networkHolder: true }));
      await ctx.runtime.startContainer(holder);
      const { pid } = await ctx.runtime.inspectContainer(holder);
      if (ctx.daemonNetworkOf) assert.equal(await ctx.daemonNetworkOf(holder), false, 'no network of the daemon for a holder');
      const joiners = [];
      for (let i = 0; i < 2; i++) {
        const joiner = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'], network: 'container', networkContainer: { id: holder, netnsPath: `/proc/${pid}/ns/net` } }));
        await ctx.runtime.startContainer(joiner);
        joiners.push(joiner);
      }
      const run = async (id: string, script: string) => {
        const result = await ctx.runtime.exec(id, ['sh', '-c', script], { timeoutMs: 10_000 });
        return { exitCode: result.exitCode, output: result.output.toString('utf8') };
      };
      const expectedResolv = resolvConf(readFileSync('/etc/resolv.conf', 'utf8'), [], [], true);
      for (const joiner of joiners) {
        assert.equal((await run(joiner, 'cat /sys/class/net/lo/flags')).output.trim(), '0x9', 'loopback up');
        assert.match((await run(joiner, 'cat /etc/hosts')).output, /^127\.0\.0\.1\s+localhost$/m);
        assert.equal((await run(joiner, 'cat /etc/resolv.conf')).output, expectedResolv);
        const write = await run(joiner, 'echo 10.0.0.1 other >> /etc/hosts');
        assert.notEqual(write.exitCode, 0, `/etc/hosts is read-only: ${write.output}`);
      }
      // A joiner's own mount at /etc/hosts (spelled loosely) wins over the runtime's file.
      const ownHosts = join(mkdtempSync(join(tmpdir(), 'berth-contract-hosts-')), 'hosts');
      writeFileSync(ownHosts, '10.9.8.7\town\n');
      const withOwn = await ctx.runtime.createContainer(
        spec({
          command: ['sleep', '300'],
          network: 'container',
          networkContainer: { id: holder, netnsPath: `/proc/${pid}/ns/net` },
          mounts: [{ hostPath: ownHosts, containerPath: '/etc//hosts', readOnly: true }],
        }),
      );
      await ctx.runtime.startContainer(withOwn);
      assert.equal((await run(withOwn, 'cat /etc/hosts')).output, '10.9.8.7\town\n');
      await ctx.runtime.removeContainer(withOwn);
      rmSync(dirname(ownHosts), { recursive: true, force: true });
      if (ctx.daemonNetworkOf) assert.equal(await ctx.daemonNetworkOf(joiners[0]!), false);
      // The resource use of a joiner, whose runtime may have no network of its own to count.
      await run(joiners[0]!, 'head -c 3000000 /dev/zero > /tmp/fill');
      const sample = await ctx.runtime.stats(joiners[0]!);
      assert.ok(sample.pids >= 1, `pids ${sample.pids}`);
      assert.ok(sample.memoryUsageBytes > 0 && sample.memoryLimitBytes >= sample.memoryUsageBytes, `memory ${sample.memoryUsageBytes} of ${sample.memoryLimitBytes}`);
      assert.ok(sample.cpuUsageNanos > 0, `cpu ${sample.cpuUsageNanos}`);
      await run(joiners[0]!, 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done');
      const again = await ctx.runtime.stats(joiners[0]!);
      assert.ok(again.cpuUsageNanos > sample.cpuUsageNanos && again.pids >= 1, `cpu ${sample.cpuUsageNanos} then ${again.cpuUsageNanos}`);
      // Stopped, it has no resource use to sample, however the runtime read it while it ran.
      await ctx.runtime.stopContainer(joiners[0]!, 2000);
      await assert.rejects(ctx.runtime.stats(joiners[0]!), (error) => isRuntimeError(error, 'conflict'));
      for (const id of [...joiners, holder]) await ctx.runtime.removeContainer(id);
    });

    it('gives a container of network "none" loopback, /etc/hosts and a resolv.conf without the host\'s loopback servers, read-only; extra hosts and name servers of its own', async () => {
      const run = async (id: string, script: string) => {
        const result = await ctx.runtime.exec(id, ['sh', '-c', script], { timeoutMs: 10_000 });
        return { exitCode: result.exitCode, output: result.output.toString('utf8') };
      };
      const plain = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'], hostname: 'plain-1' }));
      const named = await ctx.runtime.createContainer(
        spec({ command: ['sleep', '300'], extraHosts: [{ hostname: 'db.internal', ipAddress: '10.1.2.3' }], dnsServers: ['10.0.0.53'], dnsSearchDomains: ['corp.test'] }),
      );
      for (const id of [plain, named]) await ctx.runtime.startContainer(id);
      // On Docker, no libnetwork sandbox (and no start hook that runs dockerd again) for a
      // container whose files berth can give; one for a container that sets its own entries.
      if (ctx.daemonNetworkOf) {
        assert.equal(await ctx.daemonNetworkOf(plain), false, 'no network of the daemon for a plain container of network "none"');
        assert.equal(await ctx.daemonNetworkOf(named), true, "the daemon's network writes the extra hosts and name servers");
      }
      assert.equal((await run(plain, 'cat /sys/class/net/lo/flags')).output.trim(), '0x9', 'loopback up');
      assert.equal((await run(plain, 'hostname; cat /etc/hostname')).output, 'plain-1\nplain-1\n');
      assert.match((await run(plain, 'cat /etc/hosts')).output, /^127\.0\.0\.1\s+localhost$/m);
      assert.equal((await run(plain, 'cat /etc/resolv.conf')).output, resolvConf(readFileSync('/etc/resolv.conf', 'utf8'), [], [], true));
      assert.notEqual((await run(plain, 'echo 10.0.0.1 other >> /etc/hosts')).exitCode, 0, '/etc/hosts is read-only');
      assert.match((await run(named, 'cat /etc/hosts')).output, /^10\.1\.2\.3\s+db\.internal$/m);
      const resolv = (await run(named, 'cat /etc/resolv.conf')).output.split('\n');
      assert.deepEqual(
        resolv.filter((l) => /^(nameserver|search)\s/.test(l)),
        ['search corp.test', 'nameserver 10.0.0.53'],
      );
      // Its resource use, network counters included (none but loopback's to count).
      await run(plain, 'head -c 3000000 /dev/zero > /tmp/fill');
      const sample = await ctx.runtime.stats(plain);
      assert.ok(sample.pids >= 1 && sample.memoryUsageBytes > 0 && sample.cpuUsageNanos > 0, `pids ${sample.pids}, memory ${sample.memoryUsageBytes}, cpu ${sample.cpuUsageNanos}`);
      for (const id of [plain, named]) await ctx.runtime.removeContainer(id);
    });

    it('runs exec in a running container, its output passed as bytes', async () => {
      const id = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'] }));
      await ctx.runtime.startContainer(id);
      const ok = await ctx.runtime.exec(id, ['sh', '-c', 'echo out; echo err >&2; exit 4'], { timeoutMs: 10_000 });
      assert.equal(ok.exitCode, 4);
      assert.match(ok.output.toString('utf8'), /out/);
      assert.match(ok.output.toString('utf8'), /err/);
      // Bytes that are not UTF-8 arrive as they were written.
      const binary = await ctx.runtime.exec(id, ['sh', '-c', "printf '\\377\\376\\000x'"], { timeoutMs: 10_000 });
      assert.deepEqual([...binary.output], [0xff, 0xfe, 0x00, 0x78]);
      // A command that exits at once still has all of its output, from both streams (their
      // order against each other is not kept: they are two pipes).
      for (let i = 0; i < 40; i++) {
        const quick = await ctx.runtime.exec(id, ['sh', '-c', `echo out ${i}; echo err ${i} >&2; printf tail`], { timeoutMs: 10_000 });
        const expected = [`out ${i}\n`, `err ${i}\n`, 'tail'];
        const text = quick.output.toString('utf8');
        assert.ok(expected.every((piece) => text.includes(piece)) && text.length === expected.join('').length, `run ${i}: ${JSON.stringify(text)}`);
      }
      await ctx.runtime.removeContainer(id);
    });

    it('confines an unprivileged container as Docker does (seccomp filter, masked and read-only /proc paths), a privileged one not', async () => {
      // Seccomp mode 2 is a filter; unshare of a user namespace needs no capability, only the filter refuses it.
      const probe = [
        'echo "seccomp=$(grep ^Seccomp: /proc/self/status | tr -dc 0-9)"',
        'if unshare -U true 2>/dev/null; then echo unshare=allowed; else echo unshare=refused; fi',
        'echo "timer_list=$(wc -c < /proc/timer_list)"',
        'echo "proc_sys=$(awk \'$2 == "/proc/sys" { split($4, o, ","); print o[1] }\' /proc/mounts)"',
      ].join('; ');
      const confinement = async (privileged: boolean) => {
        const id = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'], privileged }));
        await ctx.runtime.startContainer(id);
        try {
          const result = await ctx.runtime.exec(id, ['sh', '-c', probe], { timeoutMs: 10_000 });
          return Object.fromEntries(
            result.output
              .toString('utf8')
              .trim()
              .split('\n')
              .map((line) => line.split('=') as [string, string]),
          );
        } finally {
          await ctx.runtime.stopContainer(id, 1000);
          await ctx.runtime.removeContainer(id);
        }
      };
      assert.deepEqual(await confinement(false), { seccomp: '2', unshare: 'refused', timer_list: '0', proc_sys: 'ro' });
      const privileged = await confinement(true);
      assert.equal(privileged.seccomp, '0');
      assert.equal(privileged.unshare, 'allowed');
      assert.notEqual(privileged.timer_list, '0');
    });

    it('kills an exec that times out or is cancelled, with every process it started', async () => {
      const id = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'] }));
      await ctx.runtime.startContainer(id);
      const marker = 700_000 + (process.pid % 10_000) * 10 + counter;
      // The shell starts a child and waits for it: killing the shell alone would leave the child.
      const timedOut = ctx.runtime.exec(id, ['sh', '-c', `sleep ${marker}; echo done`], { timeoutMs: 3000 });
      await processAppears(`sleep\0${marker}\0`);
      await assert.rejects(timedOut, (error) => isRuntimeError(error, 'timeout'));
      await processGone(`sleep\0${marker}\0`);
      const cancel = new AbortController();
      const cancelled = ctx.runtime.exec(id, ['sh', '-c', `sleep ${marker + 1}; echo done`], { timeoutMs: 60_000, signal: cancel.signal });
      await processAppears(`sleep\0${marker + 1}\0`);
      cancel.abort();
      await assert.rejects(cancelled);
      await processGone(`sleep\0${marker + 1}\0`);
      // The container itself is untouched.
      assert.equal((await ctx.runtime.inspectContainer(id)).state, 'running');
      await ctx.runtime.stopContainer(id, 1000);
      await ctx.runtime.removeContainer(id);
    });

    it('keeps the output line by line with its stream and time: tail, since, stream choice, and follow until the exit', async () => {
      const signal = new AbortController().signal;
      const read = async (id: string, options: Partial<LogOptions> = {}) => {
        const lines: LogLine[] = [];
        for await (const line of await ctx.runtime.logs(id, { follow: false, signal, ...options })) lines.push(line);
        return lines;
      };
      const text = (lines: LogLine[]) => lines.map((l) => `${l.stream}:${l.text.toString('utf8')}${l.partial ? '…' : ''}`);
      const before = Date.now();
      const id = await ctx.runtime.createContainer(spec({ command: ['sh', '-c', 'echo one; echo two >&2; echo "  three  "; printf no-newline'] }));
      await ctx.runtime.startContainer(id);
      // A follow of a container that runs ends when it exits.
      const followed = text(await read(id, { follow: true }));
      const all = await read(id);
      assert.deepEqual(text(all.filter((l) => l.stream === 'stdout')), ['stdout:one', 'stdout:  three  ', 'stdout:no-newline…']);
      assert.deepEqual(text(all.filter((l) => l.stream === 'stderr')), ['stderr:two']);
      for (const line of all) assert.ok(line.time.getTime() >= before - 1000 && line.time.getTime() <= Date.now() + 1000, `time ${line.time.toISOString()}`);
      assert.deepEqual(followed.sort(), text(all).sort(), 'the follow saw every line before it ended');
      assert.deepEqual(text(await read(id, { tail: 2 })), text(all.slice(-2)));
      assert.deepEqual(text(await read(id, { streams: ['stderr'] })), ['stderr:two']);
      assert.deepEqual(await read(id, { tail: 0 }), []);
      const last = all.reduce((a, b) => (a.time > b.time ? a : b));
      assert.deepEqual(text(await read(id, { since: new Date(last.time.getTime() + 1000) })), [], 'nothing written since');
      assert.ok((await read(id, { since: new Date(before - 60_000) })).length === 4);
      await ctx.runtime.removeContainer(id);
      await assert.rejects(ctx.runtime.logs(id, { follow: false, signal }), (error) => isRuntimeError(error, 'not-found'));
    });

    it('follows the output of a running container: new lines arrive, and the follow ends when asked to', async () => {
      const id = await ctx.runtime.createContainer(spec({ command: ['sh', '-c', 'echo first; while [ ! -e /tmp/go ]; do sleep 0.05; done; echo second; sleep 300'] }));
      await ctx.runtime.startContainer(id);
      const abort = new AbortController();
      const seen: string[] = [];
      for await (const line of await ctx.runtime.logs(id, { follow: true, signal: abort.signal })) {
        seen.push(line.text.toString('utf8'));
        if (seen.length === 1) await ctx.runtime.exec(id, ['touch', '/tmp/go'], { timeoutMs: 10_000 });
        if (seen.length === 2) abort.abort();
      }
      assert.deepEqual(seen, ['first', 'second']);
      await ctx.runtime.removeContainer(id);
    });

    it('samples the resource use of a running container and refuses a stopped one with "conflict"', async () => {
      const id = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'], memoryBytes: 64 * 1024 * 1024 }));
      await ctx.runtime.startContainer(id);
      const first = await ctx.runtime.stats(id);
      assert.equal(first.memoryLimitBytes, 64 * 1024 * 1024);
      assert.ok(first.memoryUsageBytes > 0 && first.memoryUsageBytes < first.memoryLimitBytes, `memory ${first.memoryUsageBytes}`);
      assert.ok(first.pids >= 1, `pids ${first.pids}`);
      assert.deepEqual(first.network, { rxBytes: 0, txBytes: 0, rxPackets: 0, txPackets: 0 }, 'network "none": loopback only, not counted');
      await ctx.runtime.exec(id, ['sh', '-c', 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'], { timeoutMs: 30_000 });
      const second = await ctx.runtime.stats(id);
      assert.ok(second.cpuUsageNanos > first.cpuUsageNanos, `cpu ${first.cpuUsageNanos} → ${second.cpuUsageNanos}`);
      assert.ok(second.time.getTime() >= first.time.getTime());
      const unlimited = await ctx.runtime.createContainer(spec({ command: ['sleep', '300'] }));
      await ctx.runtime.startContainer(unlimited);
      assert.equal((await ctx.runtime.stats(unlimited)).memoryLimitBytes, totalmem(), 'no limit: the host memory');
      await ctx.runtime.stopContainer(id, 1000);
      await assert.rejects(ctx.runtime.stats(id), (error) => isRuntimeError(error, 'conflict'));
      for (const container of [id, unlimited]) await ctx.runtime.removeContainer(container);
    });

    it('reports an OOM kill as an oom event, exit 137 and oomKilled', async () => {
      const events = new AbortController();
      const stream = await ctx.runtime.events(labels, events.signal);
      const seen: RuntimeEvent[] = [];
      const s = spec({ command: ['sh', '-c', 'x=$(head -c 200000000 /dev/zero | tr "\\000" a)'], memoryBytes: 16 * 1024 * 1024 });
      const id = await ctx.runtime.createContainer(s);
      // Docker can report the kill after the exit: both are awaited, for 60 s at most.
      const collecting = (async () => {
        for await (const event of stream) {
          if (event.containerId !== id) continue;
          seen.push(event);
          if (seen.some((e) => e.type === 'exit') && seen.some((e) => e.type === 'oom')) return;
        }
      })();
      const bound = setTimeout(() => events.abort(), 60_000);
      await ctx.runtime.startContainer(id);
      await collecting.catch(() => undefined);
      clearTimeout(bound);
      events.abort();
      assert.ok(
        seen.some((e) => e.type === 'oom'),
        JSON.stringify(seen),
      );
      assert.deepEqual(
        seen.filter((e) => e.type === 'exit').map((e) => e.type === 'exit' && e.exitCode),
        [137],
      );
      const info = await ctx.runtime.inspectContainer(id);
      assert.equal(info.oomKilled, true);
      await ctx.runtime.removeContainer(id);
    });

    it('removes an image, and removing it again succeeds', async () => {
      await ctx.runtime.pullImage(ctx.image, { auth: ctx.credentials });
      const ids = (await ctx.runtime.listContainers(labels)).map((c) => c.id);
      await Promise.all(ids.map((id) => ctx.runtime.removeContainer(id)));
      await ctx.runtime.removeImage(ctx.image);
      await assert.rejects(ctx.runtime.inspectImage(ctx.image), (error) => isRuntimeError(error, 'not-found'));
      await ctx.runtime.removeImage(ctx.image);
    });

    it("fails a container that names a user when the image's /etc/passwd is a link to /dev/zero, with an error, not a hang", async () => {
      await ctx.runtime.pullImage(ctx.hostilePasswdImage, { auth: ctx.credentials });
      const error = await (async () => {
        const id = await ctx.runtime.createContainer(spec({ image: ctx.hostilePasswdImage, user: 'nobody', command: ['true'] }));
        try {
          await ctx.runtime.startContainer(id);
        } finally {
          await ctx.runtime.removeContainer(id).catch(() => undefined);
        }
      })().then(
        () => assert.fail('the container started'),
        (e: unknown) => e,
      );
      assert.ok(isRuntimeError(error), String(error));
      assert.match(error.detail, /passwd|user/i);
    });

    it('reports "not-found" for unknown containers', async () => {
      await assert.rejects(ctx.runtime.inspectContainer('berth-no-such-container'), (error) => isRuntimeError(error, 'not-found'));
      await assert.rejects(ctx.runtime.startContainer('berth-no-such-container'), (error) => isRuntimeError(error, 'not-found'));
    });
  });
}

/** Command lines (NUL-separated, as in /proc) of the host's processes. */
async function commandLines(): Promise<string[]> {
  const { readdir, readFile } = await import('node:fs/promises');
  const pids = (await readdir('/proc')).filter((e) => /^\d+$/.test(e));
  const lines = await Promise.all(pids.map((pid) => readFile(`/proc/${pid}/cmdline`, 'utf8').catch(() => '')));
  return lines;
}

/** Waits (at most 10 s) until no process on the host has this command line. */
async function processGone(cmdline: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while ((await commandLines()).includes(cmdline)) {
    if (Date.now() > deadline) assert.fail(`${JSON.stringify(cmdline)} still runs`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** Waits (at most 10 s) until a file exists in a running container, asking by exec. */
async function fileAppears(runtime: ContainerRuntime, id: string, path: string): Promise<void> {
  await waitUntil(`${path} in container ${id}`, 10_000, async () => ((await runtime.exec(id, ['test', '-e', path], { timeoutMs: 10_000 })).exitCode === 0 ? true : undefined));
}

/** Waits (at most 10 s) until a process on the host has this command line. */
async function processAppears(cmdline: string): Promise<void> {
  const deadline = Date.now() + 10_000;
  while (!(await commandLines()).includes(cmdline)) {
    if (Date.now() > deadline) assert.fail(`${JSON.stringify(cmdline)} never started`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}
