// A variant's state read from its Deployment and pods: ready replicas, whether it still rolls out,
// and the most telling failure of a replica in the pod's own words.
import {
  type DeploymentObject,
  type ReplicaFailure,
  type ServingPod,
  failureOf,
  isReady,
  variantState,
} from '../../../../src/controllers/inferenceservice/replicas.ts';
import { deploymentOf, servingPod } from './fixtures.ts';

const LOAD_FAILED = 'ModelLoadFailed: pvc://models/a/model.json: no such file';
const MISMATCH = `ModelDigestMismatch: expected sha256:${'a'.repeat(64)}, found sha256:${'b'.repeat(64)}`;

describe('ready replicas and rollouts', () => {
  const d = (b: ReturnType<typeof deploymentOf>): DeploymentObject => b.obj();
  const readyPods = (n: number) =>
    Array.from({ length: n }, (_, i) => servingPod(`s-predictor-${i}`).ready().obj());

  it.each<
    [string, DeploymentObject | undefined, ServingPod[], { ready: number; rollingOut: boolean }]
  >([
    [
      '§controller no Deployment: nothing ready, nothing rolling',
      undefined,
      [],
      { ready: 0, rollingOut: false },
    ],
    [
      '§controller every replica of the current template, ready',
      d(deploymentOf('s').replicas(3).rolledOut().ready(3)),
      readyPods(3),
      { ready: 3, rollingOut: false },
    ],
    [
      '§controller the Deployment controller has not seen the new spec (observedGeneration behind)',
      d(deploymentOf('s').replicas(2).rolledOut().ready(2).generation(3).observedGeneration(2)),
      readyPods(2),
      { ready: 2, rollingOut: true },
    ],
    [
      '§controller fewer updated replicas than asked for',
      d(deploymentOf('s').replicas(3).pods(3, 1).ready(3)),
      readyPods(3),
      { ready: 3, rollingOut: true },
    ],
    [
      '§controller old replicas left beside the updated ones (a surge)',
      d(deploymentOf('s').replicas(2).pods(3, 2).ready(3)),
      readyPods(3),
      { ready: 3, rollingOut: true },
    ],
    [
      '§controller a new Deployment without a status yet rolls out',
      { metadata: { name: 's-predictor', generation: 1 }, spec: { replicas: 1 } },
      [],
      { ready: 0, rollingOut: true },
    ],
    [
      '§controller replicas that are not ready yet',
      d(deploymentOf('s').replicas(2).rolledOut().ready(0)),
      [servingPod('s-predictor-0').running().obj(), servingPod('s-predictor-1').obj()],
      { ready: 0, rollingOut: false },
    ],
    [
      '§controller a Deployment status that still counts a terminating replica: not ready',
      d(deploymentOf('s').replicas(1).rolledOut().ready(1)),
      [servingPod('s-predictor-0').ready().deleting().obj()],
      { ready: 0, rollingOut: false },
    ],
    [
      '§controller a Deployment status that still counts a replica whose pod is gone: not ready',
      d(deploymentOf('s').replicas(2).rolledOut().ready(2)),
      readyPods(1),
      { ready: 1, rollingOut: false },
    ],
  ])('%s', (_name, deployment, pods, want) => {
    expect(variantState(deployment, pods)).toMatchObject(want);
  });

  it('§controller counts replicas and updated replicas from the Deployment status', () => {
    expect(
      variantState(d(deploymentOf('s').replicas(2).pods(3, 1).ready(2)), readyPods(2)),
    ).toEqual({
      replicas: 3,
      ready: 2,
      updated: 1,
      rollingOut: true,
    });
  });

  it.each<[string, ServingPod, boolean]>([
    ['§controller a running pod with Ready=True is ready', servingPod('p').ready().obj(), true],
    ['§controller a running pod without Ready=True is not', servingPod('p').running().obj(), false],
    ['§controller a pending pod is not', servingPod('p').obj(), false],
    [
      '§controller a pod being deleted is not, even with Ready=True',
      servingPod('p').ready().deleting().obj(),
      false,
    ],
  ])('%s', (_name, pod, ready) => {
    expect(isReady(pod)).toBe(ready);
  });
});

describe('failures of replicas', () => {
  it.each<[string, ServingPod, Partial<ReplicaFailure> | undefined]>([
    [
      '§status a termination message ModelLoadFailed in state.terminated is ModelLoadFailed',
      servingPod('p').terminated({ exitCode: 3, reason: 'Error', message: LOAD_FAILED }).obj(),
      { reason: 'ModelLoadFailed', message: LOAD_FAILED, pod: 'p', exitCode: 3 },
    ],
    [
      '§status a termination message ModelLoadFailed in lastState.terminated (crash loop) is ModelLoadFailed',
      servingPod('p')
        .waiting('CrashLoopBackOff', 'back-off 10s restarting failed container')
        .lastTerminated({ exitCode: 3, reason: 'Error', message: LOAD_FAILED })
        .obj(),
      { reason: 'ModelLoadFailed', message: LOAD_FAILED, exitCode: 3 },
    ],
    [
      '§status an invalid serving spec is a model that cannot load',
      servingPod('p')
        .terminated({ exitCode: 2, message: 'InvalidServingSpec: modelUri is empty' })
        .obj(),
      { reason: 'ModelLoadFailed' },
    ],
    [
      '§status a digest that does not match is ModelDigestMismatch',
      servingPod('p').lastTerminated({ exitCode: 3, message: MISMATCH }).obj(),
      { reason: 'ModelDigestMismatch', message: MISMATCH },
    ],
    [
      '§status a container killed for memory is OOMKilled',
      servingPod('p')
        .waiting('CrashLoopBackOff')
        .lastTerminated({ exitCode: 137, reason: 'OOMKilled' })
        .obj(),
      { reason: 'OOMKilled', exitCode: 137, message: 'container exited with code 137 (OOMKilled)' },
    ],
    [
      '§status a crash with another message is RuntimeUnhealthy, in its own words',
      servingPod('p').lastTerminated({ exitCode: 1, message: 'TypeError: x is undefined' }).obj(),
      { reason: 'RuntimeUnhealthy', message: 'TypeError: x is undefined' },
    ],
    [
      '§status a crash loop with no termination recorded is RuntimeUnhealthy',
      servingPod('p').waiting('CrashLoopBackOff', 'back-off 40s').obj(),
      { reason: 'RuntimeUnhealthy', message: 'CrashLoopBackOff: back-off 40s' },
    ],
    [
      '§status an image that cannot be pulled is ImagePullBackOff',
      servingPod('p').waiting('ImagePullBackOff', 'Back-off pulling image "x"').obj(),
      { reason: 'ImagePullBackOff', message: 'ImagePullBackOff: Back-off pulling image "x"' },
    ],
    [
      '§status ErrImagePull is ImagePullBackOff',
      servingPod('p').waiting('ErrImagePull').obj(),
      { reason: 'ImagePullBackOff' },
    ],
    [
      '§status a missing Secret or ConfigMap (CreateContainerConfigError) is not an image pull failure',
      servingPod('p').waiting('CreateContainerConfigError', 'secret "creds" not found').obj(),
      {
        reason: 'RuntimeUnhealthy',
        message: 'CreateContainerConfigError: secret "creds" not found',
      },
    ],
    [
      '§status a pod no node fits is Unschedulable, with the scheduler message',
      servingPod('p')
        .unschedulable('0/2 nodes are available: 2 Insufficient nvidia.com/gpu.')
        .obj(),
      {
        reason: 'Unschedulable',
        message: '0/2 nodes are available: 2 Insufficient nvidia.com/gpu.',
      },
    ],
    ['§status a ready pod has no failure', servingPod('p').ready().obj(), undefined],
    [
      '§status a pod still creating its container has no failure',
      servingPod('p').waiting('ContainerCreating').obj(),
      undefined,
    ],
    [
      '§status a replica that crashed once and is ready again has no failure now',
      servingPod('p').ready().lastTerminated({ exitCode: 137, reason: 'OOMKilled' }).obj(),
      undefined,
    ],
    [
      '§status a container that exited 0 is no failure',
      servingPod('p').terminated({ exitCode: 0, reason: 'Completed' }).obj(),
      undefined,
    ],
    [
      '§status a pod being deleted is ignored',
      servingPod('p').terminated({ exitCode: 3, message: LOAD_FAILED }).deleting().obj(),
      undefined,
    ],
  ])('%s', (_name, pod, want) => {
    const f = failureOf([pod]);
    if (want === undefined) expect(f).toBeUndefined();
    else expect(f).toMatchObject(want);
  });

  it('§status control characters in a termination message are replaced', () => {
    const f = failureOf([
      servingPod('p')
        .terminated({ exitCode: 3, message: 'ModelLoadFailed: bad\u0000\u001bname' })
        .obj(),
    ]);
    expect(f?.message).toBe('ModelLoadFailed: bad\ufffd\ufffdname');
  });

  it('§status a long termination message is cut at 2048 characters', () => {
    const f = failureOf([
      servingPod('p')
        .terminated({ exitCode: 3, message: `ModelLoadFailed: ${'x'.repeat(5000)}` })
        .obj(),
    ]);
    expect(f?.message).toHaveLength(2048);
  });

  it.each<[string, ServingPod[], string, string]>([
    [
      '§status a model that failed to load is preferred over an earlier crash loop',
      [
        servingPod('a').waiting('CrashLoopBackOff').obj(),
        servingPod('b').unschedulable('no room').obj(),
        servingPod('c').lastTerminated({ exitCode: 3, message: LOAD_FAILED }).obj(),
      ],
      'ModelLoadFailed',
      'c',
    ],
    [
      '§status a digest mismatch is preferred over an earlier OOM',
      [
        servingPod('a').lastTerminated({ exitCode: 137, reason: 'OOMKilled' }).obj(),
        servingPod('b').lastTerminated({ exitCode: 3, message: MISMATCH }).obj(),
      ],
      'ModelDigestMismatch',
      'b',
    ],
    [
      '§status otherwise the first failing pod is reported',
      [
        servingPod('a').ready().obj(),
        servingPod('b').unschedulable('no room').obj(),
        servingPod('c').waiting('ImagePullBackOff').obj(),
      ],
      'Unschedulable',
      'b',
    ],
    [
      '§status a deleting pod that failed to load does not hide a live failure',
      [
        servingPod('a').terminated({ exitCode: 3, message: LOAD_FAILED }).deleting().obj(),
        servingPod('b').waiting('ImagePullBackOff').obj(),
      ],
      'ImagePullBackOff',
      'b',
    ],
  ])('%s', (_name, pods, reason, pod) => {
    expect(failureOf(pods)).toMatchObject({ reason, pod });
  });

  it('§status variantState carries the failure of its pods', () => {
    const pods = [servingPod('p').lastTerminated({ exitCode: 3, message: LOAD_FAILED }).obj()];
    expect(
      variantState(deploymentOf('s').replicas(1).rolledOut().obj(), pods).failure,
    ).toMatchObject({
      reason: 'ModelLoadFailed',
      pod: 'p',
    });
  });
});
