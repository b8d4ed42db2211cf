"""TFX's Pusher, made safe for a watched serving directory.

TFX's filesystem Pusher copies the model file by file straight into `<base>/<unix time>` (saved_model.pb
last, which TF Serving waits for), so any other reader of the directory, this project's lineage and
rollback included, can see a half-written version, and a push killed midway leaves a numbered folder
without a model for good. This one publishes through serving_dir (copied aside, then renamed), applies
the retention policy, and adds no version when the blessed model is byte for byte the one already
serving (an unchanged re-run blesses the same model again): it records that instead.
"""

from __future__ import annotations

import os
from typing import Any

from absl import logging
from tfx import types
from tfx.components.pusher import component as pusher_component
from tfx.components.pusher import executor as pusher_executor
from tfx.dsl.components.base import executor_spec
from tfx.proto import pusher_pb2
from tfx.types import artifact_utils, standard_component_specs
from tfx.utils import io_utils, json_utils, proto_utils

from pipeline.guards import serving_dir

KEEP_VERSIONS_KEY = "serving_versions_to_keep"
# Custom properties of the PushedModel artifact when nothing new was pushed.
ALREADY_SERVING_VERSION = "already_serving_version"
ALREADY_SERVING_DESTINATION = "already_serving_destination"
RETIRED_VERSIONS = "retired_versions"


class Executor(pusher_executor.Executor):
    def Do(
        self,
        input_dict: dict[str, list[types.Artifact]],
        output_dict: dict[str, list[types.Artifact]],
        exec_properties: dict[str, Any],
    ) -> None:
        self._log_startup(input_dict, output_dict, exec_properties)
        model_push = artifact_utils.get_single_instance(
            output_dict[standard_component_specs.PUSHED_MODEL_KEY]
        )
        if not self.CheckBlessing(input_dict):
            self._MarkNotPushed(model_push)
            return
        model_path = self.GetModelPath(input_dict)
        destination = pusher_pb2.PushDestination()
        proto_utils.json_to_proto(
            exec_properties[standard_component_specs.PUSH_DESTINATION_KEY], destination
        )
        if destination.WhichOneof("destination") != "filesystem":
            raise NotImplementedError("the atomic Pusher pushes to a filesystem destination only")
        base = destination.filesystem.base_directory
        custom_config = json_utils.loads(
            exec_properties.get(standard_component_specs.CUSTOM_CONFIG_KEY) or "null"
        ) or {}

        serving = serving_dir.serving_copy_of(model_path, base)
        if serving is not None:
            # Not a warning: nothing is wrong, and the run's summary (and the notebook's Pusher cell) says so.
            logging.info("The blessed model is already serving as %s; no new version.", serving)
            self._MarkNotPushed(model_push)
            model_push.set_string_custom_property(ALREADY_SERVING_VERSION, os.path.basename(serving))
            model_push.set_string_custom_property(ALREADY_SERVING_DESTINATION, serving)
            return

        # Like TFX's Pusher: the pushed artifact keeps its own copy, for rollback after retention. Made
        # first, so that a push that fails (a full disk) has published no serving version.
        io_utils.copy_dir(model_path, model_push.uri)
        target = serving_dir.publish(model_path, base)
        logging.info("Model written to serving path %s.", target)
        self._MarkPushed(
            model_push, pushed_destination=target, pushed_version=os.path.basename(target)
        )
        retired = serving_dir.apply_retention(base, int(custom_config.get(KEEP_VERSIONS_KEY, 0)))
        if retired:
            logging.info("Retired serving versions %s.", ", ".join(retired))
            model_push.set_string_custom_property(RETIRED_VERSIONS, ",".join(retired))


class AtomicPusher(pusher_component.Pusher):
    """tfx.components.Pusher with the executor above; give it the id "Pusher"."""

    EXECUTOR_SPEC = executor_spec.ExecutorClassSpec(Executor)
