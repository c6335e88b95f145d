import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { readRootfsFile, RootfsFileError } from '../../src/runtime/rootfs-file.js';

describe('reading files of an untrusted image root', () => {
  let dir: string;
  let root: string;
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'berth-rootfs-test-'));
    root = join(dir, 'root');
    mkdirSync(join(root, 'etc'), { recursive: true });
    mkdirSync(join(root, 'dev'));
    writeFileSync(join(dir, 'host-secret'), 'secret:x:0:0::/:/bin/sh\n');
  });
  after(() => rmSync(dir, { recursive: true, force: true }));
  const place = (name: string, make: (path: string) => void) => {
    const path = join(root, 'etc', name);
    rmSync(path, { force: true });
    make(path);
  };

  it('reads a regular file, and through links that stay inside the root', async () => {
    place('passwd', (p) => writeFileSync(p, 'root:x:0:0::/:/bin/sh\n'));
    assert.equal(await readRootfsFile(root, 'etc/passwd', 1024), 'root:x:0:0::/:/bin/sh\n');
    place('relative', (p) => symlinkSync('passwd', p));
    place('absolute', (p) => symlinkSync('/etc/passwd', p));
    place('escaping', (p) => symlinkSync('../../../../etc/passwd', p));
    for (const name of ['relative', 'absolute', 'escaping']) assert.equal(await readRootfsFile(root, `etc/${name}`, 1024), 'root:x:0:0::/:/bin/sh\n', name);
    assert.equal(await readRootfsFile(root, 'etc/missing', 1024), undefined);
  });

  it("never reads a host file through an absolute link: the link resolves in the image's root", async () => {
    place('passwd', (p) => symlinkSync(join(dir, 'host-secret'), p));
    assert.equal(await readRootfsFile(root, 'etc/passwd', 1024), undefined);
  });

  it('refuses devices, FIFOs, directories, link loops and files over the size, saying which', async () => {
    execFileSync('mknod', [join(root, 'dev', 'zero'), 'c', '1', '5']);
    place('passwd', (p) => symlinkSync('/dev/zero', p));
    await assert.rejects(readRootfsFile(root, 'etc/passwd', 1024), (e: unknown) => e instanceof RootfsFileError && /is not a regular file/.test(e.message));
    place('passwd', (p) => execFileSync('mkfifo', [p]));
    await assert.rejects(readRootfsFile(root, 'etc/passwd', 1024), (e: unknown) => e instanceof RootfsFileError && /is not a regular file/.test(e.message));
    place('passwd', (p) => mkdirSync(p));
    await assert.rejects(readRootfsFile(root, 'etc/passwd', 1024), RootfsFileError);
    rmSync(join(root, 'etc', 'passwd'), { recursive: true });
    place('passwd', (p) => symlinkSync('/etc/loop', p));
    place('loop', (p) => symlinkSync('/etc/passwd', p));
    await assert.rejects(readRootfsFile(root, 'etc/passwd', 1024), (e: unknown) => e instanceof RootfsFileError && /too many symbolic links/.test(e.message));
    place('passwd', (p) => writeFileSync(p, 'x'.repeat(2000)));
    await assert.rejects(readRootfsFile(root, 'etc/passwd', 1024), (e: unknown) => e instanceof RootfsFileError && /larger than 1024 bytes/.test(e.message));
  });
});
