import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, it } from 'node:test';
import { AGENT_NODE_OPTIONS } from '../../src/agent-node-options.js';

const root = fileURLToPath(new URL('../..', import.meta.url));
const pkg = JSON.parse(readFileSync(`${root}/package.json`, 'utf8')) as { version: string; bin: Record<string, string>; scripts: Record<string, string> };

/** What `--version` prints: the package's version at the end. */
const VERSION_PRINTED = new RegExp(`${pkg.version.replace(/\./g, '\\.')}$`);

describe('the package bins', () => {
  it('builds berth and berthctl into the files package.json names, and both run from there', () => {
    assert.deepEqual(Object.keys(pkg.bin).sort(), ['berth', 'berthctl']);
    execFileSync('npm', ['run', 'build', '--silent'], { cwd: root, stdio: 'pipe' });
    for (const [name, file] of Object.entries(pkg.bin)) {
      const shebang = name === 'berth' ? `#!/usr/bin/env -S node ${AGENT_NODE_OPTIONS.join(' ')}\n` : '#!/usr/bin/env node\n';
      assert.ok(readFileSync(`${root}/${file}`, 'utf8').startsWith(shebang), `${name} starts with the shebang ${JSON.stringify(shebang)}`);
      const printed = execFileSync(process.execPath, [`${root}/${file}`, '--version'], { encoding: 'utf8' }).trim();
      assert.match(printed, VERSION_PRINTED, `${name} --version`);
    }
    // What the kernel runs for an installed bin: the interpreter of the first line, with the rest
    // of that line as one argument, then the file.
    const [interpreter, argument] = readFileSync(`${root}/${pkg.bin.berth}`, 'utf8').split('\n')[0]!.slice(2).split(/ (.*)/);
    const printed = execFileSync(interpreter!, [argument!, `${root}/${pkg.bin.berth}`, '--version'], { encoding: 'utf8' }).trim();
    assert.match(printed, VERSION_PRINTED, 'berth --version, run by its first line');
  });

  it('starts the agent as a service and by npm start with the node options of src/agent-node-options.ts', () => {
    const options = AGENT_NODE_OPTIONS.join(' ');
    const execStart = /^ExecStart=(.*)$/m.exec(readFileSync(`${root}/deploy/berth.service`, 'utf8'))?.[1];
    assert.equal(execStart, `/usr/bin/node ${options} /opt/berth/dist/berth.mjs --config /etc/berth/berth.json`, 'deploy/berth.service');
    assert.match(pkg.scripts.start, new RegExp(` node ${options} --import tsx src/main\\.ts$`), 'npm start');
  });
});
