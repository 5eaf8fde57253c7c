"""`python -m coin_sync loop` end to end: the real CLI, real passes, the fake backend.

What docker compose runs (`command: ["loop"]`), minus the container.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from container_support import REPO_ROOT, LineProcess

from coin_sync.config import setting_names
from fake_backend import FakeBackend, hang, ok


def loop_env(backend: FakeBackend, tmp_path: Path, **settings: str) -> dict[str, str]:
    # Nothing of the caller's coin-sync settings (a CI runner may export BACKEND_URL...).
    env = {k: v for k, v in os.environ.items() if k not in setting_names() and k != "CONFIG_FILE"}
    env.update(
        BACKEND_URL=backend.url,
        SYNC_INTERVAL_SECONDS="1",
        LOG_DIR=str(tmp_path / "logs"),
        BACKEND_WAIT_SECONDS="2",
        RETRY_DELAY_SECONDS="0",
        K8S_INTEGRATION="off",
        PYTHONUNBUFFERED="1",
    )
    env.update(settings)
    return env


def start_loop(env: dict[str, str]) -> LineProcess:
    return LineProcess([sys.executable, "-m", "coin_sync", "loop"], env=env, cwd=REPO_ROOT)


def inicio(n: int) -> str:
    return rf"INICIO DE SINCRONIZACIÓN #{n}\b"


def test_three_passes_numbered_in_3_5_s_and_sigterm_exits_0_within_2_s(
    fake_backend: FakeBackend, tmp_path: Path
) -> None:
    with start_loop(loop_env(fake_backend, tmp_path)) as proc:
        third = proc.wait_for(inicio(3), timeout=3.5)
        assert third - proc.started <= 3.5
        starts = [proc.wait_for(inicio(n), 0) for n in (1, 2, 3)]
        assert starts == sorted(starts)
        for n in (1, 2):
            proc.wait_for(rf"FIN DE SINCRONIZACIÓN #{n}\b", 0)
            proc.wait_for(rf"Pasada #{n} terminada con código 0\b", 0)
        # Pass 3 complete too, then the signal lands while the loop sleeps (a signal
        # in the middle of a pass has its own test below).
        proc.wait_for(r"Pasada #3 terminada con código 0\b", timeout=3)

        sent = proc.send_signal()
        code = proc.wait(timeout=5)
        assert code == 0, proc.output
        assert time.monotonic() - sent <= 2.0
        assert all(t < sent for t in proc.times(r"INICIO DE SINCRONIZACIÓN #"))  # no pass after it

    assert len(fake_backend.sync_calls()) >= 9  # 3 symbols x 3 passes
    # The loop's own lines go to the dated files too (logs of the loop and of every pass).
    files = list((tmp_path / "logs").glob("coin_sync_*.txt"))
    assert any("Pasada #1 terminada con código 0" in f.read_text(encoding="utf-8") for f in files)


def test_sigterm_mid_pass_is_forwarded_and_the_pass_finishes_within_grace(
    fake_backend: FakeBackend, tmp_path: Path
) -> None:
    # Pass 2's BTCUSDT hangs far longer than the grace.
    fake_backend.script("BTCUSDT", ok(), hang(10), ok())
    env = loop_env(fake_backend, tmp_path, SHUTDOWN_GRACE_SECONDS="1")
    with start_loop(env) as proc:
        proc.wait_for(inicio(2), timeout=5)
        deadline = time.monotonic() + 3
        while len(fake_backend.sync_calls("BTCUSDT")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(fake_backend.sync_calls("BTCUSDT")) == 2

        sent = proc.send_signal()
        code = proc.wait(timeout=5)
        took = time.monotonic() - sent

    assert code == 0, proc.output
    assert took <= 2.0  # SHUTDOWN_GRACE_SECONDS + 1
    # The pass got the signal, stopped as the core issue says, and no pass followed.
    assert proc.times(r"FIN DE SINCRONIZACIÓN #2\b"), proc.output
    assert proc.times(r"Pasada #2 terminada con código 143\b"), proc.output
    assert not proc.times(inicio(3))


def test_a_pass_that_overruns_is_followed_at_once_without_a_burst(
    fake_backend: FakeBackend, tmp_path: Path
) -> None:
    # Pass 1 takes ~2.2 s with a 1 s interval: the ticks at 1 s and 2 s are missed.
    fake_backend.script("BTCUSDT", hang(2.2), ok())
    # DEBUG shows the loop's own "Pasada #N iniciada" lines: the schedule as the loop
    # keeps it, without each new interpreter's start-up time in between.
    with start_loop(loop_env(fake_backend, tmp_path, LOG_LEVEL="DEBUG")) as proc:
        proc.wait_for(inicio(4), timeout=8)
        proc.send_signal()
        assert proc.wait(timeout=5) == 0, proc.output

    end1 = proc.times(r"Pasada #1 terminada con código 0\b")[0]
    start2, start3, start4 = (proc.times(rf"Pasada #{n} iniciada\b")[0] for n in (2, 3, 4))
    assert start2 - end1 < 0.1  # at once
    # Then every second again, start to start; a burst would start 3 as soon as 2 ends.
    assert start3 - start2 >= 0.95
    assert start4 - start3 >= 0.95
    assert proc.times(r"La pasada #1 duró .* más que el intervalo"), proc.output


def test_a_pass_that_exits_2_stops_the_loop_with_2(fake_backend: FakeBackend, tmp_path: Path) -> None:
    # The configuration goes bad while the loop runs: every later pass would fail alike.
    config = tmp_path / "coin-sync.yaml"
    config.write_text("LOG_LEVEL: INFO\n", encoding="utf-8")
    env = loop_env(fake_backend, tmp_path, CONFIG_FILE=str(config), SYNC_INTERVAL_SECONDS="2")
    with start_loop(env) as proc:
        proc.wait_for(r"Pasada #1 terminada con código 0\b", timeout=5)
        config.write_text("LOG_LEVEL: INFO\nNOT_A_SETTING: 1\n", encoding="utf-8")
        code = proc.wait(timeout=6)

    assert code == 2, proc.output
    assert proc.times(r"Pasada #2 terminada con código 2\b"), proc.output
    assert proc.times(r"NOT_A_SETTING"), proc.output  # the pass said why
    assert not proc.times(r"Pasada #3\b")
