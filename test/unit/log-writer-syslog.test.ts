import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { type EventEmitter, once } from 'node:events';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { after, describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/package-root.js';
import { freeLoopbackPort } from '../harness/processes.js';
import { TestPki } from '../harness/certificates.js';
import { writerLogOptions } from '../../src/runtime/containerd/log-options.js';
import { decodeMessagePack } from '../harness/msgpack.js';

const WRITER = join(PACKAGE_ROOT ?? '.', 'libexec', 'berth-log-writer');
const dir = mkdtempSync(join(tmpdir(), 'berth-log-writer-'));
after(() => rmSync(dir, { recursive: true, force: true }));
let runs = 0;

/**
 * Runs berth's log writer as the containerd shim does (the process's stdout on fd 3, stderr on
 * fd 4, a readiness pipe on fd 5), writes `stdout` and `stderr` to it, ends both, and waits for it
 * to exit. Its log file and its forwarding statistics.
 */
async function runWriter(args: Record<string, string>, stdout: string, stderr = ''): Promise<{ log: string[]; forwarding: string }> {
  const file = join(dir, `container-${runs++}.log`);
  const argv = Object.entries({ file, ...args }).flat();
  const child = spawn('perl', [WRITER, ...argv], { stdio: ['ignore', 'ignore', 'inherit', 'pipe', 'pipe', 'pipe'], env: { ...process.env, CONTAINER_ID: '0123456789abcdef' } });
  const [out, err] = [child.stdio[3] as Duplex, child.stdio[4] as Duplex];
  const exited = once(child, 'exit');
  out.end(stdout);
  err.end(stderr);
  await exited;
  const forwarding = (() => {
    try {
      return readFileSync(`${file}.forwarding`, 'utf8');
    } catch {
      return '';
    }
  })();
  return { log: readFileSync(file, 'utf8').split('\n').filter(Boolean), forwarding };
}

/**
 * Counts the connections `server` has seen closed. The writer's exit can reach this process before
 * the last bytes it sent are read: a connection's close is what says everything on it has been.
 * `event` is the one that hands the server a connection it reads from ('secureConnection' for TLS).
 */
function closedConnections(server: EventEmitter, event = 'connection'): { count(n: number): Promise<void> } {
  let closed = 0;
  const waiting: { n: number; resolve: () => void }[] = [];
  server.on(event, (socket: Socket) =>
    socket.on('close', () => {
      closed += 1;
      for (const wait of waiting.filter((w) => w.n <= closed)) wait.resolve();
    }),
  );
  return {
    count: (n) => (closed >= n ? Promise.resolve() : new Promise((resolve) => waiting.push({ n, resolve }))),
  };
}

describe("berth's log writer: the syslog driver on containerd (RFC 5424)", () => {
  it('sends each line over TCP, octet-counted, stdout at info and stderr at err of the facility, with the tag', async () => {
    const received: string[] = [];
    let buffer = '';
    const server = createServer((socket: Socket) =>
      socket.on('data', (chunk: Buffer) => {
        buffer += chunk.toString('utf8');
        for (let match = /^(\d+) /.exec(buffer); match && buffer.length >= match[0].length + Number(match[1]); match = /^(\d+) /.exec(buffer)) {
          received.push(buffer.slice(match[0].length, match[0].length + Number(match[1])));
          buffer = buffer.slice(match[0].length + Number(match[1]));
        }
      }),
    );
    const closed = closedConnections(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const { port } = server.address() as { port: number };
    const { log, forwarding } = await runWriter({ 'syslog-address': `tcp://127.0.0.1:${port}`, 'syslog-facility': '19', tag: 'web' }, 'hello\nworld\n', 'oops\n');
    assert.equal(forwarding, '', 'nothing dropped');
    await closed.count(1);
    server.close();
    assert.equal(log.length, 3, 'the local copy is kept');
    const pattern = /^<(\d+)>1 \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z \S+ web - - - (.*)$/;
    assert.deepEqual(
      received.map((m) => pattern.exec(m)?.slice(1)).sort(),
      // local3 (19): info is 19 × 8 + 6, err 19 × 8 + 3.
      [
        ['158', 'hello'],
        ['158', 'world'],
        ['155', 'oops'],
      ].sort(),
    );
  });

  it('sends datagrams over UDP, the tag defaulting to the container id', async () => {
    const socket = createSocket('udp4');
    const received: string[] = [];
    const both = new Promise<void>((resolve) =>
      socket.on('message', (message: Buffer) => {
        if (received.push(message.toString('utf8')) === 2) resolve();
      }),
    );
    socket.bind(0, '127.0.0.1');
    await once(socket, 'listening');
    const { log } = await runWriter({ 'syslog-address': `udp://127.0.0.1:${socket.address().port}`, 'syslog-facility': '3' }, 'one\ntwo\n');
    await both;
    socket.close();
    assert.equal(log.length, 2);
    assert.deepEqual(
      received.map((m) => m.replace(/^(<\d+>1) \S+ \S+ (.*)$/, '$1 $2')),
      ['<30>1 0123456789ab - - - one', '<30>1 0123456789ab - - - two'],
    );
  });

  it('never holds the container up when the destination is down or does not read: the lines are kept, the lost messages counted', async () => {
    const closed = await freeLoopbackPort();
    const lines = Array.from({ length: 3000 }, (_, i) => `line ${i}`).join('\n') + '\n';
    const down = await runWriter({ 'syslog-address': `tcp://127.0.0.1:${closed}`, 'syslog-facility': '3' }, lines);
    assert.equal(down.log.length, 3000);
    assert.equal(down.forwarding, 'dropped 3000\n');
    // A receiver that accepts and never reads: past the socket's buffers and berth's 1 MiB, messages are dropped.
    const stalled: Socket[] = [];
    const server = createServer((socket) => {
      socket.pause();
      stalled.push(socket);
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    // 21 MB: more than the kernel's socket buffers (at most about 10 MB on loopback) and berth's 1 MiB.
    const big = Array.from({ length: 100_000 }, (_, i) => `${i} ${'x'.repeat(200)}`).join('\n') + '\n';
    const slow = await runWriter({ 'syslog-address': `tcp://127.0.0.1:${(server.address() as { port: number }).port}`, 'syslog-facility': '3' }, big);
    for (const socket of stalled) socket.destroy();
    server.close();
    assert.equal(slow.log.length, 100_000, 'every line is in the local copy');
    const dropped = Number(/^dropped (\d+)$/m.exec(slow.forwarding)?.[1]);
    assert.ok(dropped > 40_000 && dropped < 100_000, `some were sent, the rest dropped (${dropped})`);
  });

  it('sends over tcp+tls, checking the server against the CA and showing its client certificate', async () => {
    const pki = new TestPki();
    const ca = pki.authority('syslog-ca');
    const server = pki.issue(ca, 'syslog-server', 'server');
    const client = pki.issue(ca, 'syslog-client', 'client');
    const received: string[] = [];
    const peers: string[] = [];
    const tls = createTlsServer({ cert: server.cert, key: server.key, ca: ca.cert, requestCert: true }, (socket) => {
      peers.push(String(socket.getPeerCertificate().subject?.CN));
      socket.on('data', (chunk: Buffer) => received.push(chunk.toString('utf8')));
    });
    const closed = closedConnections(tls, 'secureConnection');
    tls.listen(0, '127.0.0.1');
    await once(tls, 'listening');
    const port = (tls.address() as { port: number }).port;
    const { forwarding } = await runWriter(
      { 'syslog-address': `tcp+tls://127.0.0.1:${port}`, 'syslog-facility': '3', 'syslog-tls-ca-cert': ca.certFile, 'syslog-tls-cert': client.certFile, 'syslog-tls-key': client.keyFile },
      'secure line\n',
    );
    if (forwarding === '') await closed.count(1);
    // A server the CA did not sign is not sent anything.
    const stranger = new TestPki();
    const strangerCa = stranger.authority('other-ca');
    const refused = await runWriter({ 'syslog-address': `tcp+tls://127.0.0.1:${port}`, 'syslog-facility': '3', 'syslog-tls-ca-cert': strangerCa.certFile }, 'not for them\n');
    tls.close();
    for (const made of [pki, stranger]) rmSync(made.dir, { recursive: true, force: true });
    assert.equal(forwarding, '');
    assert.deepEqual(peers, ['syslog-client']);
    assert.match(received.join(''), /^\d+ <30>1 \S+ \S+ 0123456789ab - - - secure line$/);
    assert.equal(refused.forwarding, 'dropped 1\n');
  });
});

describe("berth's log writer: the fluentd driver on containerd (Forward protocol)", () => {
  it('sends [tag, time, {container_id, container_name, source, log}, {}] per line, as Docker does, with EventTime when asked', async () => {
    const chunks: Buffer[] = [];
    const server = createServer((socket: Socket) => socket.on('data', (chunk: Buffer) => chunks.push(chunk)));
    const closed = closedConnections(server);
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const address = `tcp://127.0.0.1:${(server.address() as { port: number }).port}`;
    const before = Math.floor(Date.now() / 1000);
    await runWriter({ 'fluentd-address': address, tag: 'web', 'container-name': '/shop' }, 'hello\n', 'oops\n');
    await runWriter({ 'fluentd-address': address, 'fluentd-sub-second-precision': 'true', 'container-name': '/shop' }, 'precise\n');
    await closed.count(2);
    server.close();
    const { values, rest } = decodeMessagePack(Buffer.concat(chunks));
    assert.equal(rest.length, 0, 'whole messages only');
    const messages = values as [string, number | { seconds: number; nanoseconds: number }, Record<string, string>, Record<string, never>][];
    assert.deepEqual(
      messages.map(([tag, , record, option]) => [tag, record, option] as const).sort((a, b) => String(a[1].log).localeCompare(String(b[1].log))),
      [
        ['web', { container_id: '0123456789abcdef', container_name: '/shop', source: 'stdout', log: 'hello' }, {}],
        ['web', { container_id: '0123456789abcdef', container_name: '/shop', source: 'stderr', log: 'oops' }, {}],
        ['0123456789ab', { container_id: '0123456789abcdef', container_name: '/shop', source: 'stdout', log: 'precise' }, {}],
      ],
    );
    const times = messages.map(([, time]) => time);
    assert.ok(typeof times[0] === 'number' && times[0] >= before && times[0] <= before + 60, 'seconds by default');
    const precise = times.find((t) => typeof t === 'object') as { seconds: number; nanoseconds: number };
    assert.ok(precise.seconds >= before && precise.nanoseconds < 1e9, 'EventTime with fluentd-sub-second-precision');
  });
});

describe("berth's log writer: unix stream destinations", () => {
  it('sends octet-counted syslog messages and Forward messages over a unix stream socket', async () => {
    const received: Buffer[] = [];
    const server = createServer((socket: Socket) => socket.on('data', (chunk: Buffer) => received.push(chunk)));
    const path = join(dir, 'stream.sock');
    const closed = closedConnections(server);
    server.listen(path);
    await once(server, 'listening');
    await runWriter({ 'syslog-address': `unix://${path}`, 'syslog-facility': '3', tag: 'app' }, 'over a stream\n');
    await closed.count(1);
    const syslog = Buffer.concat(received.splice(0)).toString('utf8');
    assert.match(syslog, /^(\d+) <30>1 \S+ \S+ app - - - over a stream$/);
    assert.equal(Number(/^(\d+) /.exec(syslog)![1]), syslog.length - syslog.indexOf(' ') - 1, 'the count is the message length');
    await runWriter({ 'fluentd-address': `unix://${path}`, tag: 'app', 'container-name': '/app' }, 'forwarded\n');
    await closed.count(2);
    server.close();
    const { values } = decodeMessagePack(Buffer.concat(received));
    assert.deepEqual(
      (values as unknown[][]).map((m) => [m[0], m[2], m[3]]),
      [['app', { container_id: '0123456789abcdef', container_name: '/app', source: 'stdout', log: 'forwarded' }, {}]],
    );
  });
});

describe('syslog options on containerd', () => {
  it('takes the addresses and options the writer has, and names the one it does not', () => {
    assert.deepEqual(writerLogOptions({ driver: 'syslog', options: { 'syslog-address': 'tcp+tls://logs:6514', 'syslog-tls-ca-cert': '/etc/ca.pem', 'syslog-facility': 'local2', tag: 'web' } }), {
      syslog: { address: 'tcp+tls://logs:6514', facility: 18, tag: 'web', tls: { caCert: '/etc/ca.pem' } },
    });
    assert.deepEqual(writerLogOptions({ driver: 'json-file', options: { 'max-size': '10m', 'max-file': '3' } }), { rotation: { maxFileBytes: 10 * 1024 * 1024, maxFiles: 3 } });
    assert.deepEqual(writerLogOptions({ driver: 'syslog', options: { 'syslog-address': 'tcp://logs:514', 'syslog-tls-cert': '/c' } }), {
      option: 'syslog-tls-cert',
      problem: 'needs a tcp+tls:// syslog-address',
    });
    assert.deepEqual(writerLogOptions({ driver: 'syslog', options: { 'syslog-address': 'tcp://logs:514', tag: '{{.Name}}' } }), {
      option: 'tag',
      problem: 'must be 1 to 48 printable characters without spaces (no templates)',
    });
    assert.match((writerLogOptions({ driver: 'gelf', options: {} }) as { problem: string }).problem, /no gelf driver/);
    assert.deepEqual(writerLogOptions({ driver: 'fluentd', options: { tag: 'web', 'fluentd-async': 'true' } }), { fluentd: { address: 'tcp://127.0.0.1:24224', tag: 'web' } });
    assert.deepEqual(writerLogOptions({ driver: 'fluentd', options: { 'fluentd-address': 'fluentd.internal:24224' } }), { fluentd: { address: 'tcp://fluentd.internal:24224' } });
    assert.deepEqual(writerLogOptions({ driver: 'fluentd', options: { 'fluentd-address': 'udp://x:1' } }), {
      option: 'fluentd-address',
      problem: 'must be tcp://host:port, host:port or unix:///path',
    });
  });
});
