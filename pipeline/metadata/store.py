"""How ML Metadata is reached: the configuration's store (SQLite, or MySQL when configured) and the one
way every part of the project opens it."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import time
import urllib.parse
from collections.abc import Iterator

from ml_metadata import metadata_store
from ml_metadata.proto import metadata_store_pb2

from pipeline import logs
from pipeline.configs import PipelineConfig
from pipeline.metadata import mysql

_TRANSIENT = ("database is locked", "Concurrent", "subset of tables")
# What ML Metadata's MySQL source (directly or through TFX, which wraps it) and the run lock's driver say
# when the server behind a MySQL store stops answering, and what that means.
_UNREACHABLE = (
    ("Lost connection to MySQL server", "the server closed the connection"),
    ("MySQL server has gone away", "the server closed the connection"),
    ("mysql_real_connect failed", "the server refuses connections"),
    ("Can't connect to MySQL server", "the server refuses connections"),
)


# A few of the tables ML Metadata creates in a SQLite store; a database with none of them is not one.
_MLMD_TABLES = ("MLMDEnv", "Type", "Artifact", "Execution", "Context")


class StoreMissing(FileNotFoundError):
    """The configuration's SQLite store does not exist (yet): nothing has run against it."""


class NotAStore(ValueError):
    """A path that exists but is not an SQLite ML Metadata store: opening it would turn it into one."""


class StoreUnreachable(logs.ExplainedFailure):
    """The configuration's MySQL store stopped answering during a run; the message names it and says what
    to do, the errors behind it are chained (for the run's log file)."""


def unreachable(error: BaseException | None) -> str | None:
    """What happened when `error`, or an error it was raised from or while handling, says the MySQL server
    behind a store stopped answering (`_UNREACHABLE`); None for any other error."""
    for link in logs.error_chain(error):
        meaning = next((meaning for marker, meaning in _UNREACHABLE if marker in str(link)), None)
        if meaning is not None:
            return meaning
    return None


@contextlib.contextmanager
def reached(config: PipelineConfig) -> Iterator[None]:
    """The block, with the loss of the config's MySQL store raised as StoreUnreachable: one message naming
    the store (never the password) instead of TFX's and MySQL's errors."""
    try:
        yield
    except StoreUnreachable:
        raise
    except Exception as error:
        meaning = unreachable(error) if config.metadata_mysql_host else None
        if meaning is None:
            raise
        raise StoreUnreachable(
            f"lost the ML Metadata store {mysql.describe(config)} during the run ({meaning}). Once it answers "
            "again, run again: the next run marks what this one left unfinished as failed and takes what it "
            "finished from the cache."
        ) from error


def check_sqlite_store(path: str) -> None:
    """Raise StoreMissing or NotAStore unless `path` is an SQLite ML Metadata store, reading it only.

    ML Metadata opened on any other file (an empty one, the store's `.lock`, another SQLite database)
    writes its tables into it; this looks first, through a read-only SQLite connection. A store that a
    run is creating right now already has some of the tables and passes (its open is retried below).
    """
    if not os.path.exists(path):
        raise StoreMissing(f"no ML Metadata store at {path} (has the pipeline run?)")
    if not os.path.isfile(path):
        raise NotAStore(f"{path} is a directory, not an SQLite ML Metadata store")
    if os.path.getsize(path) == 0:
        raise NotAStore(f"{path} is an empty file, not an ML Metadata store")
    uri = "file:" + urllib.parse.quote(os.path.abspath(path)) + "?mode=ro"
    try:
        with contextlib.closing(sqlite3.connect(uri, uri=True)) as connection:
            tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    except sqlite3.DatabaseError as error:
        raise NotAStore(f"{path} is not an SQLite database, so not an ML Metadata store ({error})") from None
    if not tables & set(_MLMD_TABLES):
        raise NotAStore(f"{path} is an SQLite database without ML Metadata's tables, not an ML Metadata store")


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
    """A store that must already exist: reading never creates a store, or turns another file into one.

    Raises StoreMissing when a SQLite store is not there and NotAStore when its path holds something else
    (check_sqlite_store). A SQLite store being created or written by a run can refuse a connection for a
    moment: that is retried.
    """
    if isinstance(source, metadata_store_pb2.ConnectionConfig):
        connection = source
    else:
        connection = connection_config(source, readonly=readonly, create=False)
    if connection.HasField("sqlite"):
        check_sqlite_store(connection.sqlite.filename_uri)
    for attempt in range(5):
        try:
            return metadata_store.MetadataStore(connection)
        except RuntimeError as error:
            if attempt == 4 or not any(t in str(error) for t in _TRANSIENT):
                raise
            time.sleep(0.5 * 2**attempt)
    raise AssertionError("unreachable")
