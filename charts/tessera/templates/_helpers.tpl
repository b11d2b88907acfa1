{{/* The name of every object of the release. */}}
{{- define "tessera.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 50 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 50 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "tessera.selectorLabels" -}}
app.kubernetes.io/name: {{ .Chart.Name }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "tessera.labels" -}}
{{ include "tessera.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "tessera.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "tessera.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- required "serviceAccount.name is required when serviceAccount.create is false" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The API group of each provider's managed resources and ProviderConfig. */}}
{{- define "tessera.providerGroups" -}}
postgresql: postgresql.sql.tessera.dev
vault: vault.tessera.dev
rds: rds.aws.tessera.dev
harbor: harbor.tessera.dev
{{- end -}}

{{/* The enabled providers' API groups, as a JSON list. */}}
{{- define "tessera.enabledGroups" -}}
{{- $groups := include "tessera.providerGroups" . | fromYaml -}}
{{- $out := list -}}
{{- range .Values.providers -}}
{{- $out = append $out (get $groups .) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* The plural resource name Kubernetes derives from a kind (lower case; -y -> -ies;
     -s, -x, -ch, -sh -> -es). */}}
{{- define "tessera.plural" -}}
{{- $k := lower . -}}
{{- if and (hasSuffix "y" $k) (not (regexMatch "[aeiou]y$" $k)) -}}
{{- printf "%sies" (trimSuffix "y" $k) -}}
{{- else if regexMatch "(s|x|ch|sh)$" $k -}}
{{- printf "%ses" $k -}}
{{- else -}}
{{- printf "%ss" $k -}}
{{- end -}}
{{- end -}}

{{/* The RBAC rules for what Compositions may compose (composableResources), besides
     Secrets (their rights are bound per namespace, see secrets.yaml) and the providers'
     own groups (granted in the ClusterRole already). A JSON list of rules. */}}
{{- define "tessera.composableRules" -}}
{{- $verbs := list "get" "list" "watch" "create" "patch" "update" "delete" -}}
{{- $rules := list -}}
{{- range .Values.composableResources -}}
{{- $entry := trim . -}}
{{- if eq $entry "default" -}}
{{- $rules = append $rules (dict "apiGroups" (list "") "resources" (list "configmaps") "verbs" $verbs) -}}
{{- else if eq $entry "*" -}}
{{- $rules = append $rules (dict "apiGroups" (list "*") "resources" (list "*") "verbs" $verbs) -}}
{{- else -}}
{{- $parts := splitList "/" $entry -}}
{{- $group := first $parts -}}
{{- if or (eq $group "core") (eq $group "v1") }}{{ $group = "" }}{{ end -}}
{{- if or (eq (len $parts) 1) (eq (last $parts) "*") -}}
{{- $rules = append $rules (dict "apiGroups" (list $group) "resources" (list "*") "verbs" $verbs) -}}
{{- else if not (and (eq $group "") (eq (last $parts) "Secret")) -}}
{{- $rules = append $rules (dict "apiGroups" (list $group) "resources" (list (include "tessera.plural" (last $parts))) "verbs" $verbs) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- toJson $rules -}}
{{- end -}}

{{/* The image reference. */}}
{{- define "tessera.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
