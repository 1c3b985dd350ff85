// Issue 11 §s3-operator: what a pod gets of spec.storage.s3 (settings in the environment, the
// credentials Secret mounted read-only, never its keys in the environment), and the checks the
// CRD cannot make (the endpoint, the Secret and its keys).
import { workerPod, type TrainingJob } from '../../../src/controllers/trainingjob/builders.ts';
import { checkTrainingJob } from '../../../src/controllers/trainingjob/checks.ts';
import { checkInferenceService } from '../../../src/controllers/inferenceservice/reconciler.ts';
import type { InferenceService } from '../../../src/controllers/inferenceservice/builders.ts';
import { S3_CREDENTIALS_MOUNT, S3_ENV } from '../../../src/contract/storage.ts';
import {
  S3SecretCheck,
  checkStorage,
  secretProblems,
  storageEnv,
} from '../../../src/engine/storage.ts';
import type { KubeClient } from '../../../src/core/client.ts';
import type { KubeObject } from '../../../src/core/resources.ts';

interface Pod {
  spec: {
    volumes: {
      name: string;
      secret?: { secretName: string; defaultMode?: number };
      persistentVolumeClaim?: { claimName: string };
    }[];
    containers: {
      env: { name: string; value?: string; valueFrom?: unknown }[];
      volumeMounts: { name: string; mountPath: string; readOnly?: boolean }[];
    }[];
  };
}

const opts = { runtimeImage: 'runtime:cpu', runtimeGpuImage: 'runtime:gpu' };
const storage = {
  s3: { endpoint: 'http://lake.storage:7070', secretRef: { name: 'lake-creds' } },
};

function job(spec: Record<string, unknown> = {}): TrainingJob {
  return {
    apiVersion: 'lepton.ai/v1alpha1',
    kind: 'TrainingJob',
    metadata: { name: 'j', namespace: 'ns', uid: 'u' },
    spec: {
      model: { preset: 'mlp' },
      dataset: { uri: 's3://lake/fashion/', format: 'parquet' },
      output: { uri: 's3://models/j' },
      storage,
      ...spec,
    },
  } as TrainingJob;
}

describe('§s3-operator the pods of a job with spec.storage.s3', () => {
  it('get the settings as plain environment and the Secret as a read-only volume', () => {
    const pod = workerPod(job(), 0, 0, opts) as unknown as Pod;
    const [c] = pod.spec.containers;
    const env = Object.fromEntries(c!.env.map((e) => [e.name, e.value]));
    expect(env[S3_ENV.endpoint]).toBe('http://lake.storage:7070');
    expect(env[S3_ENV.region]).toBe('us-east-1');
    expect(env[S3_ENV.forcePathStyle]).toBe('true');
    expect(env[S3_ENV.credentialsDir]).toBe(S3_CREDENTIALS_MOUNT);
    // The keys never reach the environment, not even as references.
    expect(c!.env.some((e) => /AWS_|SECRET/.test(e.name) || e.valueFrom !== undefined)).toBe(false);
    const volume = pod.spec.volumes.find((v) => v.secret?.secretName === 'lake-creds');
    expect(volume?.secret?.defaultMode).toBe(0o400);
    expect(c!.volumeMounts).toContainEqual({
      name: volume!.name,
      mountPath: S3_CREDENTIALS_MOUNT,
      readOnly: true,
    });
  });

  it('get nothing of it without spec.storage, and anonymous access without a secretRef', () => {
    const plain = workerPod(job({ storage: undefined }), 0, 0, opts) as unknown as Pod;
    expect(plain.spec.containers[0]!.env.some((e) => e.name.startsWith('LEPTON_S3_'))).toBe(false);
    expect(plain.spec.volumes.some((v) => v.secret)).toBe(false);
    const names = storageEnv({ s3: { region: 'eu-west-1' } }).map((e) => `${e.name}=${e.value}`);
    expect(names).toEqual([`${S3_ENV.region}=eu-west-1`, `${S3_ENV.forcePathStyle}=false`]);
  });

  it('mount the claim of a pvc:// evaluation dataset too', () => {
    const pod = workerPod(
      job({ storage: undefined, evaluationDataset: { uri: 'pvc://tests/fashion.csv' } }),
      0,
      0,
      opts,
    ) as unknown as Pod & {
      spec: { volumes: { persistentVolumeClaim?: { claimName: string } }[] };
    };
    expect(pod.spec.volumes.map((v) => v.persistentVolumeClaim?.claimName)).toContain('tests');
  });
});

describe('§s3-operator checks the CRD cannot make', () => {
  it.each([
    ['http://user:pw@lake:7070', 'InvalidS3Endpoint'],
    ['http://lake:7070/bucket', 'InvalidS3Endpoint'],
    ['ftp://lake', 'InvalidS3Endpoint'],
    ['not a url', 'InvalidS3Endpoint'],
  ])('refuses the endpoint %s', (endpoint, reason) => {
    const problems = checkStorage({ s3: { endpoint } });
    expect(problems.map((p) => p.reason)).toEqual([reason]);
    expect(problems[0]!.message).not.toContain('pw');
  });

  it('accepts s3:// URIs for every URI of a TrainingJob and an InferenceService', () => {
    expect(checkTrainingJob(job({ model: { uri: 's3://models/base' } }))).toEqual([]);
    const isvc = {
      metadata: { name: 's', namespace: 'ns' },
      spec: { model: { uri: 's3://models/j' }, storage },
    } as unknown as InferenceService;
    expect(checkInferenceService(isvc)).toEqual([]);
  });

  it('refuses an s3:// URI without a valid bucket', () => {
    const problems = checkTrainingJob(job({ output: { uri: 's3://A_b/x' } }));
    expect(problems.map((p) => [p.field, p.reason])).toEqual([['spec.output.uri', 'InvalidURI']]);
  });

  it('reports a missing Secret, and one without a key, naming only the keys', () => {
    expect(secretProblems('lake-creds', undefined)[0]).toMatchObject({
      field: 'spec.storage.s3.secretRef.name',
      reason: 'S3SecretNotFound',
    });
    const partial = secretProblems('lake-creds', {
      metadata: { name: 'lake-creds' },
      data: { AWS_ACCESS_KEY_ID: Buffer.from('AKIDSECRETVALUE').toString('base64') },
    } as KubeObject & { data: Record<string, string> });
    expect(partial[0]!.reason).toBe('S3SecretInvalid');
    expect(partial[0]!.message).toContain('AWS_SECRET_ACCESS_KEY');
    expect(partial[0]!.message).not.toContain('AKIDSECRETVALUE');
    const whole = secretProblems('lake-creds', {
      metadata: { name: 'lake-creds' },
      data: { AWS_ACCESS_KEY_ID: 'YQ==', AWS_SECRET_ACCESS_KEY: 'Yg==' },
    } as KubeObject & { data: Record<string, string> });
    expect(whole).toEqual([]);
  });

  it('asks the API server for a Secret at most once per few seconds', async () => {
    let gets = 0;
    let now = 0;
    const client = {
      find: async () => {
        gets++;
        return undefined;
      },
    } as unknown as KubeClient;
    const check = new S3SecretCheck(client, { now: () => now, setTimer: () => ({ cancel() {} }) });
    expect((await check.problems('ns', storage))[0]!.reason).toBe('S3SecretNotFound');
    await check.problems('ns', storage);
    expect(gets).toBe(1);
    now += 10_001;
    await check.problems('ns', storage);
    expect(gets).toBe(2);
    expect(await check.problems('ns', { s3: {} })).toEqual([]);
    expect(gets).toBe(2);
  });
});
