import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { hostsFile, resolvConf } from '../etc-files.js';

/**
 * The /etc/hosts and /etc/resolv.conf of the Docker containers made without Docker's network
 * sandbox, for which Docker writes none: those that join a pause container (itself made without
 * one, `networkHolder`) and those of network "none" that set no extra hosts or name servers. They
 * all get these, the same for every such container, bind-mounted read-only as on containerd.
 * resolv.conf follows the host's, read again at each create as Docker does; a new version
 * replaces the file (by rename), leaving containers that mounted the old one with theirs.
 */
export class SharedNetworkFiles {
  private readonly hosts: string;
  private readonly resolvConf: string;
  private hostsWritten: Promise<void> | undefined;
  /** What resolv.conf holds now, once written. */
  private resolvContent: string | undefined;
  private writes = 0;

  constructor(private readonly dir: string) {
    this.hosts = join(dir, 'hosts');
    this.resolvConf = join(dir, 'resolv.conf');
  }

  /** Bind mounts of the files, each written first. */
  async mounts(): Promise<{ Type: 'bind'; Source: string; Target: string; ReadOnly: true }[]> {
    this.hostsWritten ??= this.write(this.hosts, hostsFile(undefined)).catch((error: unknown) => {
      this.hostsWritten = undefined;
      throw error;
    });
    await this.hostsWritten;
    const content = resolvConf(await readFile('/etc/resolv.conf', 'utf8').catch(() => ''), [], [], true);
    if (content !== this.resolvContent) {
      await this.write(this.resolvConf, content);
      this.resolvContent = content;
    }
    return [
      { Type: 'bind', Source: this.hosts, Target: '/etc/hosts', ReadOnly: true },
      { Type: 'bind', Source: this.resolvConf, Target: '/etc/resolv.conf', ReadOnly: true },
    ];
  }

  /** Writes `content` to `path` whole: through a file of its own, renamed over it. */
  private async write(path: string, content: string): Promise<void> {
    await mkdir(this.dir, { recursive: true });
    const temporary = `${path}.${process.pid}.${++this.writes}`;
    await writeFile(temporary, content, { mode: 0o644 });
    await rename(temporary, path);
  }
}
