"""How ML Metadata is reached: the configuration's store (SQLite, or MySQL when configured) and the one
way every part of the project opens it."""

from __future__ import annotations

import os
import time

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline.configs import PipelineConfig
from pipeline.metadata import mysql

_TRANSIENT = ("database is locked", "Concurrent", "subset of tables")


class StoreMissing(FileNotFoundError):
    """The configuration's SQLite store does not exist (yet): nothing has run against it."""


def connection_config(
    config: PipelineConfig, readonly: bool = False, create: bool = True
) -> metadata_store_pb2.ConnectionConfig:
    """The store shared by every component, run and reader of `config`: MySQL when configured, else its
    SQLite file, which a run creates (`create`) and a reader opens as it is (`readonly`: never writes)."""
    if config.metadata_mysql_host:
        return mysql.connection_config(config)
    modes = metadata_store_pb2.SqliteMetadataSourceConfig
    connection = metadata_store_pb2.ConnectionConfig()
    connection.sqlite.filename_uri = config.metadata_path
    connection.sqlite.connection_mode = (
        modes.READONLY if readonly else modes.READWRITE_OPENCREATE if create else modes.READWRITE
    )
    if create and not readonly:
        os.makedirs(os.path.dirname(config.metadata_path), exist_ok=True)
    return connection


def open_store(
    source: PipelineConfig | metadata_store_pb2.ConnectionConfig, readonly: bool = False
) -> metadata_store.MetadataStore:
    """A store that must already exist: reading never creates an empty SQLite file by accident.

    Raises StoreMissing when a SQLite store is not there. A SQLite store being created or written by a run
    can refuse a connection for a moment: that is retried.
    """
    if isinstance(source, metadata_store_pb2.ConnectionConfig):
        connection = source
    else:
        connection = connection_config(source, readonly=readonly, create=False)
    if connection.HasField("sqlite") and not os.path.exists(connection.sqlite.filename_uri):
        raise StoreMissing(f"no ML Metadata store at {connection.sqlite.filename_uri} (has the pipeline run?)")
    for attempt in range(5):
        try:
            return metadata_store.MetadataStore(connection)
        except RuntimeError as error:
            if attempt == 4 or not any(t in str(error) for t in _TRANSIENT):
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")
