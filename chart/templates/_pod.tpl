{{/* The pod fragments the CronJob and the helm test pod share. */}}

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
envFrom the env ConfigMap): the token and the Pushgateway password files.
*/}}
{{- define "coin-sync.commonEnv" -}}
{{- include "coin-sync.tokenEnv" . }}
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
  mountPath: {{ .Values.config.LOG_DIR }}
- name: tmp
  mountPath: /tmp
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
  emptyDir: {{ include "coin-sync.emptyDir" .Values.tmp.sizeLimit }}
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
  emptyDir: {{ include "coin-sync.emptyDir" .Values.logs.emptyDir.sizeLimit }}
{{- end }}

{{/* An emptyDir's spec as flow YAML: its sizeLimit when set. */}}
{{- define "coin-sync.emptyDir" -}}
{{- with . }}{{ dict "sizeLimit" . | toJson }}{{ else }}{}{{ end }}
{{- end }}

{{/*
Scheduling and pod-level fields shared by the CronJob and the helm test pod, each only
when set (pod field -> value).
*/}}
{{- define "coin-sync.podScheduling" -}}
{{- $v := .Values }}
{{- range $field, $value := dict "imagePullSecrets" $v.imagePullSecrets "securityContext" $v.podSecurityContext "priorityClassName" $v.priorityClassName "nodeSelector" $v.nodeSelector "affinity" $v.affinity "tolerations" $v.tolerations "dnsPolicy" $v.dnsPolicy "dnsConfig" $v.dnsConfig "hostAliases" $v.hostAliases }}
{{- with $value }}
{{ dict $field . | toYaml }}
{{- end }}
{{- end }}
{{- end }}
