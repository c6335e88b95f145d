import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/package-root.js';

const REPO = PACKAGE_ROOT ?? resolve(import.meta.dirname, '../..');
/** The import path the repository has for Go (gen/go's module is github.com/berth-dev/berth/gen/go). */
const IMPORT_ROOT = 'github.com/berth-dev/berth';
/** Where Debian's Go packages (grpc, protobuf, genproto) are. */
const DEBIAN_GOPATH = '/usr/share/gocode';

/**
 * Builds Go programs of this repository offline, as Debian builds Go: GOPATH mode, with the
 * repository linked in at its import path and Debian's packages for everything else.
 */
export class GoBuilder {
  private readonly gopath = mkdtempSync(join(tmpdir(), 'berth-gopath-'));
  readonly env: NodeJS.ProcessEnv;

  constructor() {
    const parent = join(this.gopath, 'src', ...IMPORT_ROOT.split('/').slice(0, -1));
    mkdirSync(parent, { recursive: true });
    symlinkSync(REPO, join(this.gopath, 'src', IMPORT_ROOT));
    this.env = { ...process.env, GO111MODULE: 'off', GOPATH: `${this.gopath}:${DEBIAN_GOPATH}`, GOPROXY: 'off', GOFLAGS: '', CGO_ENABLED: '0' };
  }

  /** Builds the package at `dir` (relative to the repository) into a binary; returns its path. */
  async build(dir: string): Promise<string> {
    const output = join(this.gopath, 'bin', dir.replaceAll('/', '-'));
    await this.go(['build', '-o', output, `${IMPORT_ROOT}/${dir}`]);
    return output;
  }

  /** `go vet` of packages (relative to the repository). */
  async vet(...dirs: string[]): Promise<void> {
    await this.go(['vet', ...dirs.map((d) => `${IMPORT_ROOT}/${d}`)]);
  }

  private async go(args: string[]): Promise<void> {
    try {
      await promisify(execFile)('go', args, { env: this.env, cwd: join(this.gopath, 'src', IMPORT_ROOT), maxBuffer: 16 * 1024 * 1024 });
    } catch (error) {
      const e = error as { stderr?: string; message: string };
      throw new Error(`go ${args.join(' ')} failed: ${e.stderr || e.message}`);
    }
  }
}
