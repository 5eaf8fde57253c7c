{{/*
Expand the name of the chart.
*/}}
{{- define "coin-sync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Create a default fully qualified app name.
Truncated at 52 chars (not 63): a CronJob name longer than 52 is rejected by the
API server, because the controller appends an 11-character suffix to its Jobs.
If release name contains chart name it will be used as a full name.
*/}}
{{- define "coin-sync.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Create chart name and version as used by the chart label.
*/}}
{{- define "coin-sync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels
*/}}
{{- define "coin-sync.labels" -}}
helm.sh/chart: {{ include "coin-sync.chart" . }}
{{ include "coin-sync.selectorLabels" . }}
{{- if .Chart.AppVersion }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
metadata.annotations of an object: commonAnnotations merged with the object's own
(list root ownAnnotations); the object's own win. Empty output = no annotations.
*/}}
{{- define "coin-sync.annotations" -}}
{{- $root := index . 0 }}
{{- $own := index . 1 | default dict }}
{{- $all := merge (deepCopy $own) ($root.Values.commonAnnotations | default dict) }}
{{- with $all }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels
*/}}
{{- define "coin-sync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "coin-sync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Create the name of the service account to use
*/}}
{{- define "coin-sync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "coin-sync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
The container image: repository@digest, else repository:tag (tag defaults to appVersion).
The tag may be a number: `--set image.tag=5326041` (an all-digit short git sha, as
skaffold passes it) arrives as int64, and as float64 from a values file; both render
as the digits.
*/}}
{{- define "coin-sync.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (include "coin-sync.num" .Values.image.tag | toString | default .Chart.AppVersion) }}
{{- end }}
{{- end }}

{{/* Names of the objects the chart creates or the program uses. */}}
{{- define "coin-sync.envConfigMapName" }}{{ include "coin-sync.fullname" . }}-env{{ end }}
{{- define "coin-sync.leaseName" }}{{ include "coin-sync.fullname" . }}-lock{{ end }}
{{- define "coin-sync.statusConfigMapName" }}{{ include "coin-sync.fullname" . }}-status{{ end }}
{{- define "coin-sync.secretName" }}{{ .Values.backend.existingSecret.name | default (include "coin-sync.fullname" .) }}{{ end }}
{{- define "coin-sync.secretKey" }}{{ ternary .Values.backend.existingSecret.key "BACKEND_TOKEN" (ne .Values.backend.existingSecret.name "") }}{{ end }}
{{- define "coin-sync.pvcName" }}{{ .Values.logs.persistence.existingClaim | default (printf "%s-logs" (include "coin-sync.fullname" .)) }}{{ end }}

{{/* Mount points of the files the chart provides. */}}
{{- define "coin-sync.metricsSecretDir" }}/var/run/secrets/coin-sync-pushgateway{{ end }}
{{- define "coin-sync.tokenDir" }}/var/run/secrets/coin-sync{{ end }}

{{/* "true" when a backend token is configured (chart Secret or existingSecret). */}}
{{- define "coin-sync.hasToken" -}}
{{- if or .Values.backend.token .Values.backend.existingSecret.name }}true{{ end }}
{{- end }}

{{/*
"true" when the Kubernetes integration is on: enabled and mode not "off". Off means
no RBAC, no service-account token, no integration env (only K8S_INTEGRATION=off).
*/}}
{{- define "coin-sync.integrationOn" -}}
{{- if and .Values.kubernetes.integration.enabled (ne (include "coin-sync.integrationMode" .) "off") }}true{{ end }}
{{- end }}

{{/*
kubernetes.integration.mode as K8S_INTEGRATION wants it. An unquoted `mode: off` (or
`on`) in a values file is a YAML 1.1 boolean: false is "off", true is "on".
*/}}
{{- define "coin-sync.integrationMode" -}}
{{- $mode := .Values.kubernetes.integration.mode }}
{{- if kindIs "bool" $mode }}{{ ternary "on" "off" $mode }}{{ else }}{{ $mode }}{{ end }}
{{- end }}

{{/* "true" when logs go to a PVC. */}}
{{- define "coin-sync.logsPersistent" -}}
{{- if or .Values.logs.persistence.enabled .Values.logs.persistence.existingClaim }}true{{ end }}
{{- end }}

{{/* "true" when the Job is Indexed with backoffLimitPerIndex (shards > 1, k8s >= 1.29). */}}
{{- define "coin-sync.perIndex" -}}
{{- if and (gt (int .Values.shards) 1) (ne .Values.backoffLimitPerIndex nil) (semverCompare ">=1.29.0-0" .Capabilities.KubeVersion.Version) }}true{{ end }}
{{- end }}

{{/*
A value as env var text: strings as they are, lists joined by commas, anything else as
JSON (numbers in plain digits: 300, 0.25, 1000000; true/false).
*/}}
{{- define "coin-sync.num" -}}
{{- if kindIs "string" . }}{{ . }}
{{- else if kindIs "slice" . }}{{ join "," . }}
{{- else }}{{ toJson . }}
{{- end }}
{{- end }}

{{/*
Checks the schema cannot express. Included once, from the CronJob template.
*/}}
{{- define "coin-sync.validate" -}}
{{- if and .Values.backend.token .Values.backend.existingSecret.name }}
{{- fail "backend.token y backend.existingSecret.name son excluyentes: usa uno de los dos" }}
{{- end }}
{{- /*
After SHUTDOWN_GRACE_SECONDS the pass still releases its Lease, posts its Event and
writes its status and summary: 10 s more before SIGKILL.
*/}}
{{- $grace := .Values.config.SHUTDOWN_GRACE_SECONDS | float64 }}
{{- if lt (float64 .Values.terminationGracePeriodSeconds) (addf $grace 10) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) debe ser al menos config.SHUTDOWN_GRACE_SECONDS (%v) + 10 = %v: tras el margen de apagado la pasada aún libera su Lease, publica su Event y escribe su estado; con menos, Kubernetes la mata (SIGKILL) antes de que termine ordenadamente" .Values.terminationGracePeriodSeconds $grace (addf $grace 10)) }}
{{- end }}
{{- $passDeadline := .Values.config.PASS_DEADLINE_SECONDS | float64 }}
{{- if and (ne .Values.activeDeadlineSeconds nil) (gt $passDeadline 0.0) (ge $passDeadline (float64 .Values.activeDeadlineSeconds)) }}
{{- fail (printf "config.PASS_DEADLINE_SECONDS (%v) debe ser menor que activeDeadlineSeconds (%v)" $passDeadline .Values.activeDeadlineSeconds) }}
{{- end }}
{{- if and (ne .Values.maxFailedIndexes nil) (gt (int .Values.shards) 1) (ge (int .Values.maxFailedIndexes) (int .Values.shards)) }}
{{- fail (printf "maxFailedIndexes (%v) debe ser menor que shards (%v)" .Values.maxFailedIndexes .Values.shards) }}
{{- end }}
{{- if and .Values.podFailurePolicy.enabled (not (include "coin-sync.perIndex" .)) }}
{{- range .Values.podFailurePolicy.extraRules }}
{{- if eq (toString .action) "FailIndex" }}
{{- fail "podFailurePolicy.extraRules: la acción FailIndex solo es válida con backoffLimitPerIndex activo (shards > 1, backoffLimitPerIndex no null y Kubernetes >= 1.29; con helm template, --kube-version); aquí no lo está y Kubernetes rechazaría el Job: usa FailJob, Ignore o Count" }}
{{- end }}
{{- end }}
{{- end }}
{{- $p := .Values.logs.persistence }}
{{- if and $p.enabled (not $p.existingClaim) (gt (int .Values.shards) 1) (or (has "ReadWriteOncePod" $p.accessModes) (not (has "ReadWriteMany" $p.accessModes))) }}
{{- fail (printf "logs.persistence: con shards = %d los pods de una pasada corren a la vez, en nodos que pueden ser distintos, y montan el mismo PVC; con accessModes %v no pueden (ReadWriteOnce: un solo nodo; ReadWriteOncePod: un solo pod): usa accessModes [ReadWriteMany] (una StorageClass que lo admita, p. ej. NFS o CephFS), logs.persistence.existingClaim con un PVC ReadWriteMany, o logs.persistence.enabled=false (emptyDir)" (int .Values.shards) $p.accessModes) }}
{{- end }}
{{- if and (include "coin-sync.integrationOn" .) .Values.kubernetes.integration.rbac.create (not .Values.serviceAccount.create) (not .Values.serviceAccount.name) }}
{{- fail "kubernetes.integration.rbac.create con serviceAccount.create=false y serviceAccount.name vacío daría el Role (Leases, Events, ConfigMap de estado) a la ServiceAccount `default` del namespace, la que usan todos los pods sin una propia: indica serviceAccount.name, pon serviceAccount.create=true, o kubernetes.integration.rbac.create=false si gestionas tú el RBAC" }}
{{- end }}
{{- end }}

{{/* Exit codes (1-255) in ascending order, each once: the API requires ordered values. */}}
{{- define "coin-sync.sortedCodes" -}}
{{- $codes := list }}
{{- range . }}{{ $codes = append $codes (int .) }}{{ end }}
{{- $out := list }}
{{- range $code := until 256 }}{{ if has $code $codes }}{{ $out = append $out $code }}{{ end }}{{ end }}
{{- toJson $out }}
{{- end }}

{{/* The TCP port of a URL as a JSON list: its explicit port, else 80/443 by scheme. */}}
{{- define "coin-sync.urlPorts" -}}
{{- $url := urlParse . }}
{{- $port := regexFind ":[0-9]+$" $url.host | trimPrefix ":" }}
{{- if not $port }}
{{- $port = ternary "443" "80" (eq $url.scheme "https") }}
{{- end }}
{{- list (atoi $port) | toJson }}
{{- end }}
