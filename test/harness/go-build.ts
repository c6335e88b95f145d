import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/package-root.js';

const REPO = PACKAGE_ROOT ?? resolve(import.meta.dirname, '../..');
/** The import path the repository has for Go (gen/go's module is github.com/berth-dev/berth/gen/go). */
const IMPORT_ROOT = 'github.com/berth-dev/berth';
/** Where Debian's Go packages (grpc, protobuf, genproto) are. */
const DEBIAN_GOPATH = '/usr/share/gocode';

/**
 * The import paths of packages given relative to the repository, `dir/...` expanded here: in GOPATH
 * mode Go does not follow the symlink the repository is reached by, and a pattern through it
 * matches nothing (with only a warning).
 */
function importPaths(dirs: string[]): string[] {
  return dirs.flatMap((dir) => {
    if (!dir.endsWith('/...')) return [`${IMPORT_ROOT}/${dir}`];
    const root = dir.slice(0, -'/...'.length);
    const packages = new Set(
      readdirSync(join(REPO, root), { recursive: true, withFileTypes: true })
        .filter((entry) => entry.isFile() && entry.name.endsWith('.go'))
        .map((entry) => relative(REPO, entry.parentPath)),
    );
    if (packages.size === 0) throw new Error(`no Go package under ${root}`);
    return [...packages].map((pkg) => `${IMPORT_ROOT}/${pkg}`);
  });
}

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

  /** Removes the GOPATH and the binaries built in it; the repository it links to stays. */
  remove(): void {
    rmSync(this.gopath, { recursive: true, force: true });
  }

  /** `go vet` of packages (relative to the repository; `dir/...` for every package under dir). */
  async vet(...dirs: string[]): Promise<void> {
    await this.go(['vet', ...importPaths(dirs)]);
  }

  /** `go test` of packages (as for `vet`); the error holds their output. */
  async test(...dirs: string[]): Promise<void> {
    await this.go(['test', '-count=1', ...importPaths(dirs)]);
  }

  private async go(args: string[]): Promise<void> {
    try {
      await promisify(execFile)('go', args, { env: this.env, cwd: join(this.gopath, 'src', IMPORT_ROOT), maxBuffer: 16 * 1024 * 1024 });
    } catch (error) {
      const e = error as { stdout?: string; stderr?: string; message: string };
      throw new Error(`go ${args.join(' ')} failed: ${[e.stdout, e.stderr].filter(Boolean).join('\n') || e.message}`);
    }
  }
}
