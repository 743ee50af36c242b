"""A local WooCommerce store and SendGrid sink for tests, the demo, benchmarks and trying a config.

Everything listens on 127.0.0.1 only and behaves like the real services as observed in
``FACTS.md`` (including their traps), with time taken from an injected clock.
"""

from wcfollowup.sandbox.faults import Fault, FaultPlan, FaultRule
from wcfollowup.sandbox.mail_sink import MailSink, ReceivedMail
from wcfollowup.sandbox.runner import Sandbox, sandbox_config_yaml, serve_forever
from wcfollowup.sandbox.store_state import SandboxStore, UnknownOrder, UnknownStatus

__all__ = [
    "Fault",
    "FaultPlan",
    "FaultRule",
    "MailSink",
    "ReceivedMail",
    "Sandbox",
    "SandboxStore",
    "UnknownOrder",
    "UnknownStatus",
    "sandbox_config_yaml",
    "serve_forever",
]
