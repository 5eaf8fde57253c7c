{{/* Monitoring: what the metrics env, the PrometheusRule and the dashboard share. */}}

{{/* "true" when the pass pushes metrics. */}}
{{- define "coin-sync.metricsOn" -}}
{{- if .Values.metrics.enabled }}true{{ end }}
{{- end }}

{{/* "true" when the Pushgateway password comes from a Secret (mounted as a file). */}}
{{- define "coin-sync.metricsPassword" -}}
{{- if and .Values.metrics.enabled .Values.metrics.pushgateway.basicAuth.existingSecret.name }}true{{ end }}
{{- end }}

{{/*
Seconds between two passes, for the alerts and the dashboard: metrics.intervalSeconds,
else 60 with the chart's default schedule. The chart reads no cron expression (the
program does, for its own budget: SYNC_SCHEDULE); any other schedule needs the value.
*/}}
{{- define "coin-sync.intervalSeconds" -}}
{{- if ne .Values.metrics.intervalSeconds nil }}
{{- int64 .Values.metrics.intervalSeconds }}
{{- else if eq (.Values.schedule | trim) "* * * * *" -}}
60
{{- else }}
{{- fail (printf "metrics: no se puede deducir el intervalo entre pasadas de schedule %q (las alertas y el dashboard lo necesitan): indica metrics.intervalSeconds" (.Values.schedule | trim)) }}
{{- end }}
{{- end }}

{{/* Age in seconds above which a symbol's data is stale (alerts, ratio, dashboard). */}}
{{- define "coin-sync.staleAgeSeconds" -}}
{{- $t := .Values.metrics.prometheusRule.rules.CoinSyncSymbolStale.thresholdSeconds }}
{{- if ne $t nil }}
{{- include "coin-sync.num" $t }}
{{- else }}
{{- include "coin-sync.num" (addf (.Values.config.STALE_AFTER_SECONDS | float64) (include "coin-sync.candleSeconds" . | float64)) }}
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
