"""A full disk, on a real filesystem that fills up: the output root on a tmpfs this test mounts (as root).

One sequence of real local runs on one small filesystem, one store, feeds the end-to-end tests:
0. a run on the taxi data, with room to spare: what each component writes is measured from it;
1. new data (the first 200 rows dropped), with less free space than CsvExampleGen's examples took in run 0;
2. space freed; when Transform starts, a ballast file fills the disk but for half its output of run 0;
3. the same for the Trainer's export: half its model of run 0 left free when it starts;
4. when the Evaluator starts, one and a half models' room left: the Pusher's copy in the pipeline root fits,
   the serving version does not;
5. space freed: the run completes, taking from the cache what the failed runs finished.
The store (SQLite), the serving directory and the run's log file share the filesystem with the pipeline
root, so the store's and the log's writes compete for the space too.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import re
import gc
import os
import sqlite3
import subprocess
import threading
import time
from pathlib import Path

import pytest
from ml_metadata.proto import metadata_store_pb2

from pipeline import configs, inputs
from pipeline.guards import disk_space, serving_dir
from pipeline.metadata import artifact_files, events, run_summary
from pipeline.metadata.store import connection_config, open_store
from tests.conftest import read_rows, small_run_env, write_rows
from tests.pipeline.guards.test_recovery import PipelineProcess

# The component each failing run stops in, by case.
FAILING = {
    "examplegen": "CsvExampleGen",
    "transform": "Transform",
    "trainer": "Trainer",
    "pusher": "Pusher",
}
# Nodes that run afresh every run: the resolvers, and the data gate (its drift baseline changes).
ALWAYS_RUN = {"validated_statistics_resolver", "baseline_model_resolver", "DataGate"}


def allocated(path: str | Path) -> int:
    """Bytes the files under `path` take on their filesystem (a tmpfs charges whole pages)."""
    return sum(p.stat().st_blocks * 512 for p in Path(path).rglob("*") if p.is_file())


@contextlib.contextmanager
def small_filesystem(path: Path, size: int):
    """A tmpfs of `size` bytes mounted on `path`, unmounted after; skips where mounting is not permitted."""
    path.mkdir(parents=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True, text=True
    ) if os.geteuid() == 0 else None
    if mounted is None or mounted.returncode != 0:
        reason = mounted.stderr.strip() if mounted is not None else "not root"
        pytest.skip(f"a full disk needs a small filesystem of its own: mounting a tmpfs is not permitted here ({reason})")
    try:
        yield path
    finally:
        if subprocess.run(["umount", str(path)], capture_output=True).returncode != 0:
            gc.collect()  # A store a test opened (kept by a failed test's traceback) holds its file open.
            subprocess.run(["umount", "--lazy", str(path)], check=True)


class Ballast:
    """A file that takes the filesystem's space but for what a test leaves free."""

    def __init__(self, mount: Path) -> None:
        self.mount, self.path = mount, mount / "ballast"

    def leave_free(self, free: int) -> None:
        size = self.path.stat().st_size if self.path.exists() else 0
        target = max(size + disk_space.free_bytes(str(self.mount)) - free, 0)
        if target < size:
            os.truncate(self.path, target)
            return
        with open(self.path, "ab") as f:
            try:
                os.posix_fallocate(f.fileno(), 0, target)
            except OSError as error:  # The run wrote meanwhile: the disk is full, which is the point.
                if error.errno != errno.ENOSPC:
                    raise

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def execution_ids(pipeline_root: str, node: str) -> set[str]:
    return {p.name for p in Path(pipeline_root, node).glob("*/*") if p.name.isdigit()}


def wait_for_new_execution(run: PipelineProcess, pipeline_root: str, node: str, known: set[str]) -> None:
    """Until the node's new execution has its output folders (TFX made them: the executor starts)."""
    deadline = time.monotonic() + 600
    while not execution_ids(pipeline_root, node) - known:
        if run.process.poll() is not None or time.monotonic() > deadline:
            pytest.fail(f"{node} never started a new execution:\n{run.output[-6000:]}")
        time.sleep(0.02)


class VersionWatch:
    """Every numbered folder that appears in the serving directory while a run goes, with whether its
    model was whole (saved_model.pb and its variables) the moment it was seen."""

    def __init__(self, serving_model_dir: str) -> None:
        self.folder, self.seen = Path(serving_model_dir), {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _watch(self) -> None:
        while not self._stop.wait(0.01):
            for version in serving_dir.serving_versions(str(self.folder)):
                whole = all((self.folder / version / name).is_file() for name in (
                    "saved_model.pb", "variables/variables.index"))
                self.seen[version] = self.seen.get(version, True) and whole

    def stop(self) -> dict[str, bool]:
        self._stop.set()
        self._thread.join()
        return self.seen


@dataclasses.dataclass
class Story:
    config: configs.PipelineConfig
    mount: Path
    # The input of the runs on the full disk.
    input_bytes: int
    runs: dict[str, PipelineProcess]
    codes: dict[str, int]
    # What run 0 wrote, in allocated bytes, by what it was: "examples", "transform_graph", "model", ...
    sizes: dict[str, int]
    # Serving versions after run 0, and those seen while the Pusher's failing run went.
    versions_before: list[str]
    seen_while_pushing: dict[str, bool]


def _summary(config) -> run_summary.RunSummary:
    return run_summary.summarize_latest_run(connection_config(config), config.pipeline_name)


@pytest.fixture(scope="module")
def story(tmp_path_factory) -> Story:
    data_dir = tmp_path_factory.mktemp("full_disk_data")
    rows = read_rows()
    write_rows(data_dir / "data.csv", rows)
    input_bytes = (data_dir / "data.csv").stat().st_size
    # Twice what the pre-flight rule asks of a run: room for run 0 and what the later runs add.
    with small_filesystem(tmp_path_factory.mktemp("full_disk") / "mnt", 2 * disk_space.space_needed(input_bytes)) as mount:
        env = {**small_run_env(data_dir, mount / "tfx_output"), "PIPELINE_BLESSING_MAX_DECREASE": "1.0"}
        config = configs.load_config(**configs.env_overrides(env))
        root, ballast = config.pipeline_root, Ballast(mount)
        runs, codes = {}, {}

        def run(name: str, fill_when: str | None = None, leave_free=None) -> None:
            known = execution_ids(root, fill_when) if fill_when else set()
            runs[name] = PipelineProcess(env)
            if fill_when:
                wait_for_new_execution(runs[name], root, fill_when, known)
                ballast.leave_free(leave_free())
            codes[name] = runs[name].finish()
            ballast.remove()

        run("roomy")
        assert codes["roomy"] == 0, runs["roomy"].output[-8000:]
        first = _summary(config)
        sizes = {
            "examples": allocated(first.component("CsvExampleGen").output("examples").uri),
            "transform_graph": allocated(first.component("Transform").output("transform_graph").uri),
            "model": allocated(first.component("Trainer").output("model").uri),
            "evaluation": allocated(first.component("Evaluator").output("evaluation").uri),
        }
        versions_before = serving_dir.serving_versions(config.serving_model_dir)
        # New data, so that CsvExampleGen and all after it run again, and the model differs from the one serving.
        write_rows(data_dir / "data.csv", rows[200:])
        input_bytes = (data_dir / "data.csv").stat().st_size
        ballast.leave_free(sizes["examples"] // 2)
        run("examplegen")
        run("transform", "Transform", lambda: sizes["transform_graph"] // 2)
        run("trainer", "Trainer", lambda: sizes["model"] // 2)

        def room_for_one_and_a_half_models() -> int:
            newest = max(Path(root, "Trainer", "model").iterdir(), key=lambda p: int(p.name))
            return sizes["evaluation"] + allocated(newest) * 3 // 2

        watch = VersionWatch(config.serving_model_dir)
        run("pusher", "Evaluator", room_for_one_and_a_half_models)
        seen_while_pushing = watch.stop()
        run("freed")
        yield Story(config, mount, input_bytes, runs, codes, sizes, versions_before, seen_while_pushing)


def _store(config):
    return open_store(connection_config(config))


def _runs_in_order(config) -> list[dict[str, run_summary.ComponentRun]]:
    store = _store(config)
    contexts = sorted(store.get_contexts_by_type("pipeline_run"), key=lambda c: c.id)
    return [{c.node_id: c for c in run_summary.component_runs(store, c, config.pipeline_name)} for c in contexts]


@pytest.mark.e2e
@pytest.mark.parametrize("case", list(FAILING))
def test_a_full_disk_stops_the_run_with_one_line_naming_the_path_and_the_space(story, case):
    output = story.runs[case].output
    assert story.codes[case] == 1, output[-8000:]
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, output[-8000:]
    [line] = errors
    assert line.startswith("error: out of disk space: writing " + str(story.mount) + "/tfx_output/"), line
    assert f"{story.mount} has " in line
    needed = disk_space.space_needed(story.input_bytes) / 2**20
    assert f"a run on this input needs about {needed:.1f} MB there" in line
    assert "Free space there and run again: what completed comes from the cache" in line
    assert f"{FAILING[case]:<32} FAILED after" in output
    assert "Traceback" not in output and "Logging error" not in output, output[-8000:]
    # Only the run that started with the disk nearly full was warned: the others filled it as they went.
    assert (f"Warning: {story.mount} has " in output) == (case == "examplegen")


@pytest.mark.e2e
def test_the_failed_components_published_nothing_and_the_store_stays_readable(story):
    store = _store(story.config)
    runs = _runs_in_order(story.config)
    assert len(runs) == 6
    type_names = {t.id: t.name for t in store.get_artifact_types()}
    for components, case in zip(runs[1:5], FAILING):
        failed = components[FAILING[case]]
        assert failed.state == "failed", {n: c.state for n, c in components.items()}
        # TFX records no output of a failed execution, and removed what it had written.
        assert not events.outputs(store, [failed.execution.id], events.OUTPUTS_AND_PENDING)
        folders = [str(p) for p in Path(story.config.pipeline_root, FAILING[case]).glob(f"*/{failed.execution.id}")]
        assert not folders
        assert not [a.uri for a in store.get_artifacts() if a.uri.endswith(f"/{failed.execution.id}")
                    and f"/{FAILING[case]}/" in a.uri]
        # Nothing after the failed component ran.
        assert not [n for n, c in components.items() if c.execution.id > failed.execution.id]
    # Every live artifact has whole files (pipeline/metadata/artifact_files.py's rule).
    live = [a for a in store.get_artifacts() if a.state == metadata_store_pb2.Artifact.LIVE]
    assert live and not [(a.uri, why) for a in live if (why := artifact_files.unusable(a, type_names[a.type_id]))]
    assert not [e for e in store.get_executions() if e.last_known_state == metadata_store_pb2.Execution.RUNNING]
    with sqlite3.connect(f"file:{story.config.metadata_path}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)


@pytest.mark.e2e
def test_no_serving_version_appears_half_copied(story):
    # While the Pusher failed, no new version appeared, whole or not, and none was ever seen half-written.
    assert set(story.seen_while_pushing) == set(story.versions_before)
    assert all(story.seen_while_pushing.values())
    # Run 5 pushed one whole version; no staging folder is left.
    versions = serving_dir.serving_versions(story.config.serving_model_dir)
    assert versions[:-1] == story.versions_before and len(versions) == len(story.versions_before) + 1
    assert not [n for n in os.listdir(story.config.serving_model_dir) if n.startswith(".")]
    assert f"Pushed to: {story.config.serving_model_dir}/{versions[-1]}" in story.runs["freed"].output


@pytest.mark.e2e
def test_after_space_is_freed_each_run_reuses_what_was_finished(story):
    states = [{n: c.state for n, c in components.items()} for components in _runs_in_order(story.config)]
    # Run 2 executed CsvExampleGen (run 1's failed); each later run takes from the cache what the one
    # before finished and executes the component that failed there.
    assert states[2]["CsvExampleGen"] == "executed"
    assert {states[3][n] for n in ("CsvExampleGen", "StatisticsGen", "SchemaGen", "ExampleValidator")} == {"cached"}
    assert states[3]["Transform"] == "executed"
    assert states[4]["Transform"] == "cached" and states[4]["Trainer"] == states[4]["Evaluator"] == "executed"
    assert story.codes["freed"] == 0, story.runs["freed"].output[-8000:]
    assert {n for n, state in states[5].items() if state == "executed"} - ALWAYS_RUN == {"Pusher"}
    assert "Blessed: yes" in story.runs["freed"].output


@pytest.mark.e2e
def test_the_runs_that_start_with_room_to_spare_are_not_warned(story):
    for name in ("roomy", "freed"):
        assert "Warning:" not in story.runs[name].output


def test_the_rule_is_twice_the_input_plus_16_mb():
    assert disk_space.space_needed(0) == 16 * 2**20
    assert disk_space.space_needed(10 * 2**20) == 36 * 2**20


def _config(tmp_path, input_size: int) -> tuple[configs.PipelineConfig, inputs.RunInput]:
    """A configuration whose input is one sparse file of `input_size` bytes (it takes no space)."""
    (tmp_path / "data").mkdir(parents=True)
    with open(tmp_path / "data" / "data.csv", "wb") as f:
        f.truncate(input_size)
    config = configs.load_config(data_root=str(tmp_path / "data"), output_root=str(tmp_path / "out"))
    return config, inputs.resolve_for(config)


def test_the_pre_flight_check_warns_when_free_space_is_below_the_rule(tmp_path):
    config, run_input = _config(tmp_path, 1)
    said = []
    assert disk_space.warn_if_short(config, run_input, said.append) is None
    assert said == []
    # An input so large that twice its size exceeds what the disk has free.
    free = disk_space.free_bytes(str(tmp_path))
    config, run_input = _config(tmp_path / "large", free // 2 + 2**20)
    warning = disk_space.warn_if_short(config, run_input, said.append)
    mount = disk_space.mount_point(str(tmp_path))
    needed = disk_space.space_needed(free // 2 + 2**20)
    assert warning.startswith(f"Warning: {mount} has ")
    assert f"less than the {needed / 2**20:.1f} MB a run on this input may write there (2 x the input's " in warning
    assert said == [said[0]] and said[0].endswith(warning)


def test_a_remote_pipeline_root_is_not_checked(tmp_path):
    config, run_input = _config(tmp_path, 1)
    config = dataclasses.replace(config, pipeline_root="gs://bucket/pipelines")
    assert disk_space.warn_if_short(config, run_input, pytest.fail) is None


def test_the_mount_point_of_a_path_not_yet_made_is_its_filesystems(tmp_path):
    mount = disk_space.mount_point(str(tmp_path / "not" / "yet"))
    assert os.path.ismount(mount) and str(tmp_path).startswith(mount)


def _raised(error: BaseException, wrapped_in: type[Exception] | None = None) -> BaseException:
    try:
        try:
            raise error
        except BaseException as inner:
            if wrapped_in is None:
                raise
            raise wrapped_in("the step failed") from inner
    except BaseException as raised:
        return raised


FULL_DISKS = {
    # Python's write, chained under another error.
    "python": (_raised(OSError(errno.ENOSPC, "No space left on device", "/out/a/file"), RuntimeError), "/out/a/file"),
    # TensorFlow's file write, naming the file before the C library's text.
    "tensorflow": (RuntimeError(
        "{{function_node __wrapped__SaveV2}} /out/model/variables/part-0.tempstate1; No space left on device [Op:SaveV2]"),
        "/out/model/variables/part-0.tempstate1"),
    # Arrow's write inside a Beam step: no path at all.
    "beam": (OSError("[Errno 28] Error writing bytes to file. Detail: [errno 28] No space left on device "
                     "[while running 'Write']"), None),
    # SQLite (ML Metadata), whose store is full.
    "sqlite": (RuntimeError("Error when executing query: database or disk is full query: INSERT INTO ..."), None),
}


@pytest.mark.parametrize("kind", list(FULL_DISKS))
def test_a_full_disk_in_any_form_is_one_line_naming_the_write_and_the_space(tmp_path, kind):
    config, run_input = _config(tmp_path, 3 * 2**20)
    error, path = FULL_DISKS[kind]
    path = path or config.pipeline_root
    before = disk_space.free_bytes(path) / 2**20
    full = disk_space.out_of_space(error, config, run_input)
    after = disk_space.free_bytes(path) / 2**20
    mount = disk_space.mount_point(path)
    # The disk is the machine's, which other processes write: its free space is read between two readings.
    free = re.fullmatch(
        rf"out of disk space: writing {re.escape(path)} failed; {re.escape(mount)} has ([\d.]+) MB free and a run "
        r"on this input needs about 22\.0 MB there \(2 x the input's 3\.0 MB \+ 16 MB\)\. Free space there and run "
        r"again: what completed comes from the cache", str(full))
    assert free, str(full)
    assert min(before, after) - 0.05 <= float(free.group(1)) <= max(before, after) + 0.05


def test_other_errors_are_not_a_full_disk(tmp_path):
    config, run_input = _config(tmp_path, 1)
    for error in (OSError(errno.EACCES, "Permission denied", "/out"), ValueError("no space for a label"),
                  _raised(KeyError("x"), RuntimeError)):
        assert disk_space.out_of_space(error, config, run_input) is None
