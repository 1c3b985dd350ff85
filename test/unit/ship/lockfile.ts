// The node_modules tree npm installs for a manifest from package-lock.json (lockfileVersion 3),
// computed from the lock alone: from the manifest's dependencies, each package is found as Node
// finds it (its own node_modules, then its parents' up to the root), and its dependencies,
// non-optional peers and, unless omitted, optional dependencies are followed. What
// `npm ci --omit=dev [--omit=optional]` puts on disk, so the tests can compare the two.

export interface LockEntry {
  version?: string;
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
  peerDependencies?: Record<string, string>;
  peerDependenciesMeta?: Record<string, { optional?: boolean }>;
}

export interface Lockfile {
  lockfileVersion: number;
  packages: Record<string, LockEntry>;
}

export interface Manifest {
  dependencies?: Record<string, string>;
  optionalDependencies?: Record<string, string>;
}

/** Path in node_modules (e.g. `node_modules/a/node_modules/b`) → version. */
export type Tree = Map<string, string>;

export const nameAt = (path: string): string => path.slice(path.lastIndexOf('node_modules/') + 13);

export function installedTree(
  lock: Lockfile,
  manifest: Manifest,
  opts: { optional: boolean },
): Tree {
  if (lock.lockfileVersion < 2)
    throw new Error(
      `package-lock.json has lockfileVersion ${lock.lockfileVersion}; npm 7+ writes 3`,
    );
  const tree: Tree = new Map();
  const pending: { from: string; name: string; optional: boolean }[] = [];
  const follow = (from: string, entry: Manifest & LockEntry) => {
    for (const name of Object.keys(entry.dependencies ?? {}))
      pending.push({ from, name, optional: false });
    for (const [name] of Object.entries(entry.peerDependencies ?? {}))
      if (!entry.peerDependenciesMeta?.[name]?.optional)
        pending.push({ from, name, optional: false });
    if (opts.optional)
      for (const name of Object.keys(entry.optionalDependencies ?? {}))
        pending.push({ from, name, optional: true });
  };
  follow('', manifest);
  for (let dep = pending.pop(); dep !== undefined; dep = pending.pop()) {
    const path = locate(lock, dep.from, dep.name);
    if (path === undefined) {
      // An optional package for another platform is left out of the lock's tree.
      if (dep.optional) continue;
      throw new Error(`package-lock.json has no ${dep.name} for ${dep.from || 'the root'}`);
    }
    if (tree.has(path)) continue;
    const entry = lock.packages[path] ?? {};
    tree.set(path, entry.version ?? '');
    follow(path, entry);
  }
  return tree;
}

/** Where Node resolves `name` from the package at `from`: its node_modules, then upwards. */
function locate(lock: Lockfile, from: string, name: string): string | undefined {
  for (let dir = from; ;) {
    const candidate = dir ? `${dir}/node_modules/${name}` : `node_modules/${name}`;
    if (lock.packages[candidate]) return candidate;
    if (!dir) return undefined;
    const up = dir.lastIndexOf('/node_modules/');
    dir = up < 0 ? '' : dir.slice(0, up);
  }
}
