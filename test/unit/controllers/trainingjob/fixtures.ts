// Fixtures of the TrainingJob controller's unit tests.
import type { ITrainingJob } from '../../../../src/api/generated/lepton.ai/v1alpha1/TrainingJob.ts';

type Spec = ITrainingJob['spec'];

/** A pod template that sets every allowed field (used by the builder tests too). */
export function everyAllowedField(): NonNullable<Spec['podTemplate']> {
  const selector = {
    matchLabels: { app: 'x' },
    matchExpressions: [{ key: 'tier', operator: 'In' as const, values: ['a'] }],
  };
  const term = {
    labelSelector: selector,
    namespaceSelector: { matchLabels: { team: 'a' } },
    namespaces: ['ns'],
    topologyKey: 'kubernetes.io/hostname',
    matchLabelKeys: ['run'],
    mismatchLabelKeys: ['other'],
  };
  const nodeTerm = {
    matchExpressions: [{ key: 'type', operator: 'In' as const, values: ['kwok'] }],
    matchFields: [{ key: 'metadata.name' as const, operator: 'NotIn' as const, values: ['n0'] }],
  };
  const items = [{ key: 'k', path: 'dir/file', mode: 0o400 }];
  const downward = [
    { path: 'name', fieldRef: { apiVersion: 'v1' as const, fieldPath: 'metadata.name' } },
    {
      path: 'mem',
      resourceFieldRef: {
        containerName: 'trainer',
        resource: 'limits.memory' as const,
        divisor: '1Mi',
      },
    },
  ];
  return {
    metadata: { labels: { team: 'vision' }, annotations: { 'example.com/note': 'hello' } },
    spec: {
      nodeSelector: { type: 'kwok' },
      tolerations: [
        {
          key: 'dedicated',
          operator: 'Equal',
          value: 'ml',
          effect: 'NoExecute',
          tolerationSeconds: 60,
        },
      ],
      affinity: {
        nodeAffinity: {
          requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [nodeTerm] },
          preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 10, preference: nodeTerm }],
        },
        podAffinity: {
          preferredDuringSchedulingIgnoredDuringExecution: [{ weight: 5, podAffinityTerm: term }],
        },
        podAntiAffinity: { requiredDuringSchedulingIgnoredDuringExecution: [term] },
      },
      topologySpreadConstraints: [
        {
          maxSkew: 1,
          topologyKey: 'topology.kubernetes.io/zone',
          whenUnsatisfiable: 'DoNotSchedule',
          labelSelector: selector,
          minDomains: 1,
          nodeAffinityPolicy: 'Honor',
          nodeTaintsPolicy: 'Ignore',
          matchLabelKeys: ['run'],
        },
      ],
      env: [
        { name: 'PLAIN', value: '1' },
        {
          name: 'TOKEN',
          valueFrom: { secretKeyRef: { name: 'creds', key: 'token', optional: true } },
        },
        { name: 'MODE', valueFrom: { configMapKeyRef: { name: 'cfg', key: 'mode' } } },
        { name: 'POD', valueFrom: { fieldRef: { fieldPath: 'metadata.name' } } },
        {
          name: 'MEM',
          valueFrom: { resourceFieldRef: { resource: 'limits.memory', divisor: '1Mi' } },
        },
      ],
      volumes: [
        { name: 'data', persistentVolumeClaim: { claimName: 'datasets', readOnly: true } },
        { name: 'cfg', configMap: { name: 'cfg', items, defaultMode: 0o444, optional: true } },
        {
          name: 'sec',
          secret: { secretName: 'creds', items, defaultMode: 0o400, optional: false },
        },
        { name: 'scratch', emptyDir: { medium: 'Memory', sizeLimit: '1Gi' } },
        {
          name: 'nvme',
          ephemeral: {
            volumeClaimTemplate: {
              spec: {
                accessModes: ['ReadWriteOnce'],
                storageClassName: 'local-nvme',
                resources: { requests: { storage: '100Gi' } },
              },
            },
          },
        },
        { name: 'info', downwardAPI: { items: downward, defaultMode: 0o444 } },
        {
          name: 'all',
          projected: {
            sources: [
              { configMap: { name: 'cfg', items, optional: true } },
              { secret: { name: 'creds', items: [{ key: 'k', path: 'secret/file' }] } },
              { downwardAPI: { items: downward } },
            ],
            defaultMode: 0o440,
          },
        },
      ],
      volumeMounts: [
        { name: 'data', mountPath: '/data', readOnly: true },
        { name: 'scratch', mountPath: '/scratch', subPath: 'run' },
        { name: 'all', mountPath: '/etc/lepton-extra' },
      ],
      serviceAccountName: 'workload-identity',
      imagePullSecrets: [{ name: 'registry' }],
      securityContext: {
        runAsUser: 2000,
        runAsGroup: 3000,
        runAsNonRoot: true,
        fsGroup: 4000,
        fsGroupChangePolicy: 'OnRootMismatch',
        supplementalGroups: [5000],
        seccompProfile: { type: 'Localhost', localhostProfile: 'profiles/trainer.json' },
        appArmorProfile: { type: 'RuntimeDefault' },
      },
      runtimeClassName: 'nvidia',
    },
  };
}
