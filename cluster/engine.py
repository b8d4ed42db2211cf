"""What a local cluster of either engine has: a state folder, its processes by id, its REST answers and the
pipeline settings that point the `flink` or `spark` profile at it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sys
import urllib.error
import urllib.request
from pathlib import Path

from cluster import processes

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOOPBACK = "127.0.0.1"
# How long `up` waits for every process to answer before giving up (the JVMs start in a few seconds).
START_TIMEOUT_S = 120.0


def worker_command() -> str:
    """Beam's workers as processes each TaskManager or Spark executor starts: the project's worker boot
    from the environment running this (the project's venv), given as the PROCESS environment's command."""
    boot = Path(sys.executable).parent / "pipeline-beam-worker"
    if not boot.exists():
        raise RuntimeError(f"{boot} not found: run this with the project's environment (.venv/bin/python)")
    return str(boot)


def port_open(port: int, host: str = LOOPBACK) -> bool:
    with socket.socket() as sock:
        sock.settimeout(1)
        return sock.connect_ex((host, port)) == 0


def get_json(url: str, timeout_s: float = 5.0):
    """A REST answer as JSON, or None when nothing answers there."""
    try:
        with urllib.request.urlopen(url, timeout=timeout_s) as response:
            return json.load(response)
    except (urllib.error.URLError, OSError, ValueError):
        return None


# Where `up` records the ports it started on, so that status, env and down need not be told them again.
PORTS_FILE = "ports.json"
# Each engine's state goes to <root>/<engine>: this variable's folder, else tfx_output/cluster. The tests set it,
# so that the recipe's commands (`make cluster-up`, `python -m cluster env`...) find their temporary cluster.
STATE_ROOT_ENV = "CLUSTER_STATE_ROOT"


class LocalCluster:
    """One engine's processes on loopback; subclasses say how to start them and what they report."""

    engine = ""
    ports: dict[str, int] = {}

    def __init__(self, state_dir: Path | str | None = None):
        root = os.environ.get(STATE_ROOT_ENV) or PROJECT_ROOT / "tfx_output" / "cluster"
        self.state_dir = Path(state_dir or Path(root) / self.engine).resolve()

    @classmethod
    def at(cls, state_dir: Path | str | None = None, **ports: int) -> "LocalCluster":
        """The cluster whose state is in `state_dir`, on the ports its last `up` recorded unless given."""
        cluster = cls(state_dir)
        recorded = cluster.state_dir / PORTS_FILE
        saved = json.loads(recorded.read_text()) if recorded.exists() else {}
        return cls(state_dir, **{**saved, **ports})

    # Each engine defines these.
    def _start(self) -> None:
        raise NotImplementedError

    def job_port(self) -> int:
        raise NotImplementedError

    def summary(self) -> dict:
        raise NotImplementedError

    def job_ids(self) -> set[str]:
        """The ids of every job (Flink) or application (Spark) the engine knows."""
        raise NotImplementedError

    def jobs(self, since: set[str] = frozenset()) -> list[dict]:
        """Those jobs but the ones in `since`, oldest first, each with the machines its work ran on."""
        raise NotImplementedError

    def settings(self) -> dict[str, str]:
        """The PIPELINE_* settings that run the pipeline's Beam work on this cluster."""
        return {
            "PIPELINE_BEAM_PROFILE": self.engine,
            "PIPELINE_BEAM_JOB_ENDPOINT": f"{LOOPBACK}:{self.job_port()}",
            "PIPELINE_BEAM_ENVIRONMENT_TYPE": "PROCESS",
            "PIPELINE_BEAM_ENVIRONMENT_CONFIG": json.dumps({"command": worker_command()}),
        }

    def processes(self) -> list[processes.Process]:
        return processes.load(self.state_dir)

    def process(self, name: str) -> processes.Process:
        for process in self.processes():
            if process.name == name:
                return process
        raise KeyError(f"no process {name} in {self.state_dir}")

    def up(self) -> None:
        """Start every process (stopping what an earlier `up` left first), then wait until all answer."""
        self.down()
        for leftover in ("conf", "log", "tmp", "work", "artifacts"):
            shutil.rmtree(self.state_dir / leftover, ignore_errors=True)
        self.state_dir.mkdir(parents=True, exist_ok=True)
        (self.state_dir / PORTS_FILE).write_text(json.dumps(self.ports))
        try:
            self._start()
        except BaseException:
            self.down()
            raise

    def down(self) -> list[str]:
        """Stop every recorded process by its id; returns the names of those that were running."""
        return processes.stop(self.state_dir)

    def status(self) -> dict:
        return {
            "engine": self.engine,
            "state_dir": str(self.state_dir),
            "processes": {p.name: {"pid": p.pid, "alive": p.alive(), "log": p.log} for p in self.processes()},
            **self.summary(),
        }
