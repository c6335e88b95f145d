import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { requireBinary } from './processes.js';

export interface Certificate {
  certFile: string;
  keyFile: string;
  cert: Buffer;
  key: Buffer;
}

/**
 * A throwaway PKI made with openssl for the TLS tests: certificate authorities and certificates
 * they sign, each an EC P-256 key, valid for a day.
 */
export class TestPki {
  readonly dir = mkdtempSync(join(tmpdir(), 'berth-pki-'));
  private serial = 1;

  constructor() {
    requireBinary('/usr/bin/openssl', 'openssl');
  }

  private openssl(args: string[]): void {
    execFileSync('openssl', args, { cwd: this.dir, stdio: ['ignore', 'ignore', 'pipe'] });
  }

  private key(name: string): string {
    const file = join(this.dir, `${name}.key`);
    this.openssl(['ecparam', '-name', 'prime256v1', '-genkey', '-noout', '-out', file]);
    return file;
  }

  private load(certFile: string, keyFile: string): Certificate {
    return { certFile, keyFile, cert: readFileSync(certFile), key: readFileSync(keyFile) };
  }

  authority(name: string): Certificate {
    const keyFile = this.key(name);
    const certFile = join(this.dir, `${name}.crt`);
    this.openssl([
      'req',
      '-x509',
      '-new',
      '-key',
      keyFile,
      '-subj',
      `/CN=${name}`,
      '-days',
      '1',
      '-out',
      certFile,
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    return this.load(certFile, keyFile);
  }

  /** A certificate signed by `ca`: for a server (with the SAN IP 127.0.0.1) or a client. */
  issue(ca: Certificate, name: string, usage: 'server' | 'client'): Certificate {
    const keyFile = this.key(name);
    const csr = join(this.dir, `${name}.csr`);
    const certFile = join(this.dir, `${name}.crt`);
    const extensions = join(this.dir, `${name}.ext`);
    writeFileSync(extensions, usage === 'server' ? 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n' : 'extendedKeyUsage=clientAuth\n');
    this.openssl(['req', '-new', '-key', keyFile, '-subj', `/CN=${name}`, '-out', csr]);
    this.openssl(['x509', '-req', '-in', csr, '-CA', ca.certFile, '-CAkey', ca.keyFile, '-set_serial', String(this.serial++), '-days', '1', '-extfile', extensions, '-out', certFile]);
    return this.load(certFile, keyFile);
  }
}
