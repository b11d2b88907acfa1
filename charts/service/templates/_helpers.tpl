{{/* The release's name, as every object of the service is named (at most 52 characters, so
that suffixes such as -postgres keep names within 63). */}}
{{- define "service.name" -}}
{{- .Release.Name | trunc 52 | trimSuffix "-" -}}
{{- end -}}

{{- define "service.labels" -}}
app.kubernetes.io/name: {{ include "service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "service.selector" -}}
app.kubernetes.io/name: {{ include "service.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "service.serviceAccountName" -}}
{{- default (include "service.name" .) .Values.serviceAccount.name -}}
{{- end -}}

{{/* Whether a claim is rendered: asked for in the values, and its kind served by the
cluster (the platform installed that composition). "true" or "". */}}
{{- define "service.postgres" -}}
{{- if and .Values.postgres.enabled (.Capabilities.APIVersions.Has "platform.tessera.dev/v1alpha1/PostgresDatabase") -}}true{{- end -}}
{{- end -}}

{{- define "service.vault" -}}
{{- if and .Values.vault.read (.Capabilities.APIVersions.Has "platform.tessera.dev/v1alpha1/VaultPolicy") -}}true{{- end -}}
{{- end -}}

{{- define "service.harbor" -}}
{{- if and .Values.harbor.project.enabled (.Capabilities.APIVersions.Has "platform.tessera.dev/v1alpha1/HarborProject") -}}true{{- end -}}
{{- end -}}

{{/* Argo CD applies the claims (wave -1) and waits until they are healthy (Ready: their
Secrets exist) before the Deployment (wave 0). */}}
{{- define "service.claimAnnotations" -}}
argocd.argoproj.io/sync-wave: "-1"
{{- end -}}
