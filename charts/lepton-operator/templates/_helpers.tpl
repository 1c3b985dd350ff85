{{- define "lepton.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- /* The prefix of every object name: release "lepton-operator" gives "lepton-operator". */ -}}
{{- define "lepton.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "lepton.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "lepton.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "lepton.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "lepton.labels" -}}
{{ include "lepton.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lepton
app.kubernetes.io/component: operator
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- /*
The operator pods' selector (unchanged since 0.1.0: a Deployment's selector cannot change). The
manifests' pods carry no app.kubernetes.io/instance label and select on lepton.ai/install, so
neither installation's metrics Service selects the other's pods.
*/ -}}
{{- define "lepton.selector" -}}
app.kubernetes.io/name: {{ include "lepton.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "lepton.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion -}}
{{- if .Values.image.digest -}}
{{- printf "%s:%s@%s" .Values.image.repository $tag .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{- /*
The rules of the operator's role, from src/core/permissions.ts (test/unit/ship/chart-rbac.test.ts
checks that they agree): "lepton.rules.watched" for the watched namespaces, "lepton.rules.cluster"
for cluster-scoped resources, "lepton.rules.own" (leader election) in the release namespace.
*/ -}}
{{- define "lepton.rules.watched" -}}
- apiGroups: [lepton.ai]
  resources: [trainingjobs]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [lepton.ai]
  resources: [federatedrounds]
  verbs: [get, list, watch, create, delete]
- apiGroups: [lepton.ai]
  resources: [inferenceservices]
  verbs: [list, watch]
- apiGroups: [lepton.ai]
  resources: [trainingjobs/status, federatedrounds/status, inferenceservices/status]
  verbs: [patch]
# Children carry owner references with blockOwnerDeletion (OwnerReferencesPermissionEnforcement).
- apiGroups: [lepton.ai]
  resources: [trainingjobs/finalizers, federatedrounds/finalizers, inferenceservices/finalizers]
  verbs: [update]
- apiGroups: [""]
  resources: [pods]
  verbs: [get, list, watch, create, delete]
- apiGroups: [""]
  resources: [services]
  verbs: [get, list, watch, create, patch, delete]
# A FederatedRound's identity keys; the check that a job's S3 Secret exists.
- apiGroups: [""]
  resources: [secrets]
  verbs: [get, list, watch, create, patch]
# A FederatedRound waits for the claims it names.
- apiGroups: [""]
  resources: [persistentvolumeclaims]
  verbs: [list, watch]
- apiGroups: [apps]
  resources: [deployments]
  verbs: [get, list, watch, create, patch, delete]
- apiGroups: [events.k8s.io]
  resources: [events]
  verbs: [create]
{{- end -}}

{{- define "lepton.rules.cluster" -}}
# Gang admission: the nodes' capacity and the workloads' priority.
- apiGroups: [""]
  resources: [nodes]
  verbs: [list, watch]
- apiGroups: [scheduling.k8s.io]
  resources: [priorityclasses]
  verbs: [list, watch]
{{- if .Values.metrics.secure }}
# Secure metrics: who scrapes, and whether they may get /metrics.
- apiGroups: [authentication.k8s.io]
  resources: [tokenreviews]
  verbs: [create]
- apiGroups: [authorization.k8s.io]
  resources: [subjectaccessreviews]
  verbs: [create]
{{- end }}
{{- end -}}

{{- define "lepton.rules.own" -}}
- apiGroups: [coordination.k8s.io]
  resources: [leases]
  verbs: [get, create, update]
{{- end -}}

{{- define "lepton.subjects" -}}
- kind: ServiceAccount
  name: {{ include "lepton.serviceAccountName" . }}
  namespace: {{ .Release.Namespace }}
{{- end -}}
