"""The photo timeline under a real gunicorn: 4 pre-forked workers, one shared store.

Runs on one SQLite file and on PostgreSQL (``shared_url``), with the app's defaults (legacy
profile, eventually consistent global queries): 8 client threads post 200 photos across 5
users at once; afterwards every photo is in its user's stream exactly once (followed page by
page with cursors), and, once the simulation has applied every pending write, in the global
query exactly once. gunicorn is then stopped with SIGTERM and must exit cleanly.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from datastore_lite import Client

APP_DIR = Path(__file__).resolve().parents[2] / "examples" / "photo_timeline"
WORKERS, THREADS, POSTS_PER_THREAD = 4, 8, 25
USERS = [f"user{n}" for n in range(5)]
PROJECT = "photo-gunicorn"


def _gunicorn() -> str:
    beside = Path(sys.executable).with_name("gunicorn")
    found = str(beside) if beside.exists() else shutil.which("gunicorn")
    if found is None:
        pytest.skip("gunicorn is not installed (pip install -e '.[test]')")
    return found


def _control_socket_options(gunicorn: str) -> list[str]:
    """gunicorn >= 24 opens a control socket at ~/.gunicorn/gunicorn.ctl: one path for
    every server on the machine, so parallel test runs would fight over it."""
    help_text = subprocess.run([gunicorn, "--help"], capture_output=True, text=True).stdout
    return ["--no-control-socket"] if "--no-control-socket" in help_text else []


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def server(shared_url: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """gunicorn -w 4 'app:create_app()' on the store; yields its base URL and log file."""
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATASTORE_", "GOOGLE_"))}
    env.update(DATASTORE_LITE_URL=shared_url, DATASTORE_DATASET=PROJECT, DATASTORE_LITE_SEED="7")
    log_path = tmp_path / "gunicorn.log"
    log = log_path.open("w")
    gunicorn = _gunicorn()
    command = [
        gunicorn,
        *_control_socket_options(gunicorn),
        "-w",
        str(WORKERS),
        "-b",
        f"127.0.0.1:{port}",
        "--chdir",
        str(APP_DIR),
        "--graceful-timeout",
        "20",
        "--access-logfile",
        "-",
        "--access-logformat",
        "access pid=%(p)s %(m)s %(U)s %(s)s",
        "app:create_app()",
    ]
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(proc, base, log_path)
        yield base, log_path
        # a clean stop: SIGTERM, graceful shutdown of every worker, exit code 0
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0, log_path.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        log.close()


def _wait_until_up(proc: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"gunicorn exited with {proc.returncode}:\n{log_path.read_text()}")
        try:
            # the first request of a worker imports nothing more but opens its client
            if requests.get(f"{base}/latest/json/", timeout=30).status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.1)
    pytest.fail(f"gunicorn did not answer within 60 s:\n{log_path.read_text()}")


def _poster(base: str, thread: int, errors: list[str]) -> None:
    with requests.Session() as session:
        for i in range(POSTS_PER_THREAD):
            user = USERS[(thread + i) % len(USERS)]
            caption = f"t{thread}-p{i}"
            files = {"image": (f"{caption}.png", f"image of {caption}".encode(), "image/png")}
            try:
                response = session.post(
                    f"{base}/post/{user}/",
                    data={"caption": caption},
                    files=files,
                    allow_redirects=False,
                    timeout=30,
                )
                if response.status_code != 303:
                    errors.append(f"{caption}: {response.status_code} {response.text[:300]}")
                elif not response.headers["Location"].endswith(f"/user/{user}/json/"):
                    errors.append(f"{caption}: redirected to {response.headers['Location']}")
                elif i % 5 == 0:  # follow some redirects: the stream answers at once
                    stream = session.get(f"{base}/user/{user}/json/", timeout=30)
                    if stream.status_code != 200:
                        errors.append(f"{caption}: stream {stream.status_code}")
            except requests.RequestException as exc:
                errors.append(f"{caption}: {exc!r}")


def _pages(base: str, path: str, limit: int) -> list[dict[str, Any]]:
    photos: list[dict[str, Any]] = []
    cursor: str | None = None
    for _ in range(1000):
        params: dict[str, Any] = {"limit": limit}
        if cursor is not None:
            params["cursor"] = cursor
        response = requests.get(f"{base}{path}", params=params, timeout=30)
        assert response.status_code == 200, response.text
        body = response.json()
        photos.extend(body["results"])
        cursor = body["cursor"]
        if cursor is None:
            return photos
    raise AssertionError("the cursor never ran out")


@pytest.mark.slow
def test_concurrent_posts_under_four_workers_are_all_accounted_for(
    server: tuple[str, Path], shared_url: str
) -> None:
    base, log_path = server
    errors: list[str] = []
    started = time.monotonic()
    threads = [threading.Thread(target=_poster, args=(base, t, errors)) for t in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    elapsed = time.monotonic() - started
    assert not any(thread.is_alive() for thread in threads), "posters hung"
    assert errors == []

    expected = {
        f"t{t}-p{i}": USERS[(t + i) % len(USERS)]
        for t in range(THREADS)
        for i in range(POSTS_PER_THREAD)
    }
    # every photo in its user's stream (ancestor queries: strong), page by page, once
    seen: Counter[str] = Counter()
    for user in USERS:
        stream = _pages(base, f"/user/{user}/json/", limit=7)
        dates = [photo["date"] for photo in stream]
        assert dates == sorted(dates, reverse=True), f"{user}'s stream is not newest first"
        for photo in stream:
            assert photo["user"] == user
            assert expected[photo["caption"]] == user
            seen[photo["caption"]] += 1
    assert set(seen) == set(expected), f"missing: {sorted(set(expected) - set(seen))[:10]}"
    assert [c for c, n in seen.items() if n > 1] == [], "duplicated photos"

    # the images come back byte for byte, whichever worker serves them
    for photo in stream[:5]:
        image = requests.get(f"{base}{photo['image_url']}", timeout=30)
        assert image.content == f"image of {photo['caption']}".encode()

    # the global query catches up once every pending write is applied, and agrees
    app_index = str(APP_DIR / "index.yaml")
    with Client(project=PROJECT, url=shared_url, index_yaml=app_index) as client:
        client.consistency.apply_all()
    latest = Counter(photo["caption"] for photo in _pages(base, "/latest/json/", limit=100))
    assert latest == Counter(list(expected))

    log = log_path.read_text()
    assert "Traceback" not in log, log
    # the posts were spread over the workers, and no worker died and was replaced
    serving = set(re.findall(r"access pid=<?(\d+)>? POST /post/", log))
    assert len(serving) >= 2, log
    assert log.count("Booting worker") == WORKERS, log
    print(
        f"{len(expected)} posts from {THREADS} threads in {elapsed:.1f} s on {len(serving)} workers"
    )
