"""values.schema.json: mistakes fail `helm template` with a message, not silently."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from .helm import Helm

# (values YAML, text the error must contain)
REJECTED = {
    "typo-top-level": ("sheduel: '* * * * *'\n", "sheduel"),
    "typo-nested": ("config:\n  logLevl: DEBUG\n", "logLevl"),
    "shards-string": ("shards: two\n", "/shards"),
    "shards-float": ("shards: 2.5\n", "/shards"),
    "shards-zero": ("shards: 0\n", "/shards"),
    "shards-too-many": ("shards: 1000\n", "/shards"),
    "backoff-negative": ("backoffLimit: -1\n", "/backoffLimit"),
    "history-negative": ("successfulJobsHistoryLimit: -1\n", "/successfulJobsHistoryLimit"),
    "failed-history-negative": ("failedJobsHistoryLimit: -3\n", "/failedJobsHistoryLimit"),
    "ttl-negative": ("ttlSecondsAfterFinished: -5\n", "/ttlSecondsAfterFinished"),
    "ttl-string": ("ttlSecondsAfterFinished: '3600'\n", "/ttlSecondsAfterFinished"),
    "active-deadline-zero": ("activeDeadlineSeconds: 0\n", "/activeDeadlineSeconds"),
    "starting-deadline-zero": ("startingDeadlineSeconds: 0\n", "/startingDeadlineSeconds"),
    "grace-zero": ("terminationGracePeriodSeconds: 0\n", "/terminationGracePeriodSeconds"),
    "per-index-negative": ("backoffLimitPerIndex: -1\n", "/backoffLimitPerIndex"),
    "suspend-string": ("suspend: 'yes'\n", "/suspend"),
    "concurrency-enum": ("concurrencyPolicy: forbid\n", "/concurrencyPolicy"),
    "schedule-garbage": ("schedule: every minute\n", "/schedule"),
    "schedule-empty": ("schedule: ''\n", "/schedule"),
    "timezone-spaces": ("timeZone: Madrid time\n", "/timeZone"),
    "pull-policy": ("image:\n  pullPolicy: Sometimes\n", "/image/pullPolicy"),
    "digest": ("image:\n  digest: abc\n", "/image/digest"),
    "tag-float": ("image:\n  tag: 1.5\n", "/image/tag"),
    "tag-negative": ("image:\n  tag: -1\n", "/image/tag"),
    "tag-bad-string": ("image:\n  tag: 'v1 beta'\n", "/image/tag"),
    "backend-url": ("backend:\n  url: ftp://backend\n", "/backend/url"),
    "backend-url-empty": ("backend:\n  url: ''\n", "/backend/url"),
    "http-timeout-zero": ("config:\n  HTTP_TIMEOUT: 0\n", "/config/HTTP_TIMEOUT"),
    "http-timeout-string": ("config:\n  HTTP_TIMEOUT: slow\n", "/config/HTTP_TIMEOUT"),
    "http-timeout-zero-string": ("config:\n  HTTP_TIMEOUT: '0'\n", "/config/HTTP_TIMEOUT"),
    "grace-negative-string": (
        "config:\n  SHUTDOWN_GRACE_SECONDS: '-1'\n",
        "/config/SHUTDOWN_GRACE_SECONDS",
    ),
    "retries-negative": ("config:\n  MAX_RETRIES: -1\n", "/config/MAX_RETRIES"),
    "retries-float": ("config:\n  MAX_RETRIES: 1.5\n", "/config/MAX_RETRIES"),
    "delay-negative": ("config:\n  RETRY_DELAY_SECONDS: -0.5\n", "/config/RETRY_DELAY_SECONDS"),
    "concurrency-zero": ("config:\n  SYNC_CONCURRENCY: 0\n", "/config/SYNC_CONCURRENCY"),
    "log-level": ("config:\n  LOG_LEVEL: VERBOSE\n", "/config/LOG_LEVEL"),
    "log-format": ("config:\n  LOG_FORMAT: xml\n", "/config/LOG_FORMAT"),
    "log-dir-relative": ("config:\n  LOG_DIR: logs\n", "/config/LOG_DIR"),
    "pass-deadline-negative": ("config:\n  PASS_DEADLINE_SECONDS: -1\n", "/config/PASS_DEADLINE_SECONDS"),
    "config-token": ("config:\n  BACKEND_TOKEN: secret\n", "BACKEND_TOKEN"),
    "config-unknown": ("config:\n  HTTP_TIMEOUTS: 3\n", "HTTP_TIMEOUTS"),
    "config-type": ("config:\n  MAX_RETRIES: many\n", "/config/MAX_RETRIES"),
    # The names before 0.3: one surface now, config.<ENV_NAME>.
    "config-file-gone": ("configFile:\n  HTTP_TIMEOUT: 3\n", "configFile"),
    "config-camel-case-gone": ("config:\n  httpTimeout: 3\n", "httpTimeout"),
    "exit-code-zero": ("podFailurePolicy:\n  failOnExitCodes: [0]\n", "/podFailurePolicy"),
    "exit-code-big": ("podFailurePolicy:\n  ignoreExitCodes: [256]\n", "/podFailurePolicy"),
    "exit-code-dup": ("podFailurePolicy:\n  failOnExitCodes: [2, 2]\n", "/podFailurePolicy"),
    "rule-action": (
        "podFailurePolicy:\n  extraRules:\n    - action: Retry\n",
        "/podFailurePolicy/extraRules",
    ),
    "integration-mode": ("kubernetes:\n  integration:\n    mode: maybe\n", "mode"),
    "lock-required-string": (
        "kubernetes:\n  integration:\n    lockRequired: 'true'\n",
        "lockRequired",
    ),
    "lease-zero": ("kubernetes:\n  integration:\n    leaseDurationSeconds: 0\n", "leaseDuration"),
    "api-cidr": ("networkPolicy:\n  apiServer:\n    cidrs: [10.0.0.1]\n", "cidrs"),
    "backend-port": ("networkPolicy:\n  backend:\n    ports: [70000]\n", "ports"),
    "access-mode": ("logs:\n  persistence:\n    accessModes: [ReadWriteSometimes]\n", "accessModes"),
    "size-limit": ("tmp:\n  sizeLimit: lots\n", "/tmp/sizeLimit"),
    "labels-not-strings": ("podLabels:\n  team: 3\n", "/podLabels"),
    "extra-env-no-name": ("extraEnv:\n  - value: x\n", "/extraEnv"),
    "fullname-too-long": ("fullnameOverride: " + "a" * 53 + "\n", "/fullnameOverride"),
    "secret-name": ("backend:\n  existingSecret:\n    name: Bad_Name\n", "/backend/existingSecret"),
    # Monitoring (metrics.*) and the chart-wide extras.
    "metrics-typo": ("metrics:\n  enabeld: true\n", "enabeld"),
    "metrics-enabled-string": ("metrics:\n  enabled: 'yes'\n", "/metrics/enabled"),
    "pushgateway-url": ("metrics:\n  pushgateway:\n    url: pushgateway:9091\n", "/metrics/pushgateway/url"),
    "job-slash": ("metrics:\n  job: a/b\n", "/metrics/job"),
    "interval-zero": ("metrics:\n  intervalSeconds: 0\n", "/metrics/intervalSeconds"),
    "rule-name-typo": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncSymbolStal:\n        for: 5m\n",
        "CoinSyncSymbolStal",
    ),
    "rule-key-typo": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncSymbolStale:\n        threshold: 5\n",
        "threshold",
    ),
    "rule-for": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncSymbolStale:\n        for: 5 minutes\n",
        "/metrics/prometheusRule/rules/CoinSyncSymbolStale/for",
    ),
    "rule-for-empty": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncBackendUnavailable:\n        for: ''\n",
        "/metrics/prometheusRule/rules/CoinSyncBackendUnavailable/for",
    ),
    "rule-severity": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncConfigError:\n        severity: ''\n",
        "/metrics/prometheusRule/rules/CoinSyncConfigError/severity",
    ),
    "objective": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncFreshnessBudget:\n        objective: 99\n",
        "/metrics/prometheusRule/rules/CoinSyncFreshnessBudget/objective",
    ),
    "ratio-zero": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncPassTooSlow:\n        intervalRatio: 0\n",
        "/metrics/prometheusRule/rules/CoinSyncPassTooSlow/intervalRatio",
    ),
    "threshold-string": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncSymbolStale:\n        thresholdSeconds: soon\n",
        "/metrics/prometheusRule/rules/CoinSyncSymbolStale/thresholdSeconds",
    ),
    "runbook-url": ("metrics:\n  prometheusRule:\n    runbookUrl: README.md\n", "/metrics/prometheusRule/runbookUrl"),
    "additional-rule-no-expr": (
        "metrics:\n  prometheusRule:\n    additionalRules:\n      - alert: X\n",
        "/metrics/prometheusRule/additionalRules",
    ),
    "additional-rule-typo": (
        "metrics:\n  prometheusRule:\n    additionalRules:\n"
        "      - alert: X\n        expr: vector(1)\n        lables: {}\n",
        "lables",
    ),
    "gaps-threshold-negative": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncSymbolGaps:\n        thresholdMinutes: -1\n",
        "/metrics/prometheusRule/rules/CoinSyncSymbolGaps/thresholdMinutes",
    ),
    "gaps-threshold-text": (
        "metrics:\n  prometheusRule:\n    rules:\n      CoinSyncSymbolGaps:\n        thresholdMinutes: 1.5\n",
        "/metrics/prometheusRule/rules/CoinSyncSymbolGaps/thresholdMinutes",
    ),
    "dashboard-label-value": (
        "metrics:\n  grafanaDashboard:\n    labelValue: 1\n",
        "/metrics/grafanaDashboard/labelValue",
    ),
    "pushgateway-secret-name": (
        "metrics:\n  pushgateway:\n    basicAuth:\n      existingSecret:\n        name: Bad_Name\n",
        "/metrics/pushgateway/basicAuth/existingSecret/name",
    ),
    "stale-after-zero": ("config:\n  STALE_AFTER_SECONDS: 0\n", "/config/STALE_AFTER_SECONDS"),
    "fail-on-stale-string": ("config:\n  FAIL_ON_STALE: 'true'\n", "/config/FAIL_ON_STALE"),
    "config-stale-text": ("config:\n  STALE_AFTER_SECONDS: never\n", "/config/STALE_AFTER_SECONDS"),
    "common-labels": ("commonLabels:\n  team: 3\n", "/commonLabels"),
    "dns-policy": ("dnsPolicy: ClusterFirstWithoutHostNet\n", "/dnsPolicy"),
    "dns-config-typo": ("dnsConfig:\n  nameserver: [1.1.1.1]\n", "nameserver"),
    "host-alias-no-ip": ("hostAliases:\n  - hostnames: [a]\n", "/hostAliases"),
    "init-container-no-image": ("initContainers:\n  - name: x\n", "/initContainers"),
    "extra-object-number": ("extraObjects:\n  - 3\n", "/extraObjects"),
    "pushgateway-peer": ("networkPolicy:\n  pushgateway:\n    to: [{}]\n", "/networkPolicy/pushgateway/to"),
}


@pytest.mark.parametrize("case", sorted(REJECTED))
def test_schema_rejects(helm: Helm, values_file: Callable[..., Path], case: str) -> None:
    text, message = REJECTED[case]
    result = helm.template(values_file(text))
    assert result.returncode != 0, f"{case}: helm template aceptó\n{text}"
    assert "schema" in result.stderr, result.stderr
    assert message in result.stderr, result.stderr


def test_schema_rejects_typo_on_the_command_line(helm: Helm) -> None:
    result = helm.template(set_values=["sheduel=*/5 * * * *"])
    assert result.returncode != 0
    assert "additional properties 'sheduel' not allowed" in result.stderr


def test_schema_rejects_string_shards_on_the_command_line(helm: Helm) -> None:
    result = helm.template(set_values=["shards=two"])
    assert result.returncode != 0
    assert "/shards" in result.stderr


@pytest.mark.parametrize(
    "text",
    [
        "global:\n  imageRegistry: example.com\n",
        "startingDeadlineSeconds: null\nactiveDeadlineSeconds: null\nttlSecondsAfterFinished: null\n",
        "schedule: '@hourly'\n",
        "schedule: '0 */2 * * 1-5'\ntimeZone: America/Argentina/Buenos_Aires\n",
        "config:\n  SYMBOLS_TO_SYNC: [BTCUSDT, ETHUSDT]\n",
        "config:\n  HTTP_TIMEOUT: 0.5\n  RETRY_DELAY_SECONDS: 0\n",
        # What `--set config.HTTP_TIMEOUT=0.5` hands the schema: numeric strings.
        "config:\n  HTTP_TIMEOUT: '0.5'\n  SHUTDOWN_GRACE_SECONDS: '19.5'\n  RETRY_DELAY_SECONDS: '0'\n",
        # null: not rendered, the program decides.
        "config:\n  PASS_BUDGET_SECONDS: null\n  AMBIGUOUS_HOLD_SECONDS: null\n  SUMMARY_FILE: null\n",
        # What `--set image.tag=5326041` hands it: an integer.
        "image:\n  tag: 5326041\n",
        "backend:\n  url: https://api.example.com:8443/base\n",
        "logs:\n  persistence:\n    storageClass: '-'\n    enabled: true\n",
        "networkPolicy:\n  apiServer:\n    cidrs: [10.0.0.0/8, 'fd00::/8']\n",
    ],
)
def test_schema_accepts(helm: Helm, values_file: Callable[..., Path], text: str) -> None:
    helm.template(values_file(text)).check()


@pytest.mark.parametrize(
    "setting",
    ["image.tag=5326041", "config.HTTP_TIMEOUT=0.5", "config.SHUTDOWN_GRACE_SECONDS=19.5"],
)
def test_schema_accepts_what_set_types(helm: Helm, setting: str) -> None:
    """strvals (helm v3 and v4) makes 5326041 an int64 and 0.5 the string "0.5"."""
    helm.template(set_values=[setting]).check()
