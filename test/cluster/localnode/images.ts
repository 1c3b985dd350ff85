// How the local node turns a container's image into a program on this machine. There is no
// container runtime here: an image is only a name, mapped by this table.
//
//   image                       command given?   runs
//   lepton-ai/runtime[:tag]     no               node <checkout>/src/runtime/main.ts ARGS
//   (any image)                 yes              COMMAND ARGS, from this machine's PATH
//   node[:tag]                  no               node ARGS
//   python[:tag]                no               python3 ARGS
//   anything else               no               not started: waiting, reason ImageNotMapped
import { existsSync } from 'node:fs';
import { join } from 'node:path';

export interface Entrypoint {
  command: string;
  args: string[];
}

export type Resolution =
  { ok: true; entrypoint: Entrypoint } | { ok: false; reason: string; message: string };

function repository(image: string): string {
  const withoutDigest = image.split('@')[0] ?? image;
  const lastSlash = withoutDigest.lastIndexOf('/');
  const colon = withoutDigest.lastIndexOf(':');
  return colon > lastSlash ? withoutDigest.slice(0, colon) : withoutDigest;
}

export function resolveImage(
  image: string,
  command: string[] | undefined,
  args: string[] | undefined,
  repoRoot: string,
): Resolution {
  const argv = args ?? [];
  if (command && command.length > 0) {
    const [cmd, ...rest] = command;
    return { ok: true, entrypoint: { command: cmd ?? '', args: [...rest, ...argv] } };
  }
  const repo = repository(image);
  if (repo === 'lepton-ai/runtime' || repo.endsWith('/lepton-ai/runtime')) {
    const main = join(repoRoot, 'src', 'runtime', 'main.ts');
    if (!existsSync(main)) {
      return {
        ok: false,
        reason: 'RuntimeNotBuilt',
        message: `${image} maps to ${main}, which does not exist yet`,
      };
    }
    return { ok: true, entrypoint: { command: process.execPath, args: [main, ...argv] } };
  }
  if (repo === 'node' || repo.endsWith('/node'))
    return { ok: true, entrypoint: { command: process.execPath, args: argv } };
  if (repo === 'python' || repo.endsWith('/python'))
    return { ok: true, entrypoint: { command: 'python3', args: argv } };
  return {
    ok: false,
    reason: 'ImageNotMapped',
    message: `the local node cannot run image ${image} without a command; see test/cluster/localnode/images.ts`,
  };
}
