"""Running `iocd serve` from the Python suites (tests/clients, tests/api-fuzz): free loopback
ports, start, wait until healthy, stop. A plain module, imported by both."""

import socket
import subprocess
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_healthy(process: subprocess.Popen, url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"iocd exited with {process.returncode}:\n{log.read_text()}")
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"iocd did not become healthy:\n{log.read_text()}")


def serve(
    binary: Path, options: Callable[[list[int]], list[str]], ports: int, env: dict, log: Path
) -> tuple[subprocess.Popen, list[int]]:
    """Starts `iocd serve` with `options(ports)` (the first port is the plain listener), its
    output in `log`, and waits until it answers /health. Ports are found free and then bound by
    iocd: if another process took one, it tries again with others."""
    for _attempt in range(3):
        chosen = [free_port() for _ in range(ports)]
        with open(log, "w") as log_file:
            process = subprocess.Popen(
                [str(binary), "serve", *options(chosen)], env=env,
                stdout=log_file, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            )
        try:
            wait_healthy(process, f"http://127.0.0.1:{chosen[0]}", log)
            return process, chosen
        except RuntimeError:
            process.kill()
            process.wait()
    raise RuntimeError(f"iocd would not start:\n{log.read_text()}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
