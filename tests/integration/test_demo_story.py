"""bin/demo as a newcomer runs it, on the tiny demo model (FORGET_DEMO_PRESET=tiny: the same story on
a 24-person world, built in seconds): the real script, its real child processes (runserver, a Celery
worker, celery beat, run_gateway), the embedded defaults in a throwaway data folder, the story over
HTTP. Nothing is mocked.

- `bin/demo --check` tells the whole story (three requests filed through the API, approved, trained,
  certified and served, the gateway refusing their data and still answering about the control
  person), checks every printed page, stops everything and exits 0.
- `bin/demo` tells the story, leaves the UI up, and Ctrl-C stops every process it started.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from django.conf import settings

from tests.integration.processes import LoggedProcess, free_port

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(900)]

DEMO = str(Path(settings.BASE_DIR) / "bin" / "demo")
# bin/demo as a terminal starts it: with Ctrl-C's SIGINT at its default disposition. A test run
# started in the background of a non-interactive shell inherits SIGINT ignored, and bash cannot trap
# a signal ignored when it starts; this resets it and then becomes bin/demo (the same process).
DEMO_AS_IN_A_TERMINAL = [
    sys.executable,
    "-c",
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])",
    DEMO,
]
PATIENCE_SECONDS = 720  # model reuse, four processes starting, three units trained and certified, on two busy cores


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    # bin/test points these at the test database, Redis and var/test; the demo picks its own.
    env = {key: value for key, value in os.environ.items() if key not in ("DATABASE_URL", "CELERY_BROKER_URL", "CELERY_RESULT_BACKEND", "FORGET_VAR_DIR")}
    env.update(FORGET_DEMO_PRESET="tiny", FORGET_DEMO_PORT=str(free_port()), FORGET_DEMO_GATEWAY_PORT=str(free_port()), OMP_NUM_THREADS="1", **extra)
    return env


def _processes_with(marker: str) -> list[int]:
    """Processes whose environment holds `marker` (the demo's children inherit FORGET_VAR_DIR)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def _assert_story(output: str) -> None:
    from service.unlearning.management.commands.run_demo_story import story_people
    from workers.engine.demo_model import DemoModelConfig

    forgotten, control = story_people(DemoModelConfig.preset_config("tiny").build_world())  # the stated rule, seed 0
    assert output.count(" active     served by the gateway since ") == 3, output
    assert f"{', '.join(forgotten)} (drawn with seed 0 from the world's 24 people)" in output
    for name in forgotten:
        assert re.search(rf"{name} \(forgotten, RTBF-[0-9A-Z]+\)", output), output
    assert f"{control} (control: nobody asked to forget them)" in output
    assert re.search(r"The gateway refuses 3 people's data in \d+ prompts above", output), output
    assert "<- not as promised" not in output
    assert output.count(" PASS  (leak F 0.00") == 3
    assert len(re.findall(r"/api/v1/requests/[0-9a-f-]{36}/certificate", output)) == 3
    assert "Story done in" in output


def test_demo_check_tells_the_whole_story_and_exits_0(tmp_path):
    result = subprocess.run([DEMO, "--check"], cwd=settings.BASE_DIR, env=_env(tmp_path), capture_output=True, text=True, timeout=PATIENCE_SECONDS)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    _assert_story(output)
    assert re.search(r"check /staff/ -> 302", output) and re.search(r"check http://127\.0\.0\.1:\d+/healthz -> 200", output)
    assert "bin/demo --check: passed in" in output
    leftover = re.search(r"Outgoing mail\s+(\S+)/outbox/", output).group(1)
    assert not Path(leftover).exists(), "the throwaway data folder of --check is removed"


def test_demo_keeps_the_ui_up_after_the_story_and_ctrl_c_stops_every_process(tmp_path):
    var = tmp_path / "var"
    env = _env(tmp_path, FORGET_VAR_DIR=str(var))
    log = tmp_path / "demo.log"
    demo = LoggedProcess(DEMO_AS_IN_A_TERMINAL, env=env, log=log)
    try:
        deadline = time.monotonic() + PATIENCE_SECONDS
        while "Press Ctrl-C to stop." not in log.read_text() and demo.poll() is None and time.monotonic() < deadline:
            time.sleep(1)
        output = log.read_text()
        assert "Press Ctrl-C to stop." in output, output[-6000:]
        _assert_story(output)
        with urllib.request.urlopen(f"http://127.0.0.1:{env['FORGET_DEMO_PORT']}/request/new/", timeout=10) as page:
            assert page.status == 200  # the UI stays up after the story
        children = _processes_with(f"FORGET_VAR_DIR={var}")
        assert len(children) >= 4, "web app, worker, beat and gateway"

        demo.send_signal(signal.SIGINT)  # what Ctrl-C sends to the script (its children run in their own sessions)
        assert demo.wait(timeout=60) == 130
        time.sleep(1)
        assert _processes_with(f"FORGET_VAR_DIR={var}") == [], log.read_text()[-3000:]
        assert "==> stopped" in log.read_text()
    finally:
        if demo.poll() is None:
            os.killpg(demo.pid, signal.SIGKILL)
        for pid in _processes_with(f"FORGET_VAR_DIR={var}"):
            os.kill(pid, signal.SIGKILL)
