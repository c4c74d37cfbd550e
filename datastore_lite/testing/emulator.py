"""Start and stop Google's Cloud Datastore emulator (for differential tests and benchmarks).

Example::

    from datastore_lite.testing.emulator import Emulator, emulator_installed

    if emulator_installed():
        with Emulator(consistency=1.0) as emu:
            client = emu.client(project="diff")        # google.cloud.datastore.Client
            ...

The emulator is a Java program shipped with the Google Cloud SDK
(``/usr/lib/google-cloud-sdk/platform/cloud-datastore-emulator/``); each ``Emulator`` runs
its own instance on a free port with its own project directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.request
from types import TracebackType
from typing import Any

__all__ = ["EMULATOR_BINARY", "Emulator", "emulator_installed"]

EMULATOR_BINARY = os.environ.get(
    "DATASTORE_LITE_EMULATOR",
    "/usr/lib/google-cloud-sdk/platform/cloud-datastore-emulator/cloud_datastore_emulator",
)


def emulator_installed() -> bool:
    """True when the emulator and a Java runtime are available."""
    return os.path.exists(EMULATOR_BINARY) and shutil.which("java") is not None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Emulator:
    """One running Cloud Datastore emulator.

    Args:
        consistency: ``--consistency`` (fraction of job applications that succeed).
        require_indexes: Pass ``--require_indexes``.
        index_file: Pass ``--index_file=<path>``.
        auto_id_policy: ``"SCATTERED"`` or ``"SEQUENTIAL"`` (emulator default: sequential
            for commits with partial keys).
        store_on_disk: Keep data on disk (default: memory only, like ``--testing``).
        startup_timeout: Seconds to wait for the emulator to answer.
    """

    def __init__(
        self,
        consistency: float = 1.0,
        *,
        require_indexes: bool = False,
        index_file: str | None = None,
        auto_id_policy: str | None = None,
        store_on_disk: bool = False,
        startup_timeout: float = 90.0,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.consistency = consistency
        self.require_indexes = require_indexes
        self.index_file = index_file
        self.auto_id_policy = auto_id_policy
        self.store_on_disk = store_on_disk
        self.startup_timeout = startup_timeout
        self.extra_args = extra_args
        self.port = 0
        self.directory = ""
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    @property
    def host(self) -> str:
        """``host:port`` for ``DATASTORE_EMULATOR_HOST``."""
        return f"localhost:{self.port}"

    def start(self) -> Emulator:
        if not emulator_installed():
            raise RuntimeError(f"the Datastore emulator is not installed ({EMULATOR_BINARY})")
        self.port = _free_port()
        self.directory = tempfile.mkdtemp(prefix="dl-emulator-")
        args = [
            EMULATOR_BINARY,
            "start",
            "--host=localhost",
            f"--port={self.port}",
            f"--consistency={self.consistency}",
            f"--store_on_disk={'true' if self.store_on_disk else 'false'}",
        ]
        if self.require_indexes:
            args.append("--require_indexes")
        if self.index_file:
            args.append(f"--index_file={self.index_file}")
        if self.auto_id_policy:
            args.append(f"--auto_id_policy={self.auto_id_policy}")
        args.extend(self.extra_args)
        args.append(self.directory)
        self._log = open(os.path.join(self.directory, "emulator.log"), "wb")  # noqa: SIM115
        # --store_on_disk=false still needs a project directory; `create` makes one.
        subprocess.run(
            [EMULATOR_BINARY, "create", "--project_id=emulator-project", self.directory],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            check=False,
        )
        self._process = subprocess.Popen(
            args, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + self.startup_timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"the emulator exited early; see {self.directory}/emulator.log")
            try:
                with urllib.request.urlopen(f"http://{self.host}/", timeout=1) as response:
                    if response.status == 200:
                        return self
            except Exception:
                time.sleep(0.25)
        self.stop()
        raise RuntimeError("the emulator did not start in time")

    def reset(self) -> None:
        """Drop all data (``POST /reset``)."""
        request = urllib.request.Request(f"http://{self.host}/reset", data=b"", method="POST")
        with urllib.request.urlopen(request, timeout=10):
            pass

    def client(self, project: str = "emulator-project", **kwargs: Any) -> Any:
        """A ``google.cloud.datastore.Client`` talking to this emulator."""
        from google.cloud import datastore

        # The official client uses anonymous credentials and this host while the variable
        # is set at construction; it is removed again so it cannot leak into other code.
        previous = os.environ.get("DATASTORE_EMULATOR_HOST")
        os.environ["DATASTORE_EMULATOR_HOST"] = self.host
        try:
            return datastore.Client(project=project, **kwargs)  # type: ignore[no-untyped-call]
        finally:
            if previous is None:
                os.environ.pop("DATASTORE_EMULATOR_HOST", None)
            else:
                os.environ["DATASTORE_EMULATOR_HOST"] = previous

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is not None and process.poll() is None:
            try:
                os.killpg(process.pid, 15)
                process.wait(timeout=15)
            except Exception:
                try:
                    os.killpg(process.pid, 9)
                except Exception:
                    pass
        if self._log is not None:
            self._log.close()
            self._log = None
        if self.directory:
            shutil.rmtree(self.directory, ignore_errors=True)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
