// Certificates for the local cluster, made with the openssl command line: a CA, the API server's
// serving certificate, one admin client certificate (group system:masters) that every component
// and the tests use, and the service-account signing key pair.
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface Pki {
  dir: string;
  caCert: string;
  caKey: string;
  serverCert: string;
  serverKey: string;
  adminCert: string;
  adminKey: string;
  saKey: string;
  saPub: string;
}

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Creates the certificates in `dir` unless they are already there (a restart keeps them). */
export function ensurePki(dir: string): Pki {
  mkdirSync(dir, { recursive: true });
  const pki: Pki = {
    dir,
    caCert: join(dir, 'ca.crt'),
    caKey: join(dir, 'ca.key'),
    serverCert: join(dir, 'apiserver.crt'),
    serverKey: join(dir, 'apiserver.key'),
    adminCert: join(dir, 'admin.crt'),
    adminKey: join(dir, 'admin.key'),
    saKey: join(dir, 'sa.key'),
    saPub: join(dir, 'sa.pub'),
  };
  if (existsSync(pki.saPub)) return pki;

  const days = '3650';
  openssl(
    dir,
    ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', days].concat([
      '-subj',
      '/CN=lepton-local-ca',
      '-keyout',
      'ca.key',
      '-out',
      'ca.crt',
    ]),
  );

  const sans = [
    'DNS:localhost',
    'DNS:kubernetes',
    'DNS:kubernetes.default',
    'DNS:kubernetes.default.svc',
    'DNS:kubernetes.default.svc.cluster.local',
    'IP:127.0.0.1',
    'IP:10.0.0.1',
  ].join(',');
  writeFileSync(join(dir, 'server.ext'), `subjectAltName=${sans}\nextendedKeyUsage=serverAuth\n`);
  writeFileSync(join(dir, 'client.ext'), 'extendedKeyUsage=clientAuth\n');
  const sign = (name: string, subject: string, ext: string): void => {
    openssl(
      dir,
      ['req', '-newkey', 'rsa:2048', '-nodes', '-subj', subject].concat([
        '-keyout',
        `${name}.key`,
        '-out',
        `${name}.csr`,
      ]),
    );
    openssl(
      dir,
      ['x509', '-req', '-in', `${name}.csr`, '-CA', 'ca.crt', '-CAkey', 'ca.key'].concat([
        '-CAcreateserial',
        '-days',
        days,
        '-extfile',
        ext,
        '-out',
        `${name}.crt`,
      ]),
    );
  };
  sign('apiserver', '/CN=kube-apiserver', 'server.ext');
  sign('admin', '/O=system:masters/CN=lepton-admin', 'client.ext');
  openssl(dir, ['genrsa', '-out', 'sa.key', '2048']);
  openssl(dir, ['rsa', '-in', 'sa.key', '-pubout', '-out', 'sa.pub']);
  return pki;
}
