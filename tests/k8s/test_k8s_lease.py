"""The Lease lock against the API emulator: acquire, renew, release, takeover, and the
races a compare-and-swap must win for exactly one pass."""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from k8s_support import OK_REPORT, OpenGuard, RenewClock, eventually, leases, make_report, settings_and_env, warnings
from kube_api import LEASES, NAMESPACE, ApiServer, lease_body

from coin_sync.k8s.api import KubeApi
from coin_sync.k8s.guard import KubeGuard
from coin_sync.k8s.loading import identity_from, load_api_client
from coin_sync.locks.guard import LockOutcome

RACE_ROUNDS = 10  # nearly every round races (about 3.5 Lease writes per round of 4)
MICRO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$")


class ReadHook(KubeApi):
    """A KubeApi that runs `hook` right after its first Lease read has returned: another
    actor acts between this pass's read and its write."""

    def __init__(self, api_client: Any, namespace: str, hook: Callable[[], None]) -> None:
        super().__init__(api_client, namespace)
        self.hook = hook
        self.reads = 0

    def get_lease(self, name: str) -> dict[str, Any] | None:
        lease = super().get_lease(name)
        self.reads += 1
        if self.reads == 1:
            self.hook()
        return lease


@pytest.fixture
def hooked_guard(kubeconfig: Path, log: logging.Logger, tmp_path: Path) -> Iterator[Callable[..., KubeGuard]]:
    """hooked_guard(hook, NAME=value...): a KubeGuard whose first Lease read runs hook."""
    made: list[KubeGuard] = []

    def make(hook: Callable[[], None], **names: Any) -> KubeGuard:
        settings, env = settings_and_env(names)
        client, _ = load_api_client({"KUBECONFIG": str(kubeconfig)})
        ident = identity_from(env, tmp_path / "no-namespace-file")
        made.append(KubeGuard(ReadHook(client, ident.namespace, hook), ident, settings, log))
        return made[-1]

    yield make
    for guard in made:
        guard.lease.stop_renewing()


def kube(guard: object) -> KubeGuard:
    assert isinstance(guard, KubeGuard)
    return guard


def test_acquire_creates_the_lease_with_the_full_record(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    guard = kube(guard_for())

    assert guard.acquire() == LockOutcome("acquired")

    spec = leases(apiserver)["coin-sync-lock"]["spec"]
    assert spec["holderIdentity"] == guard.lease.holder
    assert guard.lease.holder.startswith("coin-sync-29000000-abcde_")
    assert spec["leaseDurationSeconds"] == 60
    assert spec["leaseTransitions"] == 0
    assert MICRO_TIME.match(spec["acquireTime"]) and MICRO_TIME.match(spec["renewTime"])
    renewed = datetime.fromisoformat(spec["renewTime"].replace("Z", "+00:00"))
    assert abs((datetime.now(UTC) - renewed).total_seconds()) < 5
    # Created, never blindly overwritten.
    assert [(m, n) for m, p, n in apiserver.requests() if p == "leases"] == [("GET", "coin-sync-lock"), ("POST", None)]


def test_renews_every_third_of_the_duration_and_stays_held(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    clock = RenewClock(ticks=3)
    guard = kube(guard_for(LEASE_DURATION_SECONDS=60, clock=clock))
    assert guard.acquire().state == "acquired"
    first = leases(apiserver)["coin-sync-lock"]

    assert clock.parked.wait(10)  # three renewals done, the fourth wait begun

    assert clock.waits == [20.0] * 4
    assert [r for r in apiserver.requests() if r[:2] == ("PUT", "leases")] == [("PUT", "leases", "coin-sync-lock")] * 3
    now = leases(apiserver)["coin-sync-lock"]
    assert now["spec"]["holderIdentity"] == guard.lease.holder
    assert now["spec"]["renewTime"] > first["spec"]["renewTime"]
    assert now["spec"]["acquireTime"] == first["spec"]["acquireTime"]
    assert int(now["metadata"]["resourceVersion"]) > int(first["metadata"]["resourceVersion"])
    # Someone else arriving now still finds a live holder.
    assert guard_for(POD_NAME="other-pod").acquire() == LockOutcome("held", guard.lease.holder)


def test_finish_releases_the_lease_and_the_next_pass_takes_it(
    apiserver: ApiServer, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture
) -> None:
    first = guard_for()
    assert first.acquire().state == "acquired"
    first.finish(make_report(*OK_REPORT))

    spec = leases(apiserver)["coin-sync-lock"]["spec"]
    assert "holderIdentity" not in spec  # cleared
    assert spec["leaseTransitions"] == 0
    assert not warnings(caplog)

    second = kube(guard_for(POD_NAME="next-pod"))
    assert second.acquire() == LockOutcome("acquired")
    spec = leases(apiserver)["coin-sync-lock"]["spec"]
    assert spec["holderIdentity"] == second.lease.holder
    assert spec["leaseTransitions"] == 1


def test_no_renewal_after_finish(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    clock = RenewClock(ticks=10_000, every=0.01)  # renewing as fast as it can
    guard = guard_for(clock=clock)
    guard.acquire()
    assert eventually(lambda: len(clock.waits) > 3)
    guard.finish(make_report(*OK_REPORT))  # joins the renewer
    count = len(apiserver.requests())
    assert not clock.parked.wait(0.3)
    assert len(apiserver.requests()) == count
    assert "holderIdentity" not in leases(apiserver)["coin-sync-lock"]["spec"]


def test_takes_over_an_expired_lease(
    apiserver: ApiServer, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "killed-pod_1", renewed_ago=61, transitions=3))
    guard = kube(guard_for())

    assert guard.acquire() == LockOutcome("acquired")

    lease = leases(apiserver)["coin-sync-lock"]
    assert lease["spec"]["holderIdentity"] == guard.lease.holder
    assert lease["spec"]["leaseTransitions"] == 4
    assert lease["metadata"]["uid"] == "uid-of-coin-sync-lock"  # replaced, not recreated
    assert any("killed-pod_1" in r.getMessage() for r in caplog.records)


def test_expiry_uses_the_holders_own_duration(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    # Renewed 61 s ago but its holder asked for 300 s: still alive, whatever our duration.
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "slow-pod_1", renewed_ago=61, duration=300))
    assert guard_for(LEASE_DURATION_SECONDS=60).acquire() == LockOutcome("held", "slow-pod_1")


def test_losing_the_create_race_means_held(apiserver: ApiServer, hooked_guard: Callable[..., KubeGuard]) -> None:
    """Both read "no Lease"; the other creates it first; our create gets 409."""
    winner = hooked_guard(lambda: None, POD_NAME="winner")
    loser = hooked_guard(lambda: _wins(winner), POD_NAME="loser")

    assert loser.acquire() == LockOutcome("held", winner.lease.holder)
    assert leases(apiserver)["coin-sync-lock"]["spec"]["holderIdentity"] == winner.lease.holder


def test_losing_the_takeover_race_means_held(apiserver: ApiServer, hooked_guard: Callable[..., KubeGuard]) -> None:
    """Both read the same expired Lease; the other replaces it first; our PUT carries the
    resourceVersion we read, now stale, and gets 409 instead of overwriting the winner."""
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "killed-pod_1", renewed_ago=600))
    winner = hooked_guard(lambda: None, POD_NAME="winner")
    loser = hooked_guard(lambda: _wins(winner), POD_NAME="loser")

    assert loser.acquire() == LockOutcome("held", winner.lease.holder)
    assert leases(apiserver)["coin-sync-lock"]["spec"]["holderIdentity"] == winner.lease.holder
    assert [r for r in apiserver.requests() if r[0] == "PUT"] == [("PUT", "leases", "coin-sync-lock")] * 2


def _wins(guard: KubeGuard) -> None:
    assert guard.acquire().state == "acquired"


def test_a_lease_deleted_between_read_and_takeover_is_created_afresh(
    apiserver: ApiServer, hooked_guard: Callable[..., KubeGuard]
) -> None:
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "killed-pod_1", renewed_ago=600))
    guard = hooked_guard(lambda: apiserver.remove(LEASES, NAMESPACE, "coin-sync-lock"))

    assert guard.acquire() == LockOutcome("acquired")

    assert leases(apiserver)["coin-sync-lock"]["spec"]["holderIdentity"] == guard.lease.holder
    writes = [r[0] for r in apiserver.requests() if r[1] == "leases" and r[0] != "GET"]
    assert writes == ["PUT", "POST"]  # the takeover met a 404, then a fresh create
    guard.finish(make_report(*OK_REPORT))


def test_guards_started_together_exactly_one_acquires(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    """Four passes' guards acquire at the same instant, RACE_ROUNDS times, on a fresh Lease
    (even rounds) or on an expired one (odd rounds): exactly one acquires each time, and
    the others name it as the holder."""
    contenders = 4
    for number in range(RACE_ROUNDS):
        name = f"race-{number}"
        if number % 2:
            apiserver.put(LEASES, NAMESPACE, lease_body(name, "killed-pod_1", renewed_ago=600))
        guards = [kube(guard_for(LEASE_NAME=name, POD_NAME=f"pod-{number}-{i}")) for i in range(contenders)]
        start = threading.Barrier(contenders)

        def acquire(guard: KubeGuard, start: threading.Barrier = start) -> LockOutcome:
            start.wait(10)
            return guard.acquire()

        with ThreadPoolExecutor(contenders) as pool:
            outcomes = list(pool.map(acquire, guards))

        states = [o.state for o in outcomes]
        assert sorted(states) == ["acquired"] + ["held"] * (contenders - 1), (number, outcomes)
        winner = guards[states.index("acquired")].lease.holder
        assert all(o.detail == winner for o in outcomes if o.state == "held"), (number, outcomes)
        assert leases(apiserver)[name]["spec"]["holderIdentity"] == winner
    # Losers that wrote (and met a 409) show the passes really overlapped, most rounds.
    lease_writes = [r for r in apiserver.requests() if r[0] in ("POST", "PUT") and r[1] == "leases"]
    assert len(lease_writes) > RACE_ROUNDS, "no round raced: the test proved nothing"


def test_a_lease_taken_away_is_not_renewed_nor_released(
    apiserver: ApiServer, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture
) -> None:
    clock = RenewClock(ticks=10_000, every=0.01)
    guard = guard_for(clock=clock)
    guard.acquire()
    # An operator (or a pass that judged us dead) took it.
    apiserver.put(LEASES, NAMESPACE, lease_body("coin-sync-lock", "thief_1", renewed_ago=0))

    assert eventually(lambda: any("Cerrojo perdido" in w and "thief_1" in w for w in warnings(caplog)))
    guard.finish(make_report(*OK_REPORT))
    assert leases(apiserver)["coin-sync-lock"]["spec"]["holderIdentity"] == "thief_1"
    assert not [r for r in warnings(caplog) if "liberar" in r]


def test_shards_have_their_own_lease(apiserver: ApiServer, guard_for: OpenGuard) -> None:
    shard0 = guard_for(SHARD_COUNT=2, SHARD_INDEX=0)
    shard1 = guard_for(SHARD_COUNT=2, SHARD_INDEX=1, POD_NAME="coin-sync-29000000-fghij")

    assert shard0.acquire().state == "acquired"
    assert shard1.acquire().state == "acquired"
    assert set(leases(apiserver)) == {"coin-sync-lock-0", "coin-sync-lock-1"}


def test_a_failing_renewal_warns_once_per_outage(
    apiserver: ApiServer, guard_for: OpenGuard, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO)
    clock = RenewClock(ticks=10_000, every=0.01)
    guard = kube(guard_for(clock=clock))
    guard.acquire()
    apiserver.emulator.forbidden = {("update", "leases")}
    failed_at = len(clock.waits)
    assert eventually(lambda: len(clock.waits) > failed_at + 5)  # several renewals failed

    apiserver.emulator.forbidden = set()
    assert eventually(lambda: any("Renovación del cerrojo recuperada" in r.getMessage() for r in caplog.records))
    (warning,) = warnings(caplog)
    assert warning.startswith("No se pudo renovar el cerrojo (Lease coin/coin-sync-lock): sin permiso RBAC")
    assert guard.lease.held
