"""The YAML config: models the engine relies on, and a loader that explains every mistake."""

from wcfollowup.config.conditions import Condition, ProductMatch, TextMatch
from wcfollowup.config.durations import Duration, format_duration, parse_duration
from wcfollowup.config.errors import ConfigError, ConfigProblem
from wcfollowup.config.loader import load_config
from wcfollowup.config.models import (
    Config,
    CouponConfig,
    DatabaseConfig,
    DeliveryConfig,
    DispatchConfig,
    HttpConfig,
    PollConfig,
    SendGridConfig,
    SequenceConfig,
    StepConfig,
    StoreConfig,
    TrackingConfig,
)
from wcfollowup.config.schedule import FrequencyCap, SendWindow

__all__ = [
    "Condition",
    "Config",
    "ConfigError",
    "ConfigProblem",
    "CouponConfig",
    "DatabaseConfig",
    "DeliveryConfig",
    "DispatchConfig",
    "Duration",
    "FrequencyCap",
    "HttpConfig",
    "PollConfig",
    "ProductMatch",
    "SendGridConfig",
    "SendWindow",
    "SequenceConfig",
    "StepConfig",
    "StoreConfig",
    "TextMatch",
    "TrackingConfig",
    "format_duration",
    "load_config",
    "parse_duration",
]
