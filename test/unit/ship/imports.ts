// The packages a program of ours loads: its module graph, followed from an entry file through
// every relative import, after TypeScript's own emit (so type-only imports, erased by the build,
// do not count, and `import { type X }` kept as a side-effect import does). Static imports,
// re-exports and `import('literal')` are followed; an import of a computed name (the runtime's
// optional tfjs-node backends) cannot be and is not reported.
import { existsSync, readFileSync } from 'node:fs';
import { builtinModules } from 'node:module';
import { dirname, extname, relative, resolve } from 'node:path';
import ts from 'typescript';

export interface ModuleGraph {
  /** Files of the graph, relative to `root`. */
  files: string[];
  /** Bare package names loaded (`@scope/name` or `name`), without Node's built-ins. */
  packages: string[];
}

const BUILTINS = new Set(builtinModules);

/** `@scope/name/sub/path` → `@scope/name`; `name/sub` → `name`; a built-in → undefined. */
export function packageName(specifier: string): string | undefined {
  if (specifier.startsWith('node:') || BUILTINS.has(specifier)) return undefined;
  const parts = specifier.split('/');
  return specifier.startsWith('@') ? parts.slice(0, 2).join('/') : parts[0];
}

/** Module specifiers a file really loads once the build has erased its types. */
export function loadedSpecifiers(fileName: string, text: string): string[] {
  const js = ts.transpileModule(text, {
    fileName,
    compilerOptions: {
      module: ts.ModuleKind.ESNext,
      target: ts.ScriptTarget.ES2023,
      verbatimModuleSyntax: true,
      allowJs: true,
    },
  }).outputText;
  const source = ts.createSourceFile(`${fileName}.out.js`, js, ts.ScriptTarget.ES2023, true);
  const found: string[] = [];
  const visit = (node: ts.Node): void => {
    if (
      (ts.isImportDeclaration(node) || ts.isExportDeclaration(node)) &&
      node.moduleSpecifier &&
      ts.isStringLiteral(node.moduleSpecifier)
    )
      found.push(node.moduleSpecifier.text);
    else if (
      ts.isCallExpression(node) &&
      node.expression.kind === ts.SyntaxKind.ImportKeyword &&
      node.arguments[0] &&
      ts.isStringLiteralLike(node.arguments[0])
    )
      found.push(node.arguments[0].text);
    ts.forEachChild(node, visit);
  };
  visit(source);
  return found;
}

/** The module graph of `entry` (a path under `root`). */
export function moduleGraph(root: string, entry: string): ModuleGraph {
  const files = new Set<string>();
  const packages = new Set<string>();
  const pending = [resolve(root, entry)];
  for (let file = pending.pop(); file !== undefined; file = pending.pop()) {
    if (files.has(file)) continue;
    files.add(file);
    let text: string;
    try {
      text = readFileSync(file, 'utf8');
    } catch (err) {
      throw new Error(`${relative(root, file)} is imported but cannot be read: ${String(err)}`);
    }
    for (const specifier of loadedSpecifiers(file, text)) {
      if (specifier.startsWith('.')) pending.push(resolveRelative(file, specifier));
      else {
        const name = packageName(specifier);
        if (name !== undefined) packages.add(name);
      }
    }
  }
  return {
    files: [...files].map((f) => relative(root, f)).sort(),
    packages: [...packages].sort(),
  };
}

/** `./x.ts` as written; `./x.js` is a generated JavaScript file, or a TypeScript file's output. */
function resolveRelative(from: string, specifier: string): string {
  const target = resolve(dirname(from), specifier);
  if (extname(target) === '') throw new Error(`${from}: import "${specifier}" has no extension`);
  const typescript = target.replace(/\.js$/, '.ts');
  return existsSync(target) || !existsSync(typescript) ? target : typescript;
}
