import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PACKAGE_ROOT } from './package-root.js';

/** The agent's version, from berth's package.json. */
export const AGENT_VERSION: string = PACKAGE_ROOT ? (JSON.parse(readFileSync(join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { version: string }).version : 'unknown';
