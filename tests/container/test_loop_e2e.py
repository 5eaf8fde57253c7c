"""`python -m coin_sync loop` end to end: the real CLI, real passes, the fake backend.

What docker compose runs (`command: ["loop"]`), minus the container. Waits are bounded
(a line or an exit within a generous timeout); time is asserted only as lower bounds.
The exact schedule, grace and kill deadline are proved on virtual time in test_loop.py.
"""

from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path

from container_support import LineProcess, loop_env, start_loop

from fake_backend import FakeBackend, hang, ok


def inicio(n: int) -> str:
    return rf"INICIO DE SINCRONIZACIÓN #{n}\b"


def loop_entries(proc: LineProcess) -> list[tuple[float, str]]:
    """(time, message) of what the loop itself logged, by its own clock and in the order
    it wrote it: one process, so exact whatever the machine's load. Needs LOG_FORMAT=json;
    LOG_LEVEL=DEBUG adds its "Pasada #N iniciada" lines."""
    entries = []
    for line in proc.output.splitlines():
        entry = json.loads(line) if line.startswith("{") else {}
        if entry.get("file") == "wrapper.py":
            entries.append((datetime.fromisoformat(entry["time"]).timestamp(), entry["message"]))
    return entries


def loop_lines(proc: LineProcess) -> list[str]:
    return [message for _, message in loop_entries(proc)]


def loop_time(proc: LineProcess, start: str) -> float:
    return next(t for t, message in loop_entries(proc) if message.startswith(start))


def index_of(lines: list[str], start: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(start))


def test_passes_are_numbered_and_sigterm_ends_the_loop_with_0(fake_backend: FakeBackend, tmp_path: Path) -> None:
    with start_loop(loop_env(fake_backend, tmp_path, LOG_LEVEL="DEBUG")) as proc:
        proc.wait_for(r"Pasada #3 terminada con código 0\b", timeout=30)
        proc.send_signal()
        code = proc.wait(timeout=30)

    assert code == 0, proc.output
    starts = [proc.wait_for(inicio(n), 0) for n in (1, 2, 3)]
    assert starts == sorted(starts)
    assert proc.times(r"INICIO DE SINCRONIZACIÓN #3\b")[0] - proc.started >= 2.0  # an interval apart
    for n in (1, 2, 3):
        proc.wait_for(rf"FIN DE SINCRONIZACIÓN #{n}\b", 0)
    # The signal landed between passes or during pass 4; either way no pass started after
    # the loop saw it, and every pass that started was reaped and logged.
    lines = loop_lines(proc)
    stopped = index_of(lines, "SIGTERM recibida")
    assert not [line for line in lines[stopped:] if " iniciada " in line], lines
    passes = sum(" iniciada " in line for line in lines)
    assert passes >= 3
    assert sum(" terminada con código " in line for line in lines) == passes, lines
    assert lines[-1] == f"Bucle detenido tras {passes} pasada(s)", lines

    assert len(fake_backend.sync_calls()) >= 9  # 3 symbols x 3 passes
    # The loop's own lines go to the dated files too (logs of the loop and of every pass).
    files = list((tmp_path / "logs").glob("coin_sync_*.txt"))
    assert any("Pasada #1 terminada con código 0" in f.read_text(encoding="utf-8") for f in files)


def test_sigterm_mid_pass_is_forwarded_and_the_pass_publishes_its_end(
    fake_backend: FakeBackend, tmp_path: Path
) -> None:
    # Pass 2's BTCUSDT hangs far longer than the grace: the pass itself must give up on it.
    fake_backend.script("BTCUSDT", ok(), hang(30), ok())
    termination = tmp_path / "termination-log"
    termination.write_text("", encoding="utf-8")  # exists and is writable, as in a pod
    env = loop_env(fake_backend, tmp_path, SHUTDOWN_GRACE_SECONDS="1", TERMINATION_MESSAGE_PATH=str(termination))
    with start_loop(env) as proc:
        proc.wait_for(inicio(2), timeout=30)
        deadline = time.monotonic() + 30
        while len(fake_backend.sync_calls("BTCUSDT")) < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert len(fake_backend.sync_calls("BTCUSDT")) == 2

        proc.send_signal()
        code = proc.wait(timeout=30)

    assert code == 0, proc.output
    assert proc.times(r"SIGTERM recibida: se reenvía a la pasada #2, que tiene 1 s para terminar"), proc.output
    # The pass stopped on the forwarded signal within its grace (143, not the loop's 137),
    # wrote its FIN line and termination message, and no pass followed.
    assert proc.times(r"FIN DE SINCRONIZACIÓN #2 \(INTERRUMPIDA por SIGTERM\)"), proc.output
    assert proc.times(r"Pasada #2 terminada con código 143\b"), proc.output
    message = json.loads(termination.read_text(encoding="utf-8"))
    assert (message["pass"], message["exit_code"], message["reason"]) == (2, 143, "interrupted")
    assert not proc.times(inicio(3))
    assert proc.times(r"Bucle detenido tras 2 pasada\(s\)"), proc.output


def test_a_pass_that_overruns_is_followed_at_once_without_a_burst(fake_backend: FakeBackend, tmp_path: Path) -> None:
    # Pass 1 takes over 2.2 s with a 1 s interval: the ticks at 1 s and 2 s are missed.
    fake_backend.script("BTCUSDT", hang(2.2), ok())
    # DEBUG shows the loop's own "Pasada #N iniciada" lines: the schedule as the loop
    # keeps it, timed by the loop, without each new interpreter's start-up in between.
    with start_loop(loop_env(fake_backend, tmp_path, LOG_LEVEL="DEBUG")) as proc:
        proc.wait_for(inicio(4), timeout=30)
        proc.send_signal()
        assert proc.wait(timeout=30) == 0, proc.output

    # At once: the loop went from pass 1's end straight to pass 2, with nothing between.
    lines = loop_lines(proc)
    ended = index_of(lines, "Pasada #1 terminada con código 0")
    assert lines[ended + 1].startswith("La pasada #1 duró "), lines
    assert "más que el intervalo de 1 s: la siguiente empieza ya" in lines[ended + 1]
    assert lines[ended + 2].startswith("Pasada #2 iniciada"), lines
    # Then every second again, start to start; a burst would start 3 as soon as 2 ends.
    start2, start3, start4 = (loop_time(proc, f"Pasada #{n} iniciada") for n in (2, 3, 4))
    assert start3 - start2 >= 0.99
    assert start4 - start3 >= 0.99


def test_a_pass_that_exits_2_stops_the_loop_with_2(fake_backend: FakeBackend, tmp_path: Path) -> None:
    # The configuration goes bad while the loop runs: every later pass would fail alike.
    config = tmp_path / "coin-sync.yaml"
    config.write_text("LOG_LEVEL: INFO\n", encoding="utf-8")
    env = loop_env(fake_backend, tmp_path, CONFIG_FILE=str(config), SYNC_INTERVAL_SECONDS="2")
    with start_loop(env) as proc:
        proc.wait_for(r"Pasada #1 terminada con código 0\b", timeout=30)
        config.write_text("LOG_LEVEL: INFO\nNOT_A_SETTING: 1\n", encoding="utf-8")
        code = proc.wait(timeout=30)

    assert code == 2, proc.output
    assert proc.times(r"Pasada #2 terminada con código 2\b"), proc.output
    assert proc.times(r"NOT_A_SETTING"), proc.output  # the pass said why
    assert proc.times(r"el bucle se detiene"), proc.output
    assert not proc.times(r"Pasada #3\b")


def test_a_three_pass_loop_shows_the_settings_once(fake_backend: FakeBackend, tmp_path: Path) -> None:
    with start_loop(loop_env(fake_backend, tmp_path, LOG_FORMAT="text")) as proc:
        proc.wait_for(r"Pasada #3 terminada con código 0\b", timeout=30)
        proc.send_signal()
        assert proc.wait(timeout=30) == 0, proc.output
    out = proc.output
    assert out.count("SERVICIO DE SINCRONIZACIÓN AUTOMÁTICA") == 1, out
    assert out.count("] - Configuración: ") == 1 and out.count("] -   BACKEND_URL: ") == 1
    assert out.count("INICIO DE SINCRONIZACIÓN #") >= 3  # the passes still say when they start and end
