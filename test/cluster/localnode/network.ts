// Pod networking for the local node. Two modes:
//
// netns (default when this process may create network namespaces, i.e. as root): each pod gets a
//   network namespace of its own, joined to a per-node bridge by a veth pair, with an address in
//   10.245.<octet>.0/24 (the bridge is .1). Pods reach each other and the host reaches them over
//   the bridge. The API server accepts these addresses in EndpointSlices, so Services work with
//   the real endpoint-slice controller. Peers' DNS names resolve through /etc/hosts: `ip netns
//   exec` shows each pod /etc/netns/<netns>/hosts as its /etc/hosts, which the node keeps current.
//
// loopback (fallback without that privilege): each pod gets 127.<octet>.x.y on the host's
//   loopback. Two pods can listen on the same port, but the API server refuses loopback
//   addresses in EndpointSlices, so Services have no endpoints in this mode. Peers' names are in
//   the file $LEPTON_HOSTS_FILE.
import { execFile, execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';

const run = promisify(execFile);
const ip = (...args: string[]) => run('ip', args);

export interface PodAddress {
  ip: string;
  /** The network namespace the pod's processes run in (netns mode). */
  netns?: string;
}

export interface PodNetwork {
  readonly mode: 'netns' | 'loopback';
  init(): Promise<void>;
  attach(id: string): Promise<PodAddress>;
  detach(address: PodAddress): Promise<void>;
  /** The command line that runs `command` inside the pod's network. */
  wrap(address: PodAddress, command: string, args: string[]): { command: string; args: string[] };
  /** Makes `hosts` (hosts(5) lines) the pod's view of /etc/hosts where the mode allows it. */
  writeHosts(address: PodAddress, hosts: string): void;
  shutdown(): Promise<void>;
}

/** Whether this process can create network namespaces and veth links. */
export function canUseNetns(): boolean {
  if (process.getuid?.() !== 0) return false;
  try {
    execFileSync('ip', ['netns', 'list'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * A subnet octet no other local node on this machine uses: the first N >= 10 with no bridge
 * leptonN (netns mode), or a random one (loopback mode, where nothing records it).
 */
export function freeOctet(netns: boolean): number {
  if (!netns) return 10 + Math.floor(Math.random() * 240);
  const out = execFileSync('ip', ['-o', 'link', 'show', 'type', 'bridge'], { encoding: 'utf8' });
  const taken = new Set([...out.matchAll(/^\d+: lepton(\d+)[:@]/gm)].map((m) => Number(m[1])));
  for (let n = 10; n < 255; n++) if (!taken.has(n)) return n;
  throw new Error('No free subnet for another local node (bridges lepton10 to lepton254 exist)');
}

class Allocator {
  private readonly used = new Set<string>();
  private readonly make: (i: number) => string;
  private readonly size: number;

  constructor(size: number, make: (i: number) => string) {
    this.size = size;
    this.make = make;
  }

  take(): string {
    for (let i = 0; i < this.size; i++) {
      const addr = this.make(i);
      if (!this.used.has(addr)) {
        this.used.add(addr);
        return addr;
      }
    }
    throw new Error('The local node ran out of pod addresses');
  }

  give(addr: string): void {
    this.used.delete(addr);
  }
}

export class LoopbackNetwork implements PodNetwork {
  readonly mode = 'loopback';
  private readonly addresses: Allocator;

  constructor(octet: number) {
    this.addresses = new Allocator(
      62_500,
      (i) => `127.${octet}.${Math.floor(i / 250)}.${(i % 250) + 2}`,
    );
  }

  async init(): Promise<void> {}

  async attach(): Promise<PodAddress> {
    return { ip: this.addresses.take() };
  }

  async detach(address: PodAddress): Promise<void> {
    this.addresses.give(address.ip);
  }

  wrap(_address: PodAddress, command: string, args: string[]) {
    return { command, args };
  }

  writeHosts(): void {}

  async shutdown(): Promise<void> {}
}

/** What a netns network created, so that a supervisor can remove it after a crash. */
export interface NetworkRecord {
  bridge: string;
  namespaces: string[];
}

export class NetnsNetwork implements PodNetwork {
  readonly mode = 'netns';
  private readonly bridge: string;
  private readonly gateway: string;
  private readonly prefix: string;
  private readonly addresses: Allocator;
  private readonly namespaces = new Set<string>();
  private readonly recordFile: string;

  /** `octet` picks the subnet 10.245.<octet>.0/24 and names the bridge; `stateDir` keeps the record. */
  constructor(octet: number, stateDir: string) {
    this.bridge = `lepton${octet}`;
    this.gateway = `10.245.${octet}.1`;
    this.prefix = `lepton${octet}-`;
    this.addresses = new Allocator(250, (i) => `10.245.${octet}.${i + 2}`);
    this.recordFile = join(stateDir, 'network.json');
  }

  async init(): Promise<void> {
    await ip('link', 'add', this.bridge, 'type', 'bridge');
    await ip('addr', 'add', `${this.gateway}/24`, 'dev', this.bridge);
    await ip('link', 'set', this.bridge, 'up');
    this.record();
  }

  private record(): void {
    const rec: NetworkRecord = { bridge: this.bridge, namespaces: [...this.namespaces] };
    writeFileSync(this.recordFile, JSON.stringify(rec));
  }

  async attach(id: string): Promise<PodAddress> {
    const addr = this.addresses.take();
    const netns = `${this.prefix}${id}`;
    // Interface names have at most 15 characters.
    const host = `vh${id}`.slice(0, 15);
    const peer = `vp${id}`.slice(0, 15);
    this.namespaces.add(netns);
    this.record();
    await ip('netns', 'add', netns);
    await ip('link', 'add', host, 'type', 'veth', 'peer', 'name', peer);
    await ip('link', 'set', peer, 'netns', netns);
    await ip('link', 'set', host, 'master', this.bridge, 'up');
    await ip('-n', netns, 'link', 'set', 'lo', 'up');
    await ip('-n', netns, 'link', 'set', peer, 'name', 'eth0');
    await ip('-n', netns, 'addr', 'add', `${addr}/24`, 'dev', 'eth0');
    await ip('-n', netns, 'link', 'set', 'eth0', 'up');
    await ip('-n', netns, 'route', 'add', 'default', 'via', this.gateway);
    return { ip: addr, netns };
  }

  async detach(address: PodAddress): Promise<void> {
    if (address.netns) {
      // Deleting the namespace deletes the veth pair with it.
      await ip('netns', 'del', address.netns).catch(() => undefined);
      rmSync(join('/etc/netns', address.netns), { recursive: true, force: true });
      this.namespaces.delete(address.netns);
      this.record();
    }
    this.addresses.give(address.ip);
  }

  wrap(address: PodAddress, command: string, args: string[]) {
    return { command: 'ip', args: ['netns', 'exec', address.netns ?? '', command, ...args] };
  }

  writeHosts(address: PodAddress, hosts: string): void {
    if (!address.netns) return;
    const dir = join('/etc/netns', address.netns);
    mkdirSync(dir, { recursive: true });
    // Written in place: `ip netns exec` bind-mounts this very file, a renamed one would not show.
    writeFileSync(join(dir, 'hosts'), `127.0.0.1\tlocalhost\n::1\tlocalhost\n${hosts}`);
  }

  async shutdown(): Promise<void> {
    removeNetwork({ bridge: this.bridge, namespaces: [...this.namespaces] });
    this.namespaces.clear();
    this.record();
  }
}

/** Deletes a netns network's namespaces and bridge (after a crash too); never throws. */
export function removeNetwork(rec: NetworkRecord): void {
  for (const ns of rec.namespaces) {
    try {
      execFileSync('ip', ['netns', 'del', ns], { stdio: 'ignore' });
    } catch {
      // already gone
    }
    rmSync(join('/etc/netns', ns), { recursive: true, force: true });
  }
  try {
    execFileSync('ip', ['link', 'del', rec.bridge], { stdio: 'ignore' });
  } catch {
    // already gone
  }
}
