import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Etcd3 } from 'etcd3';
import type { Certificate } from './certificates.js';
import { freeLoopbackPort, requireBinary, startDaemon, waitUntil, type DaemonProcess } from './processes.js';

/** Client TLS: one CA signs the members' certificate and the clients'; clients must present one. */
export interface EtcdTls {
  ca: Certificate;
  server: Certificate;
  /** The certificate the tests' own client presents. */
  client: Certificate;
}

interface Member {
  name: string;
  clientPort: number;
  peerPort: number;
  process: DaemonProcess | undefined;
}

/**
 * A real etcd cluster of `size` members on loopback, each with its own data directory and free
 * ports, for the fleet's tests. Members can be stopped and started again with their data (an
 * outage of one member, or of all of them).
 */
export class EtcdCluster {
  readonly dir = mkdtempSync(join(tmpdir(), 'berth-etcd-'));
  private readonly members: Member[] = [];

  private constructor(private readonly tls: EtcdTls | undefined) {}

  static async start(size = 3, tls?: EtcdTls): Promise<EtcdCluster> {
    requireBinary('/usr/bin/etcd', 'etcd-server');
    const cluster = new EtcdCluster(tls);
    for (let i = 0; i < size; i++) cluster.members.push({ name: `m${i + 1}`, clientPort: await freeLoopbackPort(), peerPort: await freeLoopbackPort(), process: undefined });
    for (let i = 0; i < size; i++) cluster.startMember(i);
    await cluster.ready();
    return cluster;
  }

  /** host:port of every member's client URL. */
  get endpoints(): string[] {
    return this.members.map((m) => `127.0.0.1:${m.clientPort}`);
  }

  /** The endpoints as URLs (https with TLS). */
  get urls(): string[] {
    return this.endpoints.map((e) => `${this.tls ? 'https' : 'http'}://${e}`);
  }

  startMember(index: number): void {
    const member = this.members[index]!;
    if (member.process) return;
    const initialCluster = this.members.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(',');
    const scheme = this.tls ? 'https' : 'http';
    const args = [
      '--name',
      member.name,
      '--data-dir',
      join(this.dir, member.name),
      '--listen-client-urls',
      `${scheme}://127.0.0.1:${member.clientPort}`,
      '--advertise-client-urls',
      `${scheme}://127.0.0.1:${member.clientPort}`,
      '--listen-peer-urls',
      `http://127.0.0.1:${member.peerPort}`,
      '--initial-advertise-peer-urls',
      `http://127.0.0.1:${member.peerPort}`,
      '--initial-cluster',
      initialCluster,
      '--initial-cluster-state',
      'new',
      '--initial-cluster-token',
      `berth-test-${this.dir}`,
      // Tests compact on purpose; nothing else should.
      '--auto-compaction-retention',
      '0',
    ];
    if (this.tls) args.push('--cert-file', this.tls.server.certFile, '--key-file', this.tls.server.keyFile, '--trusted-ca-file', this.tls.ca.certFile, '--client-cert-auth');
    member.process = startDaemon('/usr/bin/etcd', args, join(this.dir, `${member.name}.log`));
  }

  /** Ends one member (SIGTERM) and waits for it to exit; its data stays. */
  async stopMember(index: number): Promise<void> {
    const member = this.members[index]!;
    await member.process?.stop();
    member.process = undefined;
  }

  async stopAll(): Promise<void> {
    await Promise.all(this.members.map((_, i) => this.stopMember(i)));
  }

  startAll(): void {
    this.members.forEach((_, i) => this.startMember(i));
  }

  /** A client for the tests' own reads and writes (with the tests' client certificate under TLS). */
  client(): Etcd3 {
    const { tls } = this;
    return new Etcd3({ hosts: this.urls, ...(tls ? { credentials: { rootCertificate: tls.ca.cert, certChain: tls.client.cert, privateKey: tls.client.key } } : {}) });
  }

  /** Resolves once the cluster has a leader and answers a linearizable read. */
  async ready(timeoutMs = 30_000): Promise<void> {
    const client = this.client();
    try {
      await waitUntil('etcd cluster answers', timeoutMs, async () => {
        await client.get('berth-test-probe').string();
        return true;
      });
    } finally {
      client.close();
    }
  }

  async close(): Promise<void> {
    await this.stopAll();
    rmSync(this.dir, { recursive: true, force: true });
  }
}
