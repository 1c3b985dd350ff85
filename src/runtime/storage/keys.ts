// What every store lists the same way: which names count as objects, their order, and the URI of
// a key below a prefix.

/** Hidden names (.name) and what a write leaves before its rename (name.tmp-PID...) are skipped. */
export function isListed(name: string): boolean {
  return !name.startsWith('.') && !/\.tmp-\d+(-[0-9a-f]+)?$/.test(name);
}

/** Whether no segment of `key` is hidden or temporary. */
export function isListedKey(key: string): boolean {
  return key.split('/').every((segment) => segment === '' || isListed(segment));
}

/** By the bytes of the UTF-8 keys, the order S3's ListObjectsV2 returns. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * The URI of `key` below `base` (a URI without a final slash). In file:// and pvc:// URIs the
 * characters a URL parser would read as an escape, a query or a fragment are escaped.
 */
export function joinKey(base: string, key: string, opts: { escape: boolean }): string {
  return `${base}/${opts.escape ? key.replace(/[%#?]/g, encodeURIComponent) : key}`;
}
