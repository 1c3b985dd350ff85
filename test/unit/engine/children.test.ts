// What counts as drift of a child the operator applies: only what the builders set.
import { drifted } from '../../../src/engine/children.ts';

describe('drifted', () => {
  const desired = {
    clusterIP: 'None',
    publishNotReadyAddresses: true,
    selector: { app: 'a' },
    ports: [{ name: 'http', port: 8080 }],
  };
  it.each([
    [
      'defaults the API server added are not drift',
      {
        ...desired,
        clusterIPs: ['None'],
        ports: [{ name: 'http', port: 8080, protocol: 'TCP', targetPort: 8080 }],
      },
      false,
    ],
    ['a changed selector is', { ...desired, selector: { app: 'b' } }, true],
    ['a lost port is', { ...desired, ports: [] }, true],
    [
      'an extra port is (lists are replaced whole)',
      { ...desired, ports: [...desired.ports, { name: 'x', port: 1 }] },
      true,
    ],
    [
      'a field we set that is gone is',
      { clusterIP: 'None', selector: { app: 'a' }, ports: desired.ports },
      true,
    ],
  ])('%s', (_case, observed, want) => {
    expect(drifted(desired, observed)).toBe(want);
  });
});
