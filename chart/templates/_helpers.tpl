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
{{- define "coin-sync.envConfigMapName" -}}
{{- printf "%s-env" (include "coin-sync.fullname" .) }}
{{- end }}
{{- define "coin-sync.fileConfigMapName" -}}
{{- printf "%s-config" (include "coin-sync.fullname" .) }}
{{- end }}
{{- define "coin-sync.secretName" -}}
{{- if .Values.backend.existingSecret.name }}
{{- .Values.backend.existingSecret.name }}
{{- else }}
{{- include "coin-sync.fullname" . }}
{{- end }}
{{- end }}
{{- define "coin-sync.secretKey" -}}
{{- if .Values.backend.existingSecret.name }}
{{- .Values.backend.existingSecret.key }}
{{- else -}}
BACKEND_TOKEN
{{- end }}
{{- end }}
{{- define "coin-sync.leaseName" -}}
{{- printf "%s-lock" (include "coin-sync.fullname" .) }}
{{- end }}
{{- define "coin-sync.statusConfigMapName" -}}
{{- printf "%s-status" (include "coin-sync.fullname" .) }}
{{- end }}
{{- define "coin-sync.pvcName" -}}
{{- if .Values.logs.persistence.existingClaim }}
{{- .Values.logs.persistence.existingClaim }}
{{- else }}
{{- printf "%s-logs" (include "coin-sync.fullname" .) }}
{{- end }}
{{- end }}

{{/* Mount points of the files the chart provides. */}}
{{- define "coin-sync.metricsSecretDir" -}}
/var/run/secrets/coin-sync-pushgateway
{{- end }}
{{- define "coin-sync.configFilePath" -}}
/etc/coin-sync/config.yaml
{{- end }}
{{- define "coin-sync.tokenDir" -}}
/var/run/secrets/coin-sync
{{- end }}

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
{{- if kindIs "bool" $mode }}
{{- ternary "on" "off" $mode }}
{{- else }}
{{- toString $mode }}
{{- end }}
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
A number as text for an env var: YAML numbers arrive as float64 (300 -> "300", not
"3e+02"); --set numbers arrive as int64.
*/}}
{{- define "coin-sync.num" -}}
{{- if and (kindIs "float64" .) (eq . (floor .)) }}
{{- printf "%d" (int64 .) }}
{{- else }}
{{- toString . }}
{{- end }}
{{- end }}

{{/*
The program's settings from config.* as an env map (name -> string), minus the keys
that configFile sets (the environment would override the file otherwise).
Output: YAML of the map; use with fromYaml.
*/}}
{{- define "coin-sync.configEnv" -}}
{{- $c := .Values.config }}
{{- $lists := dict }}
{{- range $key, $value := dict "symbols" $c.symbolsToSync "include" $c.symbolsInclude "exclude" $c.symbolsExclude }}
{{- $_ := set $lists $key (ternary (join "," $value) (toString $value) (kindIs "slice" $value)) }}
{{- end }}
{{- $env := dict
  "LOG_LEVEL" $c.logLevel
  "LOG_DIR" $c.logDir
  "LOG_FORMAT" $c.logFormat
  "HTTP_TIMEOUT" (include "coin-sync.num" $c.httpTimeout)
  "MAX_RETRIES" (include "coin-sync.num" $c.maxRetries)
  "RETRY_DELAY_SECONDS" (include "coin-sync.num" $c.retryDelaySeconds)
  "RETRY_MAX_DELAY_SECONDS" (include "coin-sync.num" $c.retryMaxDelaySeconds)
  "SYMBOLS_TO_SYNC" $lists.symbols
  "SYMBOLS_INCLUDE" $lists.include
  "SYMBOLS_EXCLUDE" $lists.exclude
  "SYNC_CONCURRENCY" (include "coin-sync.num" $c.syncConcurrency)
  "SYNC_CONCURRENCY_MAX" (include "coin-sync.num" $c.syncConcurrencyMax)
  "BACKEND_WAIT_SECONDS" (include "coin-sync.num" $c.backendWaitSeconds)
  "PASS_DEADLINE_SECONDS" (include "coin-sync.num" $c.passDeadlineSeconds)
  "SHUTDOWN_GRACE_SECONDS" (include "coin-sync.num" $c.shutdownGraceSeconds)
  "SUMMARY_FILE" $c.summaryFile
  "STALE_AFTER_SECONDS" (include "coin-sync.num" $c.staleAfterSeconds)
  "FAIL_ON_STALE" (toString $c.failOnStale)
}}
{{- $budget := $c.passBudgetSeconds }}
{{- if kindIs "invalid" $budget }}
{{- /* 5/6 of the interval between passes (50 s of a minute), as the loop does. */}}
{{- $every := include "coin-sync.scheduleSeconds" . | int64 }}
{{- if $every }}
{{- $budget = div (mul $every 5) 6 }}
{{- end }}
{{- end }}
{{- if not (kindIs "invalid" $budget) }}
{{- $_ := set $env "PASS_BUDGET_SECONDS" (include "coin-sync.num" $budget) }}
{{- end }}
{{- if not (kindIs "invalid" $c.ambiguousHoldSeconds) }}
{{- $_ := set $env "AMBIGUOUS_HOLD_SECONDS" (include "coin-sync.num" $c.ambiguousHoldSeconds) }}
{{- end }}
{{- range $key, $_ := .Values.configFile }}
{{- $_ := unset $env $key }}
{{- end }}
{{- toYaml $env }}
{{- end }}

{{/* The effective value of a setting: configFile wins over config.*. */}}
{{- define "coin-sync.effective" -}}
{{- $root := index . 0 }}
{{- $envName := index . 1 }}
{{- $value := index . 2 }}
{{- if hasKey $root.Values.configFile $envName }}
{{- $value = index $root.Values.configFile $envName }}
{{- end }}
{{- toString $value }}
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
{{- $grace := include "coin-sync.effective" (list . "SHUTDOWN_GRACE_SECONDS" .Values.config.shutdownGraceSeconds) | float64 }}
{{- if lt (float64 .Values.terminationGracePeriodSeconds) (addf $grace 10) }}
{{- fail (printf "terminationGracePeriodSeconds (%v) debe ser al menos config.shutdownGraceSeconds (%v) + 10 = %v: tras el margen de apagado la pasada aún libera su Lease, publica su Event y escribe su estado; con menos, Kubernetes la mata (SIGKILL) antes de que termine ordenadamente" .Values.terminationGracePeriodSeconds $grace (addf $grace 10)) }}
{{- end }}
{{- $passDeadline := include "coin-sync.effective" (list . "PASS_DEADLINE_SECONDS" .Values.config.passDeadlineSeconds) | float64 }}
{{- if and (ne .Values.activeDeadlineSeconds nil) (gt $passDeadline 0.0) (ge $passDeadline (float64 .Values.activeDeadlineSeconds)) }}
{{- fail (printf "config.passDeadlineSeconds (%v) debe ser menor que activeDeadlineSeconds (%v)" $passDeadline .Values.activeDeadlineSeconds) }}
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

{{/* POD_NAMESPACE from the downward API. */}}
{{- define "coin-sync.namespaceEnv" -}}
- name: POD_NAMESPACE
  valueFrom:
    fieldRef:
      fieldPath: metadata.namespace
{{- end }}

{{/*
Env vars of the Kubernetes integration that come from the downward API.
*/}}
{{- define "coin-sync.downwardEnv" -}}
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
{{ include "coin-sync.namespaceEnv" . }}
- name: JOB_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['batch.kubernetes.io/job-name']
# `kubectl describe job` lists only Events whose involvedObject carries the Job's uid.
- name: JOB_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.labels['batch.kubernetes.io/controller-uid']
- name: POD_UID
  valueFrom:
    fieldRef:
      fieldPath: metadata.uid
{{- end }}

{{/*
Env vars of the backend token (Secret or existingSecret), empty without a token.
*/}}
{{- define "coin-sync.tokenEnv" -}}
{{- if include "coin-sync.hasToken" . }}
{{- if .Values.backend.tokenAsFile }}
- name: BACKEND_TOKEN_FILE
  value: {{ printf "%s/token" (include "coin-sync.tokenDir" .) | quote }}
{{- else }}
- name: BACKEND_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "coin-sync.secretName" . }}
      key: {{ include "coin-sync.secretKey" . | quote }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Env of the program's container shared by the CronJob and the helm test pod (after
envFrom the env ConfigMap): token and CONFIG_FILE.
*/}}
{{- define "coin-sync.commonEnv" -}}
{{- include "coin-sync.tokenEnv" . }}
{{- if .Values.configFile }}
- name: CONFIG_FILE
  value: {{ include "coin-sync.configFilePath" . | quote }}
{{- end }}
{{- if include "coin-sync.metricsPassword" . }}
- name: METRICS_PUSHGATEWAY_PASSWORD_FILE
  value: {{ printf "%s/password" (include "coin-sync.metricsSecretDir" .) | quote }}
{{- end }}
{{- end }}

{{/*
Volume mounts shared by the CronJob and the helm test pod.
*/}}
{{- define "coin-sync.commonVolumeMounts" -}}
- name: logs
  mountPath: {{ .Values.config.logDir }}
- name: tmp
  mountPath: /tmp
{{- if .Values.configFile }}
- name: config-file
  mountPath: {{ include "coin-sync.configFilePath" . | dir }}
  readOnly: true
{{- end }}
{{- if and (include "coin-sync.hasToken" .) .Values.backend.tokenAsFile }}
- name: backend-token
  mountPath: {{ include "coin-sync.tokenDir" . }}
  readOnly: true
{{- end }}
{{- if include "coin-sync.metricsPassword" . }}
- name: pushgateway-password
  mountPath: {{ include "coin-sync.metricsSecretDir" . }}
  readOnly: true
{{- end }}
{{- end }}

{{/*
Volumes shared by the CronJob and the helm test pod, except `logs`.
*/}}
{{- define "coin-sync.commonVolumes" -}}
- name: tmp
  {{- if .Values.tmp.sizeLimit }}
  emptyDir:
    sizeLimit: {{ .Values.tmp.sizeLimit | quote }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- if .Values.configFile }}
- name: config-file
  configMap:
    name: {{ include "coin-sync.fileConfigMapName" . }}
    items:
      - key: {{ include "coin-sync.configFilePath" . | base }}
        path: {{ include "coin-sync.configFilePath" . | base }}
{{- end }}
{{- if and (include "coin-sync.hasToken" .) .Values.backend.tokenAsFile }}
- name: backend-token
  secret:
    secretName: {{ include "coin-sync.secretName" . }}
    # Readable by the container whatever its UID/GID (no reliance on fsGroup); only
    # this pod mounts the volume.
    defaultMode: 0444
    items:
      - key: {{ include "coin-sync.secretKey" . }}
        path: token
{{- end }}
{{- if include "coin-sync.metricsPassword" . }}
{{- $auth := .Values.metrics.pushgateway.basicAuth }}
- name: pushgateway-password
  secret:
    secretName: {{ $auth.existingSecret.name }}
    defaultMode: 0444
    items:
      - key: {{ $auth.existingSecret.key }}
        path: password
{{- end }}
{{- end }}

{{/*
The logs emptyDir (the helm test pod always uses one).
*/}}
{{- define "coin-sync.logsEmptyDir" -}}
- name: logs
  {{- if .Values.logs.emptyDir.sizeLimit }}
  emptyDir:
    sizeLimit: {{ .Values.logs.emptyDir.sizeLimit | quote }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end }}

{{/*
Scheduling and pod-level fields shared by the CronJob and the helm test pod.
*/}}
{{- define "coin-sync.podScheduling" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.dnsPolicy }}
dnsPolicy: {{ . }}
{{- end }}
{{- with .Values.dnsConfig }}
dnsConfig:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.hostAliases }}
hostAliases:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/*
Exit codes, numerically sorted and deduplicated (the API requires ordered values).
*/}}
{{- define "coin-sync.sortedCodes" -}}
{{- $padded := list }}
{{- range . }}
{{- $padded = append $padded (printf "%03d" (int .)) }}
{{- end }}
{{- $out := list }}
{{- range ($padded | uniq | sortAlpha) }}
{{- $out = append $out (atoi .) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* "true" when the pass pushes metrics. */}}
{{- define "coin-sync.metricsOn" -}}
{{- if .Values.metrics.enabled }}true{{ end }}
{{- end }}

{{/* "true" when the Pushgateway password comes from a Secret (mounted as a file). */}}
{{- define "coin-sync.metricsPassword" -}}
{{- if and .Values.metrics.enabled .Values.metrics.pushgateway.basicAuth.existingSecret.name }}true{{ end }}
{{- end }}

{{/*
The program's metrics settings as an env map (YAML; use with fromYaml); empty without
metrics. The namespace label comes from POD_NAMESPACE, the cronjob label from
CRONJOB_NAME (the CronJob's name, also in Jobs created from it by hand).
*/}}
{{- define "coin-sync.metricsEnv" -}}
{{- if .Values.metrics.enabled }}
{{- $m := .Values.metrics }}
{{- $env := dict
  "METRICS_PUSHGATEWAY_URL" $m.pushgateway.url
  "METRICS_JOB" $m.job
  "CRONJOB_NAME" (include "coin-sync.fullname" .)
}}
{{- with $m.pushgateway.basicAuth.username }}
{{- $_ := set $env "METRICS_PUSHGATEWAY_USERNAME" . }}
{{- end }}
{{- toYaml $env }}
{{- end }}
{{- end }}

{{/*
Seconds between two passes: metrics.intervalSeconds, else from `schedule` for the
forms whose interval is constant. Anything else fails with a message.
*/}}
{{- define "coin-sync.scheduleSeconds" -}}
{{- if ne .Values.metrics.intervalSeconds nil }}
{{- int64 .Values.metrics.intervalSeconds }}
{{- else }}
{{- $s := .Values.schedule | trim }}
{{- $macros := dict "@hourly" 3600 "@daily" 86400 "@midnight" 86400 "@weekly" 604800 }}
{{- $f := regexSplit "\\s+" $s -1 }}
{{- $n := "^[0-9]+$" }}
{{- $step := "^\\*/[0-9]+$" }}
{{- $out := 0 }}
{{- if hasKey $macros $s }}
{{- $out = index $macros $s }}
{{- else if and (eq (len $f) 5) (eq (index $f 2) "*") (eq (index $f 3) "*") (eq (index $f 4) "*") }}
{{- $min := index $f 0 }}
{{- $hour := index $f 1 }}
{{- if and (eq $min "*") (eq $hour "*") }}
{{- $out = 60 }}
{{- else if and (regexMatch $step $min) (eq $hour "*") (eq (mod 60 (int (trimPrefix "*/" $min))) 0) }}
{{- $out = mul 60 (int (trimPrefix "*/" $min)) }}
{{- else if and (regexMatch $n $min) (eq $hour "*") }}
{{- $out = 3600 }}
{{- else if and (regexMatch $n $min) (regexMatch $step $hour) (eq (mod 24 (int (trimPrefix "*/" $hour))) 0) }}
{{- $out = mul 3600 (int (trimPrefix "*/" $hour)) }}
{{- else if and (regexMatch $n $min) (regexMatch $n $hour) }}
{{- $out = 86400 }}
{{- end }}
{{- end }}
{{- $out }}
{{- end }}
{{- end }}

{{/* The same, or a fail: the alerts and the dashboard cannot do without it. */}}
{{- define "coin-sync.intervalSeconds" -}}
{{- $out := include "coin-sync.scheduleSeconds" . | int64 }}
{{- if not $out }}
{{- fail (printf "metrics: no se puede deducir el intervalo entre pasadas de schedule %q (las alertas y el dashboard lo necesitan): indica metrics.intervalSeconds" (.Values.schedule | trim)) }}
{{- end }}
{{- $out }}
{{- end }}

{{/* Age in seconds above which a symbol's data is stale (alerts, ratio, dashboard). */}}
{{- define "coin-sync.staleAgeSeconds" -}}
{{- $t := .Values.metrics.prometheusRule.rules.CoinSyncSymbolStale.thresholdSeconds }}
{{- if ne $t nil }}
{{- include "coin-sync.num" $t }}
{{- else }}
{{- include "coin-sync.num" (addf (include "coin-sync.effective" (list . "STALE_AFTER_SECONDS" .Values.config.staleAfterSeconds) | float64) 60.0) }}
{{- end }}
{{- end }}

{{/* Window in seconds of CoinSyncNoRecentSuccess: two intervals plus the margin. */}}
{{- define "coin-sync.successWindowSeconds" -}}
{{- $r := .Values.metrics.prometheusRule.rules.CoinSyncNoRecentSuccess }}
{{- if ne $r.windowSeconds nil }}
{{- include "coin-sync.num" $r.windowSeconds }}
{{- else }}
{{- include "coin-sync.num" (addf (mulf 2.0 (include "coin-sync.intervalSeconds" . | float64)) ($r.marginSeconds | float64)) }}
{{- end }}
{{- end }}

{{/* PromQL label matchers of this release's pushed series. */}}
{{- define "coin-sync.metricsSelector" -}}
{{- printf "job=%q, namespace=%q, cronjob=%q" .Values.metrics.job .Release.Namespace (include "coin-sync.fullname" .) }}
{{- end }}

{{/* PromQL label matchers of this release's CronJob in kube-state-metrics. */}}
{{- define "coin-sync.cronJobSelector" -}}
{{- printf "namespace=%q, cronjob=%q" .Release.Namespace (include "coin-sync.fullname" .) }}
{{- end }}

{{/* Checks of the metrics values the schema cannot express. */}}
{{- define "coin-sync.validateMetrics" -}}
{{- $m := .Values.metrics }}
{{- if $m.enabled }}
{{- if not $m.pushgateway.url }}
{{- fail "metrics.pushgateway.url está vacío: con metrics.enabled cada pasada empuja sus métricas a un Pushgateway; indica su URL, p. ej. --set metrics.pushgateway.url=http://prometheus-pushgateway.monitoring:9091" }}
{{- end }}
{{- $auth := $m.pushgateway.basicAuth }}
{{- if and $auth.username (not $auth.existingSecret.name) }}
{{- fail "metrics.pushgateway.basicAuth.username sin metrics.pushgateway.basicAuth.existingSecret.name: la contraseña del Pushgateway viene de un Secret existente (nunca de un valor ni de un ConfigMap)" }}
{{- end }}
{{- if and $auth.existingSecret.name (not $auth.username) }}
{{- fail "metrics.pushgateway.basicAuth.existingSecret.name sin metrics.pushgateway.basicAuth.username: indica el usuario de la autenticación básica" }}
{{- end }}
{{- else if or $m.prometheusRule.enabled $m.grafanaDashboard.enabled }}
{{- fail "metrics.prometheusRule.enabled y metrics.grafanaDashboard.enabled necesitan metrics.enabled (y metrics.pushgateway.url): sin métricas, las alertas y el dashboard no tendrían datos" }}
{{- end }}
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
