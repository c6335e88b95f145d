import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TestPki } from './certificates.js';
import { freeLoopbackPort, requireBinary, startDaemon, waitUntil } from './processes.js';

/** A private rsyslog (Debian's), receiving on loopback TCP and UDP and a unix datagram socket. */
export interface TestSyslog {
  tcpAddress: string;
  /** TCP with TLS (rsyslog-gnutls), its certificate signed by `tlsCaFile`, for 127.0.0.1. */
  tlsAddress: string;
  tlsCaFile: string;
  udpAddress: string;
  /** The unix datagram socket's path. */
  socketPath: string;
  /** Received messages, one per line: `<facility>.<severity> <app-name> <message>`. */
  received(): string[];
  /** The received lines once they include every one of `expected` (at most 15 s). */
  waitFor(expected: string[]): Promise<string[]>;
  stop(): Promise<void>;
}

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  await new Promise<void>((resolve) => socket.close(() => resolve()));
  return port;
}

/**
 * Starts rsyslogd with a config of its own (work directory, inputs, one output file), touching
 * nothing of the host's syslog: notes/test-infra.md has the checked commands.
 */
export async function startSyslog(): Promise<TestSyslog> {
  const rsyslogd = requireBinary('/usr/sbin/rsyslogd', 'rsyslog');
  const dir = mkdtempSync(join(tmpdir(), 'berth-rsyslog-'));
  const [tcpPort, tlsPort, udpPort] = [await freeLoopbackPort(), await freeLoopbackPort(), await freeUdpPort()];
  requireBinary('/usr/lib/x86_64-linux-gnu/rsyslog/lmnsd_gtls.so', 'rsyslog-gnutls');
  const pki = new TestPki();
  const ca = pki.authority('rsyslog-ca');
  const server = pki.issue(ca, 'rsyslog', 'server');
  const socketPath = join(dir, 'log.sock');
  const out = join(dir, 'out.log');
  writeFileSync(
    join(dir, 'rsyslog.conf'),
    [
      `global(workDirectory="${dir}" DefaultNetstreamDriverCAFile="${ca.certFile}" DefaultNetstreamDriverCertFile="${server.certFile}" DefaultNetstreamDriverKeyFile="${server.keyFile}")`,
      'module(load="imtcp")',
      'module(load="imudp")',
      'module(load="imuxsock" SysSock.Use="off")',
      'template(name="berth" type="string" string="%syslogfacility-text%.%syslogseverity-text% %app-name% %msg%\\n")',
      `input(type="imtcp" port="${tcpPort}" address="127.0.0.1")`,
      `input(type="imtcp" port="${tlsPort}" address="127.0.0.1" StreamDriver.Name="gtls" StreamDriver.Mode="1" StreamDriver.AuthMode="anon")`,
      `input(type="imudp" port="${udpPort}" address="127.0.0.1")`,
      `input(type="imuxsock" Socket="${socketPath}" UseSpecialParser="off" ParseHostname="on")`,
      `*.* action(type="omfile" file="${out}" template="berth")`,
    ].join('\n'),
  );
  const daemon = startDaemon(rsyslogd, ['-n', '-f', join(dir, 'rsyslog.conf'), '-i', join(dir, 'rsyslogd.pid')], join(dir, 'rsyslogd.log'));
  const received = () => {
    try {
      return readFileSync(out, 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((line) => line.replace(/\s+$/, ''));
    } catch {
      return [];
    }
  };
  await waitUntil('rsyslogd listens', 10_000, () => accepts(tcpPort), daemon);
  return {
    tcpAddress: `127.0.0.1:${tcpPort}`,
    tlsAddress: `127.0.0.1:${tlsPort}`,
    tlsCaFile: ca.certFile,
    udpAddress: `127.0.0.1:${udpPort}`,
    socketPath,
    received,
    // rsyslog writes its file in its own time: nothing to await but the file's content.
    waitFor: (expected) => waitUntil(`syslog receives ${JSON.stringify(expected)}`, 15_000, async () => (expected.every((e) => received().includes(e)) ? received() : undefined), daemon),
    async stop() {
      await daemon.stop();
      rmSync(dir, { recursive: true, force: true });
      rmSync(pki.dir, { recursive: true, force: true });
    },
  };
}

/** Whether something accepts a connection on the loopback port. */
function accepts(port: number): Promise<true | undefined> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1', () => {
      socket.destroy();
      resolve(true);
    });
    socket.on('error', () => resolve(undefined));
  });
}
