"""The YAML config: models the engine relies on, and a loader that explains every mistake."""

from wcfollowup.config.durations import Duration, format_duration, parse_duration
from wcfollowup.config.errors import ConfigError, ConfigProblem
from wcfollowup.config.loader import load_config
from wcfollowup.config.models import (
    Config,
    DatabaseConfig,
    DispatchConfig,
    PollConfig,
    SendGridConfig,
    SequenceConfig,
    StepConfig,
    StoreConfig,
)

__all__ = [
    "Config",
    "ConfigError",
    "ConfigProblem",
    "DatabaseConfig",
    "DispatchConfig",
    "Duration",
    "PollConfig",
    "SendGridConfig",
    "SequenceConfig",
    "StepConfig",
    "StoreConfig",
    "format_duration",
    "load_config",
    "parse_duration",
]
