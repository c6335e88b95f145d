import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { version: string; bin: Record<string, string> };

describe('the package bins', () => {
  it('builds berth and berthctl into the files package.json names, and both run from there', () => {
    assert.deepEqual(Object.keys(pkg.bin).sort(), ['berth', 'berthctl']);
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'pipe' });
    for (const [name, file] of Object.entries(pkg.bin)) {
      assert.match(readFileSync(`${root}/${file}`, 'utf8'), /^#!\/usr\/bin\/env node\n/, `${name} starts with a shebang`);
      const printed = execFileSync(process.execPath, [`${root}/${file}`, '--version'], { encoding: 'utf8' }).trim();
      assert.match(printed, new RegExp(`${pkg.version.replace(/\./g, '\\.')}$`), `${name} --version`);
    }
  });
});
