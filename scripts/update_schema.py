"""Write the newest SchemaGen inference beside the curated schema, with a diff, for a person to review.

The pipeline validates and trains against schema/schema.pbtxt, which people curate. This command never
changes it: it writes schema/schema.candidate.pbtxt from the latest SchemaGen output recorded in ML
Metadata and prints how the inference differs, so a reviewer can carry over what should change.

    python scripts/update_schema.py [--output PATH]
"""

from __future__ import annotations

import argparse
import difflib
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline import configs  # noqa: E402
from pipeline.metadata.store import connection_config  # noqa: E402
from pipeline.metadata.store import open_store  # noqa: E402


def latest_inferred_schema(config: configs.PipelineConfig) -> Path:
    """schema.pbtxt of the newest Schema artifact that the SchemaGen node produced."""
    store = open_store(connection_config(config))
    context = store.get_context_by_type_and_name("node", f"{config.pipeline_name}.SchemaGen")
    if context is None:
        raise LookupError(f"SchemaGen of pipeline {config.pipeline_name!r} has never run; run the pipeline first")
    schemas = [
        a
        for a in store.get_artifacts_by_context(context.id)
        if store.get_artifact_types_by_id([a.type_id])[0].name == "Schema"
    ]
    if not schemas:
        raise LookupError("SchemaGen has recorded no schema yet")
    newest = max(schemas, key=lambda a: (a.create_time_since_epoch, a.id))
    return Path(newest.uri) / "schema.pbtxt"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    config = configs.load_config()
    default_output = Path(config.schema_path).with_name("schema.candidate.pbtxt")
    parser.add_argument("--output", type=Path, default=default_output, help=f"default: {default_output}")
    args = parser.parse_args(argv)
    try:
        inferred = latest_inferred_schema(config)
    except (FileNotFoundError, LookupError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if args.output.resolve() == Path(config.schema_path).resolve():
        print("error: refusing to overwrite the curated schema; choose another --output", file=sys.stderr)
        return 1
    shutil.copyfile(inferred, args.output)
    curated = Path(config.schema_path).read_text().splitlines(keepends=True)
    candidate = inferred.read_text().splitlines(keepends=True)
    sys.stdout.writelines(
        difflib.unified_diff(curated, candidate, fromfile=config.schema_path, tofile=str(args.output))
    )
    print(f"\nCandidate written to {args.output} (from {inferred}). Review it; the pipeline still uses "
          f"{config.schema_path}.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
