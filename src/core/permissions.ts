// The Kubernetes API access the operator needs, and where in the code each verb is used. The
// Helm chart's and manifests/' RBAC grant exactly this (test/unit/ship/chart-rbac.test.ts
// compares them in both directions and checks that every call site named here exists), and the
// integration tests run the operator with those roles only, which shows that nothing is missing.

export type Verb = 'get' | 'list' | 'watch' | 'create' | 'update' | 'patch' | 'delete';

/**
 * Where a rule applies: `watched` in every watched namespace (cluster-wide when the operator
 * watches all), `own` in the operator's own namespace, `cluster` for cluster-scoped resources.
 */
export type PermissionScope = 'watched' | 'own' | 'cluster';

export interface Permission {
  group: string;
  /** A resource or `resource/subresource`. */
  resource: string;
  verbs: Verb[];
  scope: PermissionScope;
  /** Granted only with this chart option (see charts/lepton-operator/values.yaml). */
  when?: 'metricsSecure';
  /**
   * For each verb, the calls in src/ that use it: `file: text`, where text is found in that file
   * once whitespace is collapsed. A cache (list and watch) is `manager.cache<...>(Resources.X`.
   */
  usedBy: Partial<Record<Verb, string[]>>;
  why: string;
}

const engine = 'src/engine/register.ts';
const children = 'src/engine/children.ts';
const controllers = 'src/controllers/register.ts';
const reconciler = 'src/engine/reconciler.ts';
const isvc = 'src/controllers/inferenceservice/reconciler.ts';
const status = 'src/core/status.ts';
const cache = (file: string, kind: string) => `${file}: manager.cache<${kind}>`;

/**
 * Creating a child through createOwned (or converge, which calls it) is a create, and a get of
 * the object that was already there. Children carry an owner reference with blockOwnerDeletion,
 * which the OwnerReferencesPermissionEnforcement admission plugin (on in OpenShift) allows only
 * to who may update the owner's finalizers.
 */
const createOwned = `${children}: client.createIfAbsent(rt, obj)`;

export const OPERATOR_PERMISSIONS: Permission[] = [
  {
    group: 'lepton.ai',
    resource: 'trainingjobs',
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    scope: 'watched',
    usedBy: {
      list: [`${controllers}: manager.cache<TrainingJob>(Resources.TrainingJob)`],
      watch: [`${controllers}: manager.cache<TrainingJob>(Resources.TrainingJob)`],
      get: [
        createOwned,
        'src/controllers/trainingjob/tuning-reconciler.ts: this.o.client.find<TrainingJob>(',
      ],
      create: [
        'src/controllers/trainingjob/tuning-reconciler.ts: createOwned(this.o.client, Resources.TrainingJob',
        'src/controllers/trainingjob/schedule-reconciler.ts: createOwned(',
      ],
      patch: [
        'src/controllers/trainingjob/tuning-reconciler.ts: this.o.client.patch( Resources.TrainingJob',
      ],
      delete: [
        'src/controllers/trainingjob/schedule-reconciler.ts: this.o.client.deleteIfExists(Resources.TrainingJob',
        `${reconciler}: this.o.client.deleteIfExists(w.resource, obj`,
      ],
    },
    why: 'Jobs are the primary objects; searches create trials, schedules create and prune runs, a finished job past its TTL deletes itself',
  },
  {
    group: 'lepton.ai',
    resource: 'federatedrounds',
    verbs: ['get', 'list', 'watch', 'create', 'delete'],
    scope: 'watched',
    usedBy: {
      list: [`${controllers}: manager.cache<FederatedRound>(Resources.FederatedRound)`],
      watch: [`${controllers}: manager.cache<FederatedRound>(Resources.FederatedRound)`],
      get: [createOwned],
      create: ['src/controllers/trainingjob/campaign-reconciler.ts: Resources.FederatedRound,'],
      delete: [`${reconciler}: this.o.client.deleteIfExists(w.resource, obj`],
    },
    why: 'Rounds are primary objects; a federated campaign creates them; a finished round past its TTL deletes itself',
  },
  {
    group: 'lepton.ai',
    resource: 'inferenceservices',
    verbs: ['list', 'watch'],
    scope: 'watched',
    usedBy: {
      list: [`${controllers}: manager.cache<InferenceService>(Resources.InferenceService)`],
      watch: [`${controllers}: manager.cache<InferenceService>(Resources.InferenceService)`],
    },
    why: 'The primary objects of the serving controller',
  },
  ...['trainingjobs', 'federatedrounds', 'inferenceservices'].map((r): Permission => ({
    group: 'lepton.ai',
    resource: `${r}/status`,
    verbs: ['patch'],
    scope: 'watched',
    usedBy: { patch: [`${status}: client.patch( rt,`] },
    why: 'Status is written by server-side apply on the status subresource',
  })),
  ...['trainingjobs', 'federatedrounds', 'inferenceservices'].map((r): Permission => ({
    group: 'lepton.ai',
    resource: `${r}/finalizers`,
    verbs: ['update'],
    scope: 'watched',
    usedBy: { update: ['src/core/resources.ts: blockOwnerDeletion: true'] },
    why: 'Children block their owner’s deletion (needed where OwnerReferencesPermissionEnforcement is on)',
  })),
  {
    group: '',
    resource: 'pods',
    verbs: ['get', 'list', 'watch', 'create', 'delete'],
    scope: 'watched',
    usedBy: {
      list: [cache(engine, 'PodObject'), cache(engine, 'Pod'), cache(controllers, 'ServingPod')],
      watch: [cache(engine, 'PodObject'), cache(engine, 'Pod'), cache(controllers, 'ServingPod')],
      get: [createOwned],
      create: [`${children}: const blocked = await create(pod)`],
      delete: [`${reconciler}: this.o.client.deleteIfExists(Resources.Pod, p)`],
    },
    why: 'Workload pods; admission counts the pods that hold capacity',
  },
  {
    group: '',
    resource: 'services',
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    scope: 'watched',
    usedBy: {
      list: [
        `${controllers}: manager.cache<KubeObject>(Resources.Service`,
        `${engine}: manager.cache<KubeObject>(rt`,
      ],
      watch: [
        `${controllers}: manager.cache<KubeObject>(Resources.Service`,
        `${engine}: manager.cache<KubeObject>(rt`,
      ],
      get: [createOwned],
      create: [`${children}: const blocked = await create(obj)`],
      patch: [`${children}: i.client.patch(resourceOf(obj), namespace, name, obj, 'apply')`],
      delete: [`${isvc}: this.o.client.deleteIfExists(Resources.Service, svc)`],
    },
    why: 'A job’s headless Service, an InferenceService’s predictor and canary Services',
  },
  {
    group: '',
    resource: 'secrets',
    verbs: ['get', 'list', 'watch', 'create', 'patch'],
    scope: 'watched',
    usedBy: {
      list: [`${engine}: manager.cache<KubeObject>(rt`],
      watch: [`${engine}: manager.cache<KubeObject>(rt`],
      get: ['src/engine/storage.ts: this.client.find<', createOwned],
      create: [`${children}: const blocked = await create(obj)`],
      patch: [`${children}: i.client.patch(resourceOf(obj), namespace, name, obj, 'apply')`],
    },
    why: 'A FederatedRound’s identity keys; the check that an S3 secret exists',
  },
  {
    group: '',
    resource: 'persistentvolumeclaims',
    verbs: ['list', 'watch'],
    scope: 'watched',
    usedBy: {
      list: [`${controllers}: manager.cache<KubeObject>(Resources.PersistentVolumeClaim)`],
      watch: [`${controllers}: manager.cache<KubeObject>(Resources.PersistentVolumeClaim)`],
    },
    why: 'A FederatedRound waits for the claims it names',
  },
  {
    group: 'apps',
    resource: 'deployments',
    verbs: ['get', 'list', 'watch', 'create', 'patch', 'delete'],
    scope: 'watched',
    usedBy: {
      list: [`${controllers}: manager.cache<KubeObject>(Resources.Deployment`],
      watch: [`${controllers}: manager.cache<KubeObject>(Resources.Deployment`],
      get: [createOwned],
      create: [`${children}: const blocked = await create(obj)`],
      patch: [`${children}: i.client.patch(resourceOf(obj), namespace, name, obj, 'apply')`],
      delete: [`${isvc}: this.o.client.deleteIfExists(Resources.Deployment, d)`],
    },
    why: 'An InferenceService’s predictor and canary',
  },
  {
    group: 'events.k8s.io',
    resource: 'events',
    verbs: ['create'],
    scope: 'watched',
    usedBy: { create: ['src/core/events.ts: this.o.client.create(Resources.Event'] },
    why: 'Events about the operator’s objects, in their namespaces',
  },
  {
    group: 'coordination.k8s.io',
    resource: 'leases',
    verbs: ['get', 'create', 'update'],
    scope: 'own',
    usedBy: {
      get: ['src/core/leader.ts: client.get<Lease>(Resources.Lease'],
      create: ['src/core/leader.ts: client.create<Lease>(Resources.Lease'],
      update: ['src/core/leader.ts: client.replace<Lease>(Resources.Lease'],
    },
    why: 'Leader election',
  },
  {
    group: '',
    resource: 'nodes',
    verbs: ['list', 'watch'],
    scope: 'cluster',
    usedBy: {
      list: [`${engine}: nodes: manager.cache(Resources.Node)`],
      watch: [`${engine}: nodes: manager.cache(Resources.Node)`],
    },
    why: 'Gang admission places pod sets on the nodes’ free capacity',
  },
  {
    group: 'scheduling.k8s.io',
    resource: 'priorityclasses',
    verbs: ['list', 'watch'],
    scope: 'cluster',
    usedBy: {
      list: [`${engine}: priorityClasses: manager.cache(Resources.PriorityClass)`],
      watch: [`${engine}: priorityClasses: manager.cache(Resources.PriorityClass)`],
    },
    why: 'Admission orders workloads by priority; a new class retries refused pods',
  },
  {
    group: 'authentication.k8s.io',
    resource: 'tokenreviews',
    verbs: ['create'],
    scope: 'cluster',
    when: 'metricsSecure',
    usedBy: { create: ['src/core/secure-metrics.ts: (TokenReview, {'] },
    why: 'Secure metrics: authenticates the bearer token of a scrape',
  },
  {
    group: 'authorization.k8s.io',
    resource: 'subjectaccessreviews',
    verbs: ['create'],
    scope: 'cluster',
    when: 'metricsSecure',
    usedBy: { create: ['src/core/secure-metrics.ts: (SubjectAccessReview, {'] },
    why: 'Secure metrics: asks whether the scraper may get /metrics',
  },
];
