import { expect } from 'chai';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The layering docs/architecture.md describes, checked on the source as it is: who may import whom, no
 * import circle, and files and classes a reader takes in at once. A change that breaks a rule fails here
 * with the import or the size that broke it.
 */

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

/** Every source file under src/, relative to it (posix separators). */
function sources(dir = SRC): string[] {
  return readdirSync(dir).flatMap((name) => {
    const full = path.join(dir, name);
    if (statSync(full).isDirectory()) return sources(full);
    return /\.m?ts$/.test(name) ? [path.relative(SRC, full).split(path.sep).join('/')] : [];
  });
}

interface Import {
  /** A file under src/ (relative), or a package name. */
  readonly target: string;
  readonly typeOnly: boolean;
}

const IMPORT = /^\s*(?:import|export)\s+(type\s+)?(?:[^'"]*?\s+from\s+)?['"]([^'"]+)['"]/gm;
const DYNAMIC = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

function importsOf(file: string): Import[] {
  const text = readFileSync(path.join(SRC, file), 'utf8');
  const found: Import[] = [];
  const resolve = (spec: string): string => {
    if (!spec.startsWith('.')) return spec.startsWith('node:') ? spec : spec.split('/')[0]!.startsWith('@') ? spec.split('/').slice(0, 2).join('/') : spec.split('/')[0]!;
    return path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)).replace(/\.js$/, '.ts').replace(/\.mjs$/, '.mts');
  };
  for (const match of text.matchAll(IMPORT)) found.push({ target: resolve(match[2]!), typeOnly: match[1] !== undefined });
  for (const match of text.matchAll(DYNAMIC)) found.push({ target: resolve(match[1]!), typeOnly: false });
  return found;
}

const FILES = sources();
const GRAPH = new Map(FILES.map((file) => [file, importsOf(file)]));

/** The layer a file belongs to: its folder under src/, or 'base' for the shared modules at the top of src/. */
function layerOf(file: string): string {
  return file.includes('/') ? file.slice(0, file.indexOf('/')) : 'base';
}

/** For each layer, the layers and packages it must not import (docs/architecture.md, "The layers"). */
const FORBIDDEN: Record<string, readonly string[]> = {
  local: ['pg', 'sql', 'execution', 'store', 'ext'],
  batching: ['pg', 'sql', 'local', 'store', 'ext'],
  execution: ['batching', 'local', 'store', 'ext', 'cache_manager'],
  sql: ['batching', 'local', 'store', 'ext', 'execution', 'options', 'cache_manager'],
  options: ['batching', 'local', 'store', 'ext', 'execution', 'sql'],
};
/** The shared modules at the bottom import no layer (options' types aside: the observer reads the logger's). */
const BASE_ALLOWED = new Set(['base']);

describe('architecture (docs/architecture.md)', () => {
  it('reads the source: every layer of the map has files', () => {
    for (const layer of ['store', 'ext', 'local', 'batching', 'execution', 'sql', 'options']) {
      expect(FILES.some((file) => layerOf(file) === layer), layer).to.equal(true);
    }
  });

  it('no layer imports what the map says it knows nothing of', () => {
    const broken: string[] = [];
    for (const [file, imports] of GRAPH) {
      const forbidden = FORBIDDEN[layerOf(file)] ?? [];
      for (const { target } of imports) {
        const layer = target.endsWith('.ts') || target.endsWith('.mts') ? layerOf(target) : target;
        if (forbidden.includes(layer)) broken.push(`${file} imports ${target}`);
      }
    }
    expect(broken).to.deep.equal([]);
  });

  it('the shared modules at the bottom import no layer', () => {
    const broken: string[] = [];
    for (const [file, imports] of GRAPH) {
      if (layerOf(file) !== 'base' || file === 'index.ts' || file === 'keyv.ts' || file === 'context.ts') continue;
      for (const { target } of imports) {
        if (!(target.endsWith('.ts') || target.endsWith('.mts'))) continue;
        if (!BASE_ALLOWED.has(layerOf(target))) broken.push(`${file} imports ${target}`);
      }
    }
    expect(broken).to.deep.equal([]);
  });

  it('no import circle (type-only imports included)', () => {
    // Tarjan's strongly connected components over src/'s own files.
    let index = 0;
    const indexOf = new Map<string, number>();
    const low = new Map<string, number>();
    const stack: string[] = [];
    const onStack = new Set<string>();
    const circles: string[][] = [];
    const visit = (file: string): void => {
      indexOf.set(file, index);
      low.set(file, index);
      index++;
      stack.push(file);
      onStack.add(file);
      for (const { target } of GRAPH.get(file) ?? []) {
        if (!GRAPH.has(target)) continue;
        if (!indexOf.has(target)) {
          visit(target);
          low.set(file, Math.min(low.get(file)!, low.get(target)!));
        } else if (onStack.has(target)) low.set(file, Math.min(low.get(file)!, indexOf.get(target)!));
      }
      if (low.get(file) === indexOf.get(file)) {
        const component: string[] = [];
        let member: string;
        do {
          member = stack.pop()!;
          onStack.delete(member);
          component.push(member);
        } while (member !== file);
        const selfImport = (GRAPH.get(file) ?? []).some((i) => i.target === file);
        if (component.length > 1 || selfImport) circles.push(component.sort());
      }
    };
    for (const file of FILES) if (!indexOf.has(file)) visit(file);
    expect(circles).to.deep.equal([]);
  });

  it('no source file over 400 lines', () => {
    const long = FILES.map((file) => [file, readFileSync(path.join(SRC, file), 'utf8').split('\n').length] as const).filter(([, lines]) => lines > 400);
    expect(long).to.deep.equal([]);
  });

  it('no class over 260 lines', () => {
    const long: string[] = [];
    for (const file of FILES) {
      const lines = readFileSync(path.join(SRC, file), 'utf8').split('\n');
      lines.forEach((line, i) => {
        const declared = /^(?:export\s+)?(?:default\s+)?(?:abstract\s+)?class\s+(\w+)/.exec(line);
        if (!declared) return;
        const end = lines.findIndex((l, j) => j > i && l === '}');
        if (end - i > 260) long.push(`${file}: class ${declared[1]} is ${end - i} lines`);
      });
    }
    expect(long).to.deep.equal([]);
  });
});
