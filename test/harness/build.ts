import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { PACKAGE_ROOT } from '../../src/package-root.js';

const REPO = PACKAGE_ROOT ?? resolve(import.meta.dirname, '../..');
let built: Promise<void> | undefined;

/**
 * Builds the package as a user does (`npm run build`: the generated code, tsc's output in dist/,
 * and the bundles the bins run, dist/berth.mjs and dist/berthctl.mjs), once per test process.
 * Under `npm test` the lanes runner has built it once before any test started
 * (BERTH_TEST_PACKAGE_BUILT): a build here would rewrite src/gen and dist/ under the other lane.
 */
export function buildPackage(): Promise<void> {
  if (process.env.BERTH_TEST_PACKAGE_BUILT === '1') return Promise.resolve();
  built ??= promisify(execFile)('npm', ['run', 'build'], { cwd: REPO, maxBuffer: 16 * 1024 * 1024 }).then(() => undefined);
  return built;
}
