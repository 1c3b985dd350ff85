// What spec.podTemplate may add to the pods the operator creates: an allow-list that cannot loosen
// the lock-down. The CRDs' podTemplate schema says the same and refuses the rest at apply time
// (test/unit/engine/pod-template.test.ts keeps the two in step); this file is what the
// operator enforces on what reached it anyway, e.g. an object stored before the schema was
// tightened. `checkPodTemplate` names every forbidden field, so the job is refused with a reason,
// and `allowedPodTemplate` copies only allowed keys and values, so a forbidden field never reaches
// a pod even if a check were missed. The lock-down itself is applied by the builders, last.
import type { ITrainingJob } from '../api/generated/lepton.ai/v1alpha1/TrainingJob.ts';
import type { SpecProblem } from './workload.ts';

export type PodTemplate = NonNullable<ITrainingJob['spec']['podTemplate']>;
type TemplateSpec = NonNullable<PodTemplate['spec']>;
export type TemplateSecurityContext = NonNullable<TemplateSpec['securityContext']>;
export type TemplateVolume = NonNullable<TemplateSpec['volumes']>[number];
export type TemplateVolumeMount = NonNullable<TemplateSpec['volumeMounts']>[number];
export type TemplateEnvVar = NonNullable<TemplateSpec['env']>[number];

/** An allow-list: true for a scalar, 'map' for a map of strings, an object of allowed keys, [shape] for a list. */
export type Shape = true | 'map' | readonly [Shape] | { readonly [key: string]: Shape };

const S = true;
const LABEL_SELECTOR = {
  matchLabels: 'map',
  matchExpressions: [{ key: S, operator: S, values: [S] }],
} as const;
const NODE_SELECTOR_TERM = {
  matchExpressions: [{ key: S, operator: S, values: [S] }],
  matchFields: [{ key: S, operator: S, values: [S] }],
} as const;
const POD_AFFINITY_TERM = {
  labelSelector: LABEL_SELECTOR,
  namespaceSelector: LABEL_SELECTOR,
  namespaces: [S],
  topologyKey: S,
  matchLabelKeys: [S],
  mismatchLabelKeys: [S],
} as const;
const POD_AFFINITY = {
  requiredDuringSchedulingIgnoredDuringExecution: [POD_AFFINITY_TERM],
  preferredDuringSchedulingIgnoredDuringExecution: [
    { weight: S, podAffinityTerm: POD_AFFINITY_TERM },
  ],
} as const;
const KEY_TO_PATH = [{ key: S, path: S, mode: S }] as const;
const FIELD_REF = { apiVersion: S, fieldPath: S } as const;
const RESOURCE_FIELD_REF = { containerName: S, resource: S, divisor: S } as const;
const DOWNWARD_ITEMS = [
  { path: S, fieldRef: FIELD_REF, resourceFieldRef: RESOURCE_FIELD_REF, mode: S },
] as const;
const KEY_REF = { name: S, key: S, optional: S } as const;

/**
 * Volume sources a pod template may use. Not allowed: hostPath and local (the node's
 * filesystem), inline csi (a driver may mount a node path), nfs, iscsi, rbd, cephfs and the other
 * network filesystems (they bypass PersistentVolume access control), gitRepo, image, flexVolume.
 */
export const VOLUME_SOURCES = {
  persistentVolumeClaim: { claimName: S, readOnly: S },
  configMap: { name: S, items: KEY_TO_PATH, defaultMode: S, optional: S },
  secret: { secretName: S, items: KEY_TO_PATH, defaultMode: S, optional: S },
  emptyDir: { medium: S, sizeLimit: S },
  ephemeral: {
    volumeClaimTemplate: {
      spec: { accessModes: [S], storageClassName: S, resources: { requests: { storage: S } } },
    },
  },
  downwardAPI: { items: DOWNWARD_ITEMS, defaultMode: S },
  projected: {
    // No serviceAccountToken (an API token), clusterTrustBundle or podCertificate.
    sources: [
      {
        configMap: { name: S, items: KEY_TO_PATH, optional: S },
        secret: { name: S, items: KEY_TO_PATH, optional: S },
        downwardAPI: { items: DOWNWARD_ITEMS },
      },
    ],
    defaultMode: S,
  },
} as const;
const PROJECTION_SOURCES = ['configMap', 'secret', 'downwardAPI'] as const;

/** Only fields that keep or tighten the lock-down; their values are checked too (see below). */
const SECURITY_CONTEXT = {
  runAsUser: S,
  runAsGroup: S,
  runAsNonRoot: S,
  fsGroup: S,
  fsGroupChangePolicy: S,
  supplementalGroups: [S],
  seccompProfile: { type: S, localhostProfile: S },
  appArmorProfile: { type: S, localhostProfile: S },
} as const;

export const POD_TEMPLATE_SHAPE = {
  metadata: { labels: 'map', annotations: 'map' },
  spec: {
    nodeSelector: 'map',
    tolerations: [{ key: S, operator: S, value: S, effect: S, tolerationSeconds: S }],
    affinity: {
      nodeAffinity: {
        requiredDuringSchedulingIgnoredDuringExecution: { nodeSelectorTerms: [NODE_SELECTOR_TERM] },
        preferredDuringSchedulingIgnoredDuringExecution: [
          { weight: S, preference: NODE_SELECTOR_TERM },
        ],
      },
      podAffinity: POD_AFFINITY,
      podAntiAffinity: POD_AFFINITY,
    },
    topologySpreadConstraints: [
      {
        maxSkew: S,
        topologyKey: S,
        whenUnsatisfiable: S,
        labelSelector: LABEL_SELECTOR,
        minDomains: S,
        nodeAffinityPolicy: S,
        nodeTaintsPolicy: S,
        matchLabelKeys: [S],
      },
    ],
    env: [
      {
        name: S,
        value: S,
        valueFrom: {
          secretKeyRef: KEY_REF,
          configMapKeyRef: KEY_REF,
          fieldRef: FIELD_REF,
          resourceFieldRef: RESOURCE_FIELD_REF,
        },
      },
    ],
    volumes: [{ name: S, ...VOLUME_SOURCES }],
    volumeMounts: [{ name: S, mountPath: S, subPath: S, readOnly: S }],
    serviceAccountName: S,
    imagePullSecrets: [{ name: S }],
    securityContext: SECURITY_CONTEXT,
    runtimeClassName: S,
  },
} as const satisfies Shape;

/** Label prefixes of the operator, and of Kueue (which the operator drives from spec.queueName). */
export const RESERVED_LABEL_PREFIXES = ['lepton.ai/', 'kueue.x-k8s.io/'] as const;
/** Also the deprecated annotations through which AppArmor and seccomp could be unconfined. */
export const RESERVED_ANNOTATION_PREFIXES = [
  ...RESERVED_LABEL_PREFIXES,
  'container.apparmor.security.beta.kubernetes.io/',
  'seccomp.security.alpha.kubernetes.io/',
  'container.seccomp.security.alpha.kubernetes.io/',
] as const;
/** The operator names its volumes claim-N (pvc:// URIs) and lepton-* (e.g. lepton-tmp). */
export const RESERVED_VOLUME_PREFIXES = ['claim-', 'lepton-'] as const;
export const RESERVED_ENV_PREFIX = 'LEPTON_';
/** The operator mounts an emptyDir here: the root filesystem of the pods is read-only. */
export const TMP_MOUNT_PATH = '/tmp';
/** With what is below /mnt/pvc (claims) and /var/run/lepton (the S3 and identity Secrets). */
const RESERVED_MOUNT_PATHS = ['/tmp', '/dev/termination-log', '/mnt/pvc', '/var/run/lepton'];
const ALLOWED_PROFILES = ['RuntimeDefault', 'Localhost'];
/** Most bytes the allowed template may take as JSON: it is copied into every pod. */
export const POD_TEMPLATE_MAX_BYTES = 128 * 1024;

const MAX_ID = 2147483647;

/** Why a field is not allowed, for the fields someone trying to loosen the lock-down would use. */
const WHY_FORBIDDEN: Record<string, string> = {
  hostPath: "a hostPath volume gives the pod the node's filesystem",
  local: "a local volume gives the pod the node's filesystem",
  csi: 'an inline CSI volume can mount a path of the node',
  serviceAccountToken: 'workload pods get no Kubernetes API token',
  sysctls: 'sysctls change kernel settings',
  seLinuxOptions: 'the node decides the SELinux label of the pods',
  windowsOptions: 'the pods run on Linux',
  hostNetwork: "it shares the node's network namespace",
  hostPID: "it shares the node's process namespace",
  hostIPC: "it shares the node's IPC namespace",
  privileged: 'the containers are never privileged',
  capabilities: 'every capability is dropped',
  containers: 'the operator owns the containers',
  initContainers: 'the operator owns the containers',
};

function isRecord(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

const hasPrefix = (value: string, prefixes: readonly string[]) =>
  prefixes.some((p) => value.startsWith(p));

/** The items of a list as records (scalars too with `scalars`), so checks can index the raw list. */
function recordsOf(value: unknown): Record<string, unknown>[];
function recordsOf(value: unknown, scalars: true): unknown[];
function recordsOf(value: unknown, scalars = false): unknown[] {
  if (!Array.isArray(value)) return [];
  return scalars ? value : value.map((v) => (isRecord(v) ? v : {}));
}

/** A copy of `value` with only what `shape` allows; undefined when nothing is left. */
export function project(value: unknown, shape: Shape): unknown {
  if (shape === true)
    return ['string', 'number', 'boolean'].includes(typeof value) ? value : undefined;
  if (shape === 'map') {
    if (!isRecord(value)) return undefined;
    return Object.fromEntries(Object.entries(value).filter(([, v]) => typeof v === 'string'));
  }
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) return undefined;
    const [item] = shape as readonly [Shape];
    return value.map((v) => project(v, item)).filter((v) => v !== undefined);
  }
  if (!isRecord(value)) return undefined;
  const out: Record<string, unknown> = {};
  for (const [key, sub] of Object.entries(shape as { readonly [key: string]: Shape })) {
    const v = project(value[key], sub);
    if (v !== undefined) out[key] = v;
  }
  return out;
}

/** Paths of the keys in `value` that `shape` does not allow. */
export function unknownFields(value: unknown, shape: Shape, path: string): string[] {
  if (shape === true || shape === 'map') return [];
  if (Array.isArray(shape)) {
    if (!Array.isArray(value)) return [];
    const [item] = shape as readonly [Shape];
    return value.flatMap((v, i) => unknownFields(v, item, `${path}[${i}]`));
  }
  if (!isRecord(value)) return [];
  const allowed = shape as { readonly [key: string]: Shape };
  return Object.entries(value).flatMap(([key, v]) => {
    const sub = allowed[key];
    return sub === undefined ? [`${path}.${key}`] : unknownFields(v, sub, `${path}.${key}`);
  });
}

const positiveId = (value: unknown): value is number =>
  typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= MAX_ID;

const sourcesOf = (volume: Record<string, unknown>): string[] =>
  Object.keys(VOLUME_SOURCES).filter((s) => volume[s] !== undefined);

const isReservedMountPath = (path: string): boolean => {
  const clean = path.replace(/\/+/g, '/').replace(/(.)\/$/, '$1');
  return (
    RESERVED_MOUNT_PATHS.includes(clean) ||
    clean.startsWith('/mnt/pvc/') ||
    clean.startsWith('/var/run/lepton/')
  );
};

const allowedProfile = (
  profile: unknown,
  unconfinedName?: string,
): { type: string; localhostProfile?: string } | undefined => {
  if (!isRecord(profile) || typeof profile.type !== 'string') return undefined;
  if (profile.type === 'RuntimeDefault') return { type: 'RuntimeDefault' };
  if (
    profile.type === 'Localhost' &&
    typeof profile.localhostProfile === 'string' &&
    profile.localhostProfile !== '' &&
    profile.localhostProfile !== unconfinedName
  )
    return { type: 'Localhost', localhostProfile: profile.localhostProfile };
  return undefined;
};

/** The template's security context, reduced to the values that keep or tighten the lock-down. */
function allowedSecurityContext(value: unknown): TemplateSecurityContext {
  const sc = isRecord(value) ? value : {};
  const out: TemplateSecurityContext = {};
  if (positiveId(sc.runAsUser)) out.runAsUser = sc.runAsUser;
  if (positiveId(sc.runAsGroup)) out.runAsGroup = sc.runAsGroup;
  if (positiveId(sc.fsGroup)) out.fsGroup = sc.fsGroup;
  if (sc.fsGroupChangePolicy === 'OnRootMismatch' || sc.fsGroupChangePolicy === 'Always')
    out.fsGroupChangePolicy = sc.fsGroupChangePolicy;
  if (Array.isArray(sc.supplementalGroups))
    out.supplementalGroups = sc.supplementalGroups.filter(positiveId);
  const seccomp = allowedProfile(sc.seccompProfile);
  if (seccomp) out.seccompProfile = seccomp as TemplateSecurityContext['seccompProfile'];
  const appArmor = allowedProfile(sc.appArmorProfile, 'unconfined');
  if (appArmor) out.appArmorProfile = appArmor as TemplateSecurityContext['appArmorProfile'];
  return out;
}

/**
 * What the builders may copy from a pod template into a pod: the allowed keys, without reserved
 * names, volumes without exactly one allowed source, or security values that would loosen the
 * lock-down. The builders apply the lock-down on top of it.
 */
export function allowedPodTemplate(raw: unknown): {
  metadata: { labels: Record<string, string>; annotations: Record<string, string> };
  spec: Omit<TemplateSpec, 'securityContext'> & {
    securityContext: TemplateSecurityContext;
    env: TemplateEnvVar[];
    volumes: TemplateVolume[];
    volumeMounts: TemplateVolumeMount[];
  };
} {
  const template = (project(raw, POD_TEMPLATE_SHAPE) ?? {}) as PodTemplate;
  const spec = template.spec ?? {};
  const without = (map: Record<string, string> | undefined, prefixes: readonly string[]) =>
    Object.fromEntries(Object.entries(map ?? {}).filter(([k]) => !hasPrefix(k, prefixes)));
  const volumes = (spec.volumes ?? [])
    .filter((v) => typeof v.name === 'string' && !hasPrefix(v.name, RESERVED_VOLUME_PREFIXES))
    .filter((v) => sourcesOf(v as Record<string, unknown>).length === 1)
    .map((v) =>
      v.projected
        ? {
            ...v,
            projected: {
              ...v.projected,
              sources: (v.projected.sources ?? []).filter(
                (s) => PROJECTION_SOURCES.filter((k) => s[k] !== undefined).length === 1,
              ),
            },
          }
        : v,
    )
    // A projected volume left without sources would become an empty directory; drop it.
    .filter((v) => !v.projected || v.projected.sources.length > 0);
  return {
    metadata: {
      labels: without(template.metadata?.labels, RESERVED_LABEL_PREFIXES),
      annotations: without(template.metadata?.annotations, RESERVED_ANNOTATION_PREFIXES),
    },
    spec: {
      ...spec,
      securityContext: allowedSecurityContext(
        isRecord(raw) && isRecord(raw.spec) ? raw.spec.securityContext : undefined,
      ),
      env: (spec.env ?? []).filter(
        (e) => typeof e.name === 'string' && !e.name.startsWith(RESERVED_ENV_PREFIX),
      ),
      volumes,
      volumeMounts: (spec.volumeMounts ?? []).filter(
        (m) => typeof m.mountPath === 'string' && !isReservedMountPath(m.mountPath),
      ),
    },
  };
}

const forbidden = (field: string, why: string): SpecProblem => ({
  field,
  reason: 'ForbiddenPodField',
  message: `${field}: not allowed in a pod template: ${why}`,
});

/**
 * Every field of a pod template that is not allowed or would loosen the lock-down, as
 * ForbiddenPodField; a volumeMount naming no volume as InvalidPodTemplate; a template too large
 * to copy into every pod as SpecTooLarge. `field` is the template's path, e.g. spec.podTemplate.
 */
export function checkPodTemplate(field: string, raw: unknown): SpecProblem[] {
  if (raw === undefined) return [];
  const problems = unknownFields(raw, POD_TEMPLATE_SHAPE, field).map((path) =>
    forbidden(
      path,
      WHY_FORBIDDEN[path.slice(path.lastIndexOf('.') + 1)] ??
        'a pod template takes only the fields of the allow-list in the CRD (spec.podTemplate)',
    ),
  );
  const rawMeta = isRecord(raw) && isRecord(raw.metadata) ? raw.metadata : {};
  const rawSpec = isRecord(raw) && isRecord(raw.spec) ? raw.spec : {};
  const meta = `${field}.metadata`;
  for (const key of Object.keys(isRecord(rawMeta.labels) ? rawMeta.labels : {}))
    if (hasPrefix(key, RESERVED_LABEL_PREFIXES))
      problems.push(
        forbidden(
          `${meta}.labels[${key}]`,
          `${RESERVED_LABEL_PREFIXES.join(' and ')} are reserved`,
        ),
      );
  for (const key of Object.keys(isRecord(rawMeta.annotations) ? rawMeta.annotations : {}))
    if (hasPrefix(key, RESERVED_ANNOTATION_PREFIXES))
      problems.push(
        forbidden(
          `${meta}.annotations[${key}]`,
          `the prefixes ${RESERVED_ANNOTATION_PREFIXES.join(', ')} are reserved`,
        ),
      );

  const path = `${field}.spec`;
  const sc = isRecord(rawSpec.securityContext) ? rawSpec.securityContext : {};
  for (const id of ['runAsUser', 'runAsGroup', 'fsGroup'])
    if (sc[id] !== undefined && !positiveId(sc[id]))
      problems.push(
        forbidden(`${path}.securityContext.${id}`, 'must be a user or group ID above 0 (not root)'),
      );
  recordsOf(sc.supplementalGroups, true).forEach((g, i) => {
    if (!positiveId(g))
      problems.push(
        forbidden(
          `${path}.securityContext.supplementalGroups[${i}]`,
          'must be a group ID above 0 (not root)',
        ),
      );
  });
  if (sc.runAsNonRoot !== undefined && sc.runAsNonRoot !== true)
    problems.push(
      forbidden(`${path}.securityContext.runAsNonRoot`, 'may only be true: pods never run as root'),
    );
  for (const [key, unconfined] of [
    ['seccompProfile', undefined],
    ['appArmorProfile', 'unconfined'],
  ] as const)
    if (sc[key] !== undefined && !allowedProfile(sc[key], unconfined))
      problems.push(
        forbidden(
          `${path}.securityContext.${key}`,
          `only ${ALLOWED_PROFILES.join(' and ')} (with a localhostProfile) profiles are allowed, never Unconfined`,
        ),
      );

  recordsOf(rawSpec.env).forEach((e, i) => {
    if (typeof e.name === 'string' && e.name.startsWith(RESERVED_ENV_PREFIX))
      problems.push(
        forbidden(`${path}.env[${i}].name`, `${RESERVED_ENV_PREFIX} variables are the operator's`),
      );
  });
  const volumeNames = new Set<unknown>();
  recordsOf(rawSpec.volumes).forEach((v, i) => {
    volumeNames.add(v.name);
    if (typeof v.name === 'string' && hasPrefix(v.name, RESERVED_VOLUME_PREFIXES))
      problems.push(
        forbidden(
          `${path}.volumes[${i}].name`,
          `volume names starting with ${RESERVED_VOLUME_PREFIXES.join(' or ')} are the operator's`,
        ),
      );
    const sources = sourcesOf(v);
    // A volume whose only source is a forbidden one was reported above, by that source's name.
    if (sources.length > 1 || (sources.length === 0 && Object.keys(v).every((k) => k === 'name')))
      problems.push(
        forbidden(
          `${path}.volumes[${i}]`,
          `a volume needs exactly one source of ${Object.keys(VOLUME_SOURCES).join(', ')}`,
        ),
      );
    const projected = isRecord(v.projected) ? v.projected : {};
    recordsOf(projected.sources).forEach((s, j) => {
      if (PROJECTION_SOURCES.filter((k) => s[k] !== undefined).length > 1)
        problems.push(
          forbidden(
            `${path}.volumes[${i}].projected.sources[${j}]`,
            `a projected source needs exactly one of ${PROJECTION_SOURCES.join(', ')}`,
          ),
        );
    });
  });
  recordsOf(rawSpec.volumeMounts).forEach((m, i) => {
    if (typeof m.mountPath === 'string' && isReservedMountPath(m.mountPath))
      problems.push(
        forbidden(
          `${path}.volumeMounts[${i}].mountPath`,
          `${RESERVED_MOUNT_PATHS.join(', ')} are the operator's mounts`,
        ),
      );
    if (!volumeNames.has(m.name))
      problems.push({
        field: `${path}.volumeMounts[${i}].name`,
        reason: 'InvalidPodTemplate',
        message: `${path}.volumeMounts[${i}].name: "${String(m.name)}" names no volume of ${path}.volumes`,
      });
  });

  const bytes = Buffer.byteLength(JSON.stringify(allowedPodTemplate(raw)));
  if (bytes > POD_TEMPLATE_MAX_BYTES)
    problems.push({
      field,
      reason: 'SpecTooLarge',
      message: `${field}: ${bytes} bytes as JSON, more than the ${POD_TEMPLATE_MAX_BYTES} allowed: it is copied into every pod; put large configuration in a ConfigMap volume`,
    });
  return problems;
}
