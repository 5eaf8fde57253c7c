"""Kubernetes-native runtime for one pass: a run lock (a coordination.k8s.io/v1 Lease),
one Event per pass and a status record (a ConfigMap with the last pass of each shard,
which also keeps each shard's ambiguous syncs from one pod to the next).

Only active in a cluster (K8S_INTEGRATION=auto, KUBERNETES_SERVICE_HOST set and a
service-account token mounted) or with K8S_INTEGRATION=on (outside a cluster, through the
kubeconfig). `kubernetes` is imported lazily, inside the active path only: it costs
~0.7 s of imports, and a pass outside a cluster must stay as fast as without it.

Everything here is best effort. The lock fails open (the pass runs without it, with one
WARNING) unless K8S_LOCK_REQUIRED=true; Events and the status record never change the
exit code: each failure is one WARNING in Spanish, never an exception.

Usage (coin_sync/session.py)::

    guard = open_guard(settings, log, os.environ, required=required)  # K8S_LOCK_REQUIRED
    outcome = guard.acquire()  # .state: "acquired" | "held" | "unavailable" | "inactive"
    ...                        # run the pass, or end it at once (held; unavailable + required)
    guard.finish(report)       # release the Lease, then status record, then Event

One job per module:

    loading.py  whether the integration is on, the API client, the pod's identity
    api.py      the API calls a pass makes, with timeouts and typed, worded errors
    lease.py    the Lease lock: acquire, renew, release
    report.py   the Event and the status record (its fields: see there)
    state.py    the ambiguous syncs across passes, in the status ConfigMap (ambiguous-<index>)
    guard.py    the guards, composing lock and report; the finish order

The status record as a table, one row per shard: README, "Registro de estado" (the jq
program lives there only, and tests/k8s runs it from there).
"""

from coin_sync.k8s.guard import open_guard

__all__ = ["open_guard"]
