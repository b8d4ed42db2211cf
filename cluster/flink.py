"""A Flink session cluster on loopback: a JobManager, TaskManagers and Beam's Flink job server, each a
process of its own.

Flink 1.19.1 comes from PyPI's apache-flink and apache-flink-libraries (their `deps/` folders form a Flink
home); the job server is Beam's FlinkJobServerDriver on the jars flink-job-server.pom.xml resolves. The
configuration below is what the pipeline needs of any Flink cluster (docs/distributed-engines.md): one
subtask per TaskManager, room for a whole job on each, network buffers for TFMA's wide graphs, and a
restart strategy that rides out a lost TaskManager.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from cluster import artifacts, processes
from cluster.engine import LOOPBACK, START_TIMEOUT_S, LocalCluster, get_json, port_open

FLINK_VERSION = "1.19.1"
JOB_SERVER_MAIN = "org.apache.beam.runners.flink.FlinkJobServerDriver"
JAVA_OPENS = (
    "--add-exports=java.base/sun.net.util=ALL-UNNAMED --add-exports=java.rmi/sun.rmi.registry=ALL-UNNAMED "
    "--add-opens=java.base/java.lang=ALL-UNNAMED --add-opens=java.base/java.net=ALL-UNNAMED "
    "--add-opens=java.base/java.io=ALL-UNNAMED --add-opens=java.base/java.nio=ALL-UNNAMED "
    "--add-opens=java.base/sun.nio.ch=ALL-UNNAMED --add-opens=java.base/java.lang.reflect=ALL-UNNAMED "
    "--add-opens=java.base/java.text=ALL-UNNAMED --add-opens=java.base/java.time=ALL-UNNAMED "
    "--add-opens=java.base/java.util=ALL-UNNAMED --add-opens=java.base/java.util.concurrent=ALL-UNNAMED "
    "--add-opens=java.base/java.util.concurrent.atomic=ALL-UNNAMED "
    "--add-opens=java.base/java.util.concurrent.locks=ALL-UNNAMED"
)
# Why each setting (docs/distributed-engines.md, "Flink"):
# - two slots per TaskManager but a parallelism of one subtask per TaskManager, spread evenly: every job
#   runs on all TaskManagers, and a TaskManager left alone can take a whole job when the other is lost;
# - network memory and the sort-shuffle's minimum buffers: the Evaluator's and StatisticsGen's Beam graphs
#   have many parallel exchanges, which Flink's defaults (512 buffers each) cannot open at once;
# - task off-heap memory for Beam's gRPC data plane to the Python workers, whose buffers are direct
#   memory, and task heap for the elements it hands between operators: Parquet batches are large
#   elements, and Beam's sender checks whether the worker keeps up only every 100 of them. With too
#   little of either, Transform fails on large inputs with "OutOfMemoryError: Direct buffer memory" or
#   "Java heap space";
# - an exponential-delay restart strategy and a short heartbeat: a killed TaskManager is declared lost
#   within seconds and its job restarted on the survivors, instead of failing at once (Flink's default when
#   checkpointing is off). Not fixed-delay: it counts each failed task as an attempt, and a lost
#   TaskManager fails hundreds of Beam's tasks at once, using up every attempt in a moment;
#   exponential-delay counts the failures of one moment as one attempt (FLIP-364, Flink 1.19).
CONFIG = """\
# Written by cluster/flink.py for one local session cluster (docs/distributed-engines.md).
jobmanager.bind-host: {host}
jobmanager.rpc.address: {host}
jobmanager.rpc.port: {rpc_port}
jobmanager.memory.process.size: 1024m
rest.address: {host}
rest.bind-address: {host}
rest.port: {rest_port}
taskmanager.bind-host: {host}
taskmanager.host: {host}
taskmanager.numberOfTaskSlots: 2
taskmanager.memory.process.size: {taskmanager_memory}
taskmanager.memory.task.off-heap.size: 1g
taskmanager.memory.managed.fraction: 0.1
taskmanager.memory.network.min: 320mb
taskmanager.memory.network.max: 320mb
taskmanager.network.sort-shuffle.min-buffers: 64
parallelism.default: {parallelism}
cluster.evenly-spread-out-slots: true
restart-strategy.type: exponential-delay
restart-strategy.exponential-delay.initial-backoff: 2 s
restart-strategy.exponential-delay.backoff-multiplier: 2.0
restart-strategy.exponential-delay.max-backoff: 20 s
restart-strategy.exponential-delay.attempts-before-reset-backoff: 6
restart-strategy.exponential-delay.reset-backoff-threshold: 10 min
heartbeat.interval: 2000
heartbeat.timeout: 15000
io.tmp.dirs: {tmp}
env.java.opts.all: {opens}
"""


def _build_home(home: Path, files: list[Path]) -> None:
    # apache-flink's sdist holds bin/ and conf/, apache-flink-libraries' lib/, opt/ and plugins/.
    for archive in files:
        artifacts.unpack_sdist(archive, "deps/", home)
    (home / "log").mkdir(exist_ok=True)


def flink_home() -> Path:
    return artifacts.assembled("flink", _build_home)


def job_server_jar() -> Path:
    return artifacts.assembled("flink-job-server", artifacts.merged_jar) / "job-server.jar"


class FlinkCluster(LocalCluster):
    engine = "flink"

    def __init__(self, state_dir=None, rest_port: int = 8081, rpc_port: int = 6123, job_port: int = 8099,
                 taskmanagers: int = 2, taskmanager_memory: str = "3g"):
        super().__init__(state_dir)
        self.taskmanager_memory = taskmanager_memory
        self.rest_port, self.rpc_port, self._job_port, self.taskmanagers = rest_port, rpc_port, job_port, taskmanagers
        self.ports = {"rest_port": rest_port, "rpc_port": rpc_port, "job_port": job_port}

    def job_port(self) -> int:
        return self._job_port

    @property
    def rest_url(self) -> str:
        return f"http://{LOOPBACK}:{self.rest_port}"

    def rest(self, path: str):
        return get_json(self.rest_url + path)

    def settings(self) -> dict[str, str]:
        return {**super().settings(), "PIPELINE_BEAM_CLUSTER_MASTER": f"{LOOPBACK}:{self.rest_port}"}

    def _env(self) -> dict[str, str]:
        return {
            **os.environ,
            "FLINK_CONF_DIR": str(self.state_dir / "conf"),
            "FLINK_LOG_DIR": str(self.state_dir / "log"),
            "FLINK_PID_DIR": str(self.state_dir),
        }

    def _write_config(self, home: Path) -> None:
        conf = self.state_dir / "conf"
        conf.mkdir(parents=True)
        (self.state_dir / "tmp").mkdir()
        for name in ("log4j-console.properties", "log4j-cli.properties", "log4j.properties"):
            shutil.copy2(home / "conf" / name, conf / name)
        (conf / "config.yaml").write_text(CONFIG.format(
            host=LOOPBACK, rpc_port=self.rpc_port, rest_port=self.rest_port, parallelism=self.taskmanagers,
            taskmanager_memory=self.taskmanager_memory,
            tmp=self.state_dir / "tmp", opens=JAVA_OPENS,
        ))

    def _registered_taskmanagers(self) -> int:
        answer = self.rest("/taskmanagers")
        return len(answer["taskmanagers"]) if answer else 0

    def start_jobmanager(self) -> processes.Process:
        """The JobManager started again (as after losing it); returns once every TaskManager running has
        registered with it."""
        process = processes.start(self.state_dir, "jobmanager",
                                  [str(flink_home() / "bin" / "jobmanager.sh"), "start-foreground"], self._env())
        running = sum(1 for p in self.processes() if p.name.startswith("taskmanager-") and p.alive())
        processes.wait_until(lambda: self._registered_taskmanagers() == running, START_TIMEOUT_S,
                             f"{running} TaskManagers to register with the JobManager", [process])
        return process

    def start_taskmanager(self, index: int) -> processes.Process:
        """TaskManager `index` started (again, as after losing it), registered with the JobManager before
        returning."""
        before = self._registered_taskmanagers()
        process = processes.start(self.state_dir, f"taskmanager-{index}",
                                  [str(flink_home() / "bin" / "taskmanager.sh"), "start-foreground"], self._env())
        processes.wait_until(lambda: self._registered_taskmanagers() > before, START_TIMEOUT_S,
                             f"TaskManager {index} to register", [process])
        return process

    def _start(self) -> None:
        home, jar = flink_home(), job_server_jar()
        self._write_config(home)
        env = self._env()
        started = [processes.start(self.state_dir, "jobmanager",
                                   [str(home / "bin" / "jobmanager.sh"), "start-foreground"], env)]
        # TaskManagers started before the JobManager answers retry its address only every 10 s.
        processes.wait_until(lambda: self.rest("/overview") is not None, START_TIMEOUT_S,
                             f"the JobManager at {self.rest_url}", started)
        for index in range(1, self.taskmanagers + 1):
            started.append(processes.start(self.state_dir, f"taskmanager-{index}",
                                           [str(home / "bin" / "taskmanager.sh"), "start-foreground"], env))
        started.append(processes.start(self.state_dir, "job-server", [
            "java", "-Xmx1g", "-Dorg.slf4j.simpleLogger.showDateTime=true", "-cp", str(jar), JOB_SERVER_MAIN,
            f"--flink-master={LOOPBACK}:{self.rest_port}", f"--flink-conf-dir={self.state_dir / 'conf'}",
            f"--job-host={LOOPBACK}", f"--job-port={self._job_port}", "--artifact-port=0", "--expansion-port=0",
            f"--artifacts-dir={self.state_dir / 'artifacts'}",
        ], env))
        processes.wait_until(lambda: self._registered_taskmanagers() == self.taskmanagers, START_TIMEOUT_S,
                             f"{self.taskmanagers} TaskManagers at {self.rest_url}", started)
        processes.wait_until(lambda: port_open(self._job_port), START_TIMEOUT_S,
                             f"the job server on port {self._job_port}", started)

    def summary(self) -> dict:
        overview = self.rest("/overview")
        if overview is None:
            return {"jobmanager": f"no answer at {self.rest_url}"}
        return {
            "jobmanager": self.rest_url,
            "taskmanagers": overview["taskmanagers"],
            "slots": overview["slots-total"],
            "jobs": {state: overview[f"jobs-{state}"] for state in ("running", "finished", "failed", "cancelled")},
            "job_server": f"{LOOPBACK}:{self._job_port} ({'answers' if port_open(self._job_port) else 'no answer'})",
        }

    def job_ids(self) -> set[str]:
        return {job["jid"] for job in (self.rest("/jobs/overview") or {"jobs": []})["jobs"]}

    def jobs(self, since: set[str] = frozenset()) -> list[dict]:
        """The jobs Flink knows but those in `since` (earlier job_ids()), oldest first, each with the
        TaskManagers its subtasks ran on."""
        answer = self.rest("/jobs/overview") or {"jobs": []}
        jobs = []
        for job in sorted(answer["jobs"], key=lambda j: j["start-time"]):
            if job["jid"] in since:
                continue
            detail = self.rest(f"/jobs/{job['jid']}")
            taskmanagers = set()
            for vertex in detail["vertices"]:
                placement = self.rest(f"/jobs/{job['jid']}/vertices/{vertex['id']}/taskmanagers")
                for entry in placement["taskmanagers"]:
                    if entry.get("taskmanager-id", "(unassigned)") != "(unassigned)":
                        taskmanagers.add(entry["taskmanager-id"])
            jobs.append({**job, "taskmanagers": sorted(taskmanagers)})
        return jobs
