"""ML Metadata on MySQL/MariaDB: the store a team shares, with the password kept out of settings and logs.

The password is read when the connection is built, from PIPELINE_METADATA_MYSQL_PASSWORD or a secret file,
so it never enters PipelineConfig (whose fields run_record writes into MLMD) or a file in the repository.
TFX's local runner logs the connection config at INFO; a logging filter masks the password there.
"""

from __future__ import annotations

import logging

from ml_metadata.proto import metadata_store_pb2

from pipeline import logs
from pipeline.configs import ConfigError, PipelineConfig, environ_value

_MASK = "********"


def read_password(password_file: str = "") -> str:
    """The password from the environment, else from the secret file; empty when neither is set."""
    password = environ_value("METADATA_MYSQL_PASSWORD")
    if password:
        return password
    if password_file:
        try:
            with open(password_file) as f:
                return f.read().rstrip("\r\n")
        except OSError as error:
            raise ConfigError(f"cannot read metadata_mysql_password_file {password_file}: {error.strerror}") from None
    return ""


class _MaskPassword(logging.Filter):
    def __init__(self, password: str) -> None:
        super().__init__()
        self.password = password

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if self.password in message:
            record.msg, record.args = message.replace(self.password, _MASK), ()
        return True


def mask_in_logs(password: str) -> None:
    """Mask `password` in every record logged through absl (TFX) or the root logger, once per password."""
    if not password:
        return
    logs.mask_secret(password)  # The console and the run's log file.
    for logger in (logging.getLogger("absl"), logging.getLogger()):
        if not any(isinstance(f, _MaskPassword) and f.password == password for f in logger.filters):
            logger.addFilter(_MaskPassword(password))


def connection_config(config: PipelineConfig) -> metadata_store_pb2.ConnectionConfig:
    """The MySQL connection of a PipelineConfig whose metadata_mysql_host is set."""
    if not config.metadata_mysql_database:
        raise ConfigError("metadata_mysql_host is set but metadata_mysql_database is not")
    password = read_password(config.metadata_mysql_password_file)
    mask_in_logs(password)
    return metadata_store_pb2.ConnectionConfig(
        mysql=metadata_store_pb2.MySQLDatabaseConfig(
            host=config.metadata_mysql_host,
            port=config.metadata_mysql_port,
            database=config.metadata_mysql_database,
            user=config.metadata_mysql_user,
            password=password,
        )
    )


def describe(config: PipelineConfig) -> str:
    """Where the store is, for messages: never the password."""
    user = f"{config.metadata_mysql_user}@" if config.metadata_mysql_user else ""
    return f"mysql://{user}{config.metadata_mysql_host}:{config.metadata_mysql_port}/{config.metadata_mysql_database}"
