{{- define "lepton.name" -}}lepton-operator{{- end -}}
{{- define "lepton.labels" -}}
app.kubernetes.io/name: {{ include "lepton.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ .Chart.Name }}-{{ .Chart.Version }}
{{- end -}}
{{- define "lepton.selector" -}}
app.kubernetes.io/name: {{ include "lepton.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}
{{- define "lepton.fullname" -}}{{ .Release.Name }}-lepton-operator{{- end -}}
