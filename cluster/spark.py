"""A Spark standalone cluster on loopback: a master, workers and Beam's Spark job server (which holds the
Spark driver), each a process of its own.

Spark 3.5.3 comes from PyPI's pyspark (its `deps/` folder is a Spark home); the job server is Beam's
SparkJobServerDriver on the jars spark-job-server.pom.xml resolves, ahead of Spark's own (the runner needs
its newer Guava). SPARK_LOCAL_IP keeps every process on loopback: without it workers bind to the
machine's other address.
"""

from __future__ import annotations

import os
from pathlib import Path

from cluster import artifacts, processes
from cluster.engine import LOOPBACK, START_TIMEOUT_S, LocalCluster, get_json, port_open

SPARK_VERSION = "3.5.3"
JOB_SERVER_MAIN = "org.apache.beam.runners.spark.SparkJobServerDriver"
# What Spark's own launcher adds for Java 17 (JavaModuleOptions); the job server is started without it.
JAVA_OPENS = [
    f"--add-opens=java.base/{package}=ALL-UNNAMED"
    for package in ("java.lang", "java.lang.invoke", "java.lang.reflect", "java.io", "java.net", "java.nio",
                    "java.util", "java.util.concurrent", "java.util.concurrent.atomic", "sun.nio.ch", "sun.nio.cs",
                    "sun.security.action", "sun.util.calendar")
]
WORKER_MEMORY = "2g"


def _build_home(home: Path, files: list[Path]) -> None:
    artifacts.unpack_sdist(files[0], "deps/", home)


def spark_home() -> Path:
    return artifacts.assembled("spark", _build_home)


def job_server_jar() -> Path:
    return artifacts.assembled("spark-job-server", artifacts.merged_jar) / "job-server.jar"


class SparkCluster(LocalCluster):
    engine = "spark"

    def __init__(self, state_dir=None, master_port: int = 7077, ui_port: int = 8080, job_port: int = 8199,
                 workers: int = 2):
        super().__init__(state_dir)
        self.master_port, self.ui_port, self._job_port, self.workers = master_port, ui_port, job_port, workers
        self.ports = {"master_port": master_port, "ui_port": ui_port, "job_port": job_port}

    def job_port(self) -> int:
        return self._job_port

    @property
    def master_url(self) -> str:
        return f"spark://{LOOPBACK}:{self.master_port}"

    @property
    def ui_url(self) -> str:
        return f"http://{LOOPBACK}:{self.ui_port}"

    def settings(self) -> dict[str, str]:
        return {**super().settings(), "PIPELINE_BEAM_CLUSTER_MASTER": self.master_url}

    def master_state(self):
        return get_json(self.ui_url + "/json/")

    def _env(self, home: Path) -> dict[str, str]:
        return {
            **os.environ,
            "SPARK_HOME": str(home),
            "SPARK_LOCAL_IP": LOOPBACK,
            "SPARK_LOG_DIR": str(self.state_dir / "log"),
            "SPARK_WORKER_DIR": str(self.state_dir / "work"),
            "SPARK_LOCAL_DIRS": str(self.state_dir / "tmp"),
        }

    def _alive_workers(self) -> int:
        state = self.master_state()
        return state["aliveworkers"] if state else 0

    def _start(self) -> None:
        home, jar = spark_home(), job_server_jar()
        (self.state_dir / "tmp").mkdir()
        env = self._env(home)
        spark_class = str(home / "bin" / "spark-class")
        started = [processes.start(self.state_dir, "master", [
            spark_class, "org.apache.spark.deploy.master.Master", "--host", LOOPBACK,
            "--port", str(self.master_port), "--webui-port", str(self.ui_port),
        ], env)]
        processes.wait_until(lambda: self.master_state() is not None, START_TIMEOUT_S,
                             f"the Spark master at {self.ui_url}", started)
        for index in range(1, self.workers + 1):
            work_dir = self.state_dir / "work" / str(index)
            work_dir.mkdir(parents=True)
            started.append(processes.start(self.state_dir, f"worker-{index}", [
                spark_class, "org.apache.spark.deploy.worker.Worker", "--host", LOOPBACK, "--cores", "1",
                "--memory", WORKER_MEMORY, "--work-dir", str(work_dir), "--webui-port", "0", self.master_url,
            ], env))
        started.append(processes.start(self.state_dir, "job-server", [
            "java", "-Xmx1g", *JAVA_OPENS, "-Dspark.ui.enabled=false", "-cp", f"{jar}:{home}/jars/*",
            JOB_SERVER_MAIN, f"--spark-master-url={self.master_url}", f"--job-host={LOOPBACK}",
            f"--job-port={self._job_port}", "--artifact-port=0", "--expansion-port=0",
            f"--artifacts-dir={self.state_dir / 'artifacts'}",
        ], env))
        processes.wait_until(lambda: self._alive_workers() == self.workers, START_TIMEOUT_S,
                             f"{self.workers} Spark workers at {self.ui_url}", started)
        processes.wait_until(lambda: port_open(self._job_port), START_TIMEOUT_S,
                             f"the job server on port {self._job_port}", started)

    def summary(self) -> dict:
        state = self.master_state()
        if state is None:
            return {"master": f"no answer at {self.ui_url}"}
        return {
            "master": self.master_url,
            "workers_alive": state["aliveworkers"],
            "cores": state["cores"],
            "applications": {"running": len(state["activeapps"]), "completed": len(state["completedapps"])},
            "job_server": f"{LOOPBACK}:{self._job_port} ({'answers' if port_open(self._job_port) else 'no answer'})",
        }

    def job_ids(self) -> set[str]:
        state = self.master_state() or {"activeapps": [], "completedapps": []}
        return {app["id"] for app in state["activeapps"] + state["completedapps"]}

    def jobs(self, since: set[str] = frozenset()) -> list[dict]:
        """The applications the master knows (one per Beam job) but those in `since`, oldest first, each
        with the workers its executors ran on."""
        state = self.master_state() or {"activeapps": [], "completedapps": [], "workers": []}
        ran_on: dict[str, set[str]] = {}
        for worker in state["workers"]:
            detail = get_json(worker["webuiaddress"] + "/json/") or {}
            for executor in detail.get("executors", []) + detail.get("finishedexecutors", []):
                ran_on.setdefault(executor["appid"], set()).add(worker["id"])
        apps = sorted(state["activeapps"] + state["completedapps"], key=lambda app: app["starttime"])
        return [{**app, "workers": sorted(ran_on.get(app["id"], ()))} for app in apps if app["id"] not in since]
