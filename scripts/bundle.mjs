// The CLI bundled with esbuild, minified, with failpoints left out and the licence of every bundled
// package kept. Two shapes, one configuration:
//   node scripts/bundle.mjs        dist/atomic-deploy.mjs: the whole tool in one file, no node_modules needed
//   node scripts/bundle.mjs --bin  dist/bin/: the installed command (package.json `bin`), split by
//                                  command so that `status` loads a few chunks instead of ~50 modules,
//                                  entered through a CommonJS launcher (atomic-deploy.cjs)
import { build } from 'esbuild';
import { readFileSync, chmodSync, appendFileSync, existsSync, readdirSync, renameSync, rmSync } from 'node:fs';
import path from 'node:path';

const repo = new URL('..', import.meta.url).pathname;
const { version } = JSON.parse(readFileSync(path.join(repo, 'package.json'), 'utf8'));

/** The published build has no failpoints: every import of failpoints.ts gets the inert module. */
const noFailpoints = {
  name: 'no-failpoints',
  setup(b) {
    b.onResolve({ filter: /\/failpoints\.ts$/ }, (args) => ({ path: path.join(path.dirname(path.join(args.resolveDir, args.path)), 'failpoints-off.ts') }));
  },
};

/**
 * Node built-ins that cost milliseconds to load (child_process ~5 ms, crypto ~5 ms on Node 20) but
 * that `status` and `releases` never call, and those only archives, downloads and health checks
 * use (zlib, http, https with tls: ~10 ms together): loaded on first use instead of at start-up.
 * Each export is a getter, so the module loads when a function is taken from it, not when a chunk
 * is linked.
 */
const lazyBuiltins = {
  name: 'lazy-builtins',
  setup(b) {
    // A dynamic import() is lazy already, and esbuild would give it only a default export of the stand-in.
    b.onResolve({ filter: /^node:(child_process|crypto|http|https|zlib)$/ }, (args) => (args.namespace === 'lazy-builtin' || args.kind === 'dynamic-import' ? { path: args.path, external: true } : { path: args.path, namespace: 'lazy-builtin' }));
    b.onLoad({ filter: /.*/, namespace: 'lazy-builtin' }, async (args) => {
      // The names are the ones this Node has; a name missing at run time reads as undefined, as it would unbundled.
      const names = Object.keys(await import(args.path)).filter((n) => n !== 'default');
      const getters = names.map((n) => `  get ${n}() { return load().${n}; },`).join('\n');
      return { loader: 'js', contents: `let m;\nconst load = () => (m ??= require(${JSON.stringify(args.path)}));\nmodule.exports = {\n${getters}\n};\n` };
    });
  },
};

/**
 * Packages a dependency imports only for a feature this tool never turns on (the proxy agents'
 * Negotiate logins load kerberos): left out, as they are absent unbundled, and never loaded.
 */
const NOT_BUNDLED = ['kerberos'];

/**
 * The proxy agents log through `debug` when DEBUG names them, request headers included, and with
 * them Proxy-Authorization (a proxy's password): the bundle gives them a logger that says nothing.
 */
const silentDebug = {
  name: 'silent-debug',
  setup(b) {
    b.onResolve({ filter: /^debug$/ }, () => ({ path: 'debug', namespace: 'silent-debug' }));
    b.onLoad({ filter: /.*/, namespace: 'silent-debug' }, () => ({ loader: 'js', contents: 'const off = () => {};\noff.enabled = false;\nexport default function createDebug() {\n  return off;\n}\n' }));
  },
};

/**
 * With splitting, esbuild gives a dynamically imported CommonJS package (yaml) a chunk that exports
 * only `default`, so `(await import('yaml')).parseDocument` would be undefined. The import goes
 * through an ES module that names every export Node sees on the package instead.
 */
const namedDynamicImports = {
  name: 'named-dynamic-imports',
  setup(b) {
    b.onResolve({ filter: /^[^./]/ }, (args) => (args.kind === 'dynamic-import' && !args.path.startsWith('node:') && !NOT_BUNDLED.includes(args.path) ? { path: args.path, namespace: 'named-exports' } : undefined));
    b.onLoad({ filter: /.*/, namespace: 'named-exports' }, async (args) => {
      const names = Object.keys(await import(args.path)).filter((n) => n !== 'default' && /^[A-Za-z_$][\w$]*$/.test(n));
      return { loader: 'js', resolveDir: repo, contents: `import * as m from ${JSON.stringify(args.path)};\nexport const { ${names.join(', ')} } = m;\nexport default m.default ?? m;\n` };
    });
  },
};

/**
 * esbuild makes a chunk for every set of entry points (here: every dynamic import()) that reaches a
 * module, which left `status` reading ~20 files. Every module the CLI loads lazily is only ever loaded
 * after main.ts, so each one gets an import of main.ts prepended: then every module main.ts reaches
 * is reached by all entries alike and lands in one chunk, and a lazy chunk's own import of it costs
 * nothing. version.ts stays out, for `--version` answers without loading the CLI.
 */
function oneCoreChunk() {
  const main = path.join(repo, 'src/cli/main.ts');
  // Found before the build from the sources, so the output does not depend on the order esbuild loads files.
  const lazy = new Set();
  const walk = (dir) => {
    for (const entry of readdirSync(dir, { withFileTypes: true })) {
      const file = path.join(dir, entry.name);
      if (entry.isDirectory()) walk(file);
      else if (file.endsWith('.ts')) for (const m of readFileSync(file, 'utf8').matchAll(/\bimport\(\s*'(\.[^']+\.ts)'\s*\)/g)) lazy.add(path.join(dir, m[1]));
    }
  };
  walk(path.join(repo, 'src'));
  lazy.delete(main);
  lazy.delete(path.join(repo, 'src/cli/version.ts'));
  // The launcher's import of bin.ts is the split bundle's entry, not a lazy module.
  lazy.delete(path.join(repo, 'src/cli/bin.ts'));
  return {
    name: 'one-core-chunk',
    setup(b) {
      b.onLoad({ filter: /\.ts$/ }, (args) => (lazy.has(args.path) ? { loader: 'ts', contents: `import ${JSON.stringify(main)};\n${readFileSync(args.path, 'utf8')}` } : undefined));
    },
  };
}

async function bundle({ split }) {
  const dist = path.join(repo, 'dist');
  // Built beside the old output and renamed into place, so a reader never sees half a bundle.
  const outdir = split ? path.join(dist, `.bin-${process.pid}`) : undefined;
  // A failed build leaves no half-written directory for `npm pack` to ship.
  const result = await build({
    entryPoints: split ? { 'atomic-deploy': path.join(repo, 'src/cli/bin.ts') } : [path.join(repo, 'src/cli/bin.ts')],
    bundle: true,
    splitting: split,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    ...(split ? { outdir, chunkNames: 'chunk-[hash]' } : { outfile: path.join(dist, 'atomic-deploy.mjs') }),
    minify: true,
    metafile: true,
    plugins: [noFailpoints, silentDebug, ...(split ? [lazyBuiltins, namedDynamicImports, oneCoreChunk()] : [])],
    external: NOT_BUNDLED,
    define: { ATOMIC_DEPLOY_VERSION: JSON.stringify(version) },
    // Some dependencies still call require() for Node built-ins; give the ESM bundle one.
    banner: { js: "import { createRequire as __adCreateRequire } from 'node:module'; const require = __adCreateRequire(import.meta.url);" },
    legalComments: 'eof',
    logLevel: 'warning',
  }).catch((error) => {
    if (outdir) rmSync(outdir, { recursive: true, force: true });
    throw error;
  });
  const entry = split ? path.join(outdir, 'atomic-deploy.js') : path.join(dist, 'atomic-deploy.mjs');
  appendFileSync(entry, licenceNotices(result.metafile));
  chmodSync(entry, 0o755);
  if (!split) return entry;
  await launcher(outdir);
  const final = path.join(dist, 'bin');
  rmSync(final, { recursive: true, force: true });
  renameSync(outdir, final);
  return path.join(final, 'atomic-deploy.cjs');
}

/**
 * dist/bin/atomic-deploy.cjs, the command's entry: src/cli/launch.ts as CommonJS, which Node loads
 * without its thread pool, starting the pool's timer before the CLI's ES modules are read on it
 * (see src/act/thread-pool.ts). Its import of bin.ts becomes an import() of the split entry.
 */
async function launcher(outdir) {
  const outfile = path.join(outdir, 'atomic-deploy.cjs');
  await build({
    entryPoints: [path.join(repo, 'src/cli/launch.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'cjs',
    outfile,
    minify: true,
    plugins: [
      {
        name: 'split-entry',
        setup(b) {
          b.onResolve({ filter: /^\.\/bin\.ts$/ }, () => ({ path: './atomic-deploy.js', external: true }));
        },
      },
    ],
    legalComments: 'eof',
    logLevel: 'warning',
  }).catch((error) => {
    rmSync(outdir, { recursive: true, force: true });
    throw error;
  });
  chmodSync(outfile, 0o755);
}

/** The licences of what was bundled, read from each package's own files (MIT asks for the notice). */
function licenceNotices(metafile) {
  const packages = new Map();
  for (const input of Object.keys(metafile.inputs)) {
    const m = /(?:^|\/)node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(input);
    if (m) packages.set(m[1], path.join(repo, 'node_modules', m[1]));
  }
  let notices = `\n/*! atomic-deploy ${version} | MIT License | ${readFileSync(path.join(repo, 'LICENSE'), 'utf8').split('\n')[2]}\n *\n * Bundled packages and their licences:\n`;
  for (const [name, dir] of [...packages].sort()) {
    const pkg = JSON.parse(readFileSync(path.join(dir, 'package.json'), 'utf8'));
    const file = readdirSync(dir).find((f) => /^licen[cs]e/i.test(f));
    const text = file && existsSync(path.join(dir, file)) ? readFileSync(path.join(dir, file), 'utf8').trim() : `${pkg.license} (no licence file shipped)`;
    notices += ` *\n * ${name}@${pkg.version} (${pkg.license})\n${text.replace(/\*\//g, '* /').split('\n').map((l) => ` * ${l}`.trimEnd()).join('\n')}\n`;
  }
  return `${notices} */\n`;
}

/**
 * dist/act/proxy.js, the library's proxy module, with the proxy agents and proxy-from-env inside it
 * and `debug` silenced as in the command: a program that imports the library and sets DEBUG=* for
 * its own logs would otherwise get the agents' lines, a request's Proxy-Authorization among them.
 * The project's own modules stay imports of their tsc output, so the library keeps one copy of each.
 */
async function libraryProxyModule() {
  const outfile = path.join(repo, 'dist/act/proxy.js');
  const result = await build({
    entryPoints: [path.join(repo, 'src/act/proxy.ts')],
    bundle: true,
    platform: 'node',
    target: 'node20',
    format: 'esm',
    outfile,
    allowOverwrite: true,
    metafile: true,
    plugins: [
      silentDebug,
      {
        name: 'own-modules-external',
        setup(b) {
          b.onResolve({ filter: /^\.\.?\/.*\.ts$/ }, (args) => ({ path: args.path.replace(/\.ts$/, '.js'), external: true }));
        },
      },
    ],
    external: NOT_BUNDLED,
    // Some dependencies still call require() for Node built-ins; give the ESM module one.
    banner: { js: "import { createRequire as __adCreateRequire } from 'node:module'; const require = __adCreateRequire(import.meta.url);" },
    legalComments: 'eof',
    logLevel: 'warning',
  });
  appendFileSync(outfile, licenceNotices(result.metafile));
  return outfile;
}

const split = process.argv.includes('--bin');
// The library build (`npm run build`, which runs --bin after tsc) gets its proxy module bundled.
if (split) await libraryProxyModule();
const written = await bundle({ split });
if (!process.argv.includes('--silent')) console.log(`wrote ${written}${split ? ' and its chunks' : ''}`);
