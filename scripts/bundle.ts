/**
 * Bundles the compiled agent and berthctl (dist/src/main.js, dist/src/cli/berthctl.js, written by
 * tsc) with their pure-JavaScript dependencies into dist/berth.mjs and dist/berthctl.mjs, and
 * dist/chunk-*.mjs for what they share or import on demand: loading a few hundred modules one file
 * at a time was most of the agent's start-up. Run by `npm run build`, after tsc.
 *
 * Left out of the bundles and loaded from node_modules as usual: better-sqlite3 and ssh2 (native
 * add-ons; ssh2 only when DOCKER_HOST is ssh://). A module imported with `import` and left out is
 * loaded when the bundle starts, even if only a module loaded on demand uses it: so is nothing else.
 *
 * Some dependencies find files of their own package (.proto files) from `__dirname`: each module
 * that names `__dirname` or `__filename` gets them as they would be in node_modules, relative to
 * the bundle, so the package can still be moved as a whole.
 */
import { build, type Plugin } from 'esbuild';
import { readdir, readFile, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { PACKAGE_ROOT } from '../src/package-root.js';

const ROOT = PACKAGE_ROOT ?? process.cwd();
const OUT_DIR = join(ROOT, 'dist');

const BUNDLES = { berth: 'dist/src/main.js', berthctl: 'dist/src/cli/berthctl.js' } as const;

const EXTERNAL = ['better-sqlite3', 'ssh2'];

const BANNER = [
  "import { createRequire as __berthCreateRequire } from 'node:module';",
  "import { dirname as __berthDirname, join as __berthJoin } from 'node:path';",
  "import { fileURLToPath as __berthFileURLToPath } from 'node:url';",
  'const require = __berthCreateRequire(import.meta.url);',
  'const __berthPath = (path) => __berthJoin(__berthDirname(__berthFileURLToPath(import.meta.url)), path);',
].join('\n');

/** Gives each dependency module that uses `__dirname`/`__filename` its own, as in node_modules. */
const modulePaths: Plugin = {
  name: 'module-paths',
  setup(bundle) {
    bundle.onLoad({ filter: /[\\/]node_modules[\\/].*\.c?js$/ }, async (args) => {
      const text = await readFile(args.path, 'utf8');
      if (!/\b__(dirname|filename)\b/.test(text)) return undefined;
      const path = JSON.stringify(relative(OUT_DIR, args.path));
      return { contents: `var __filename = __berthPath(${path}), __dirname = __berthDirname(__filename);\n${text}`, loader: 'js', resolveDir: dirname(args.path) };
    });
  },
};

async function main(): Promise<void> {
  // Chunks are named by their content: those of an earlier build would stay beside the new ones.
  for (const file of await readdir(OUT_DIR)) if (/^chunk-.*\.mjs(\.map)?$/.test(file)) await rm(join(OUT_DIR, file));
  await build({
    entryPoints: Object.fromEntries(Object.entries(BUNDLES).map(([name, entry]) => [name, join(ROOT, entry)])),
    outdir: OUT_DIR,
    outExtension: { '.js': '.mjs' },
    // What a bundle imports on demand (one runtime's adapter or the other's) is a file of its own,
    // read only when imported: an agent on containerd never holds Docker's client, nor the reverse.
    // Chunks sit beside the bundles, so that paths relative to the bundle hold in them too.
    splitting: true,
    chunkNames: 'chunk-[hash]',
    bundle: true,
    platform: 'node',
    format: 'esm',
    target: 'node20',
    external: EXTERNAL,
    banner: { js: BANNER },
    plugins: [modulePaths],
    sourcemap: 'linked',
    minifyWhitespace: true,
    minifySyntax: true,
    charset: 'ascii',
    logLevel: 'warning',
  });
}

await main();
