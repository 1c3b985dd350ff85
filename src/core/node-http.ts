// node:http and node:https, loaded with require. An `import` of node:http evaluates every export
// of the module, among them the lazy http.WebSocket, which loads the undici bundled in Node
// (about 8 MB of resident memory) for an operator that never opens a WebSocket.
import { createRequire } from 'node:module';

const load = createRequire(import.meta.url);

export const http = load('node:http') as typeof import('node:http');
export const https = load('node:https') as typeof import('node:https');
