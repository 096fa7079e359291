{{/* The chart's name and labels. */}}
{{- define "tickplane.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}{{ .Release.Name | trunc 50 | trimSuffix "-" }}
{{- else -}}{{ printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" }}{{- end -}}
{{- end -}}

{{- define "tickplane.labels" -}}
app.kubernetes.io/part-of: tickplane
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{/* Selector labels of one component: (dict "root" $ "component" "gateway"). */}}
{{- define "tickplane.selector" -}}
app.kubernetes.io/name: tickplane-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
{{- end -}}

{{- define "tickplane.image" -}}
{{ .Values.image.repository }}:{{ .Values.image.tag | default .Chart.AppVersion }}
{{- end -}}

{{/* Pod and container security: non-root, read-only root filesystem, no escalation. */}}
{{- define "tickplane.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{- define "tickplane.containerSecurity" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
privileged: false
capabilities:
  drop: ["ALL"]
{{- end -}}

{{/* The Secret holding the service URLs (a chart-made one, or existingSecret). */}}
{{- define "tickplane.urlSecret" -}}
{{ .Values.gateway.existingSecret | default (printf "%s-urls" (include "tickplane.fullname" .)) }}
{{- end -}}

{{- define "tickplane.databaseUrl" -}}
{{- if .Values.postgresql.bundled -}}
postgresql://tickplane:{{ .Values.postgresql.password }}@{{ include "tickplane.fullname" . }}-postgresql:5432/tickplane
{{- else -}}{{ .Values.postgresql.url }}{{- end -}}
{{- end -}}

{{- define "tickplane.redisUrl" -}}
{{- if .Values.redis.bundled -}}redis://{{ include "tickplane.fullname" . }}-redis:6379/0
{{- else -}}{{ .Values.redis.url }}{{- end -}}
{{- end -}}

{{- define "tickplane.kafka" -}}
{{- if .Values.kafka.bundled -}}{{ include "tickplane.fullname" . }}-kafka:9092
{{- else -}}{{ .Values.kafka.bootstrapServers }}{{- end -}}
{{- end -}}

{{/* The engine's endpoints, through its headless Service. */}}
{{- define "tickplane.engineHost" -}}
{{ .Values.gateway.engine }}.{{ .Release.Namespace }}.svc
{{- end -}}
