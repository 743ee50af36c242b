"""``wcfollowup preview``: the exact email a real order would get, with nothing sent or written.

It reads the order from the store, the same way the dispatcher does just before sending, and
renders every step of every sequence the order qualifies for (or one step). A coupon step shows
a sample code; survey and unsubscribe links are real signed links, because signing changes
nothing. Enrolment conditions and guards are reported as a note instead of hiding the email, so
an owner can preview a step for an order that would not get it.
"""

from __future__ import annotations

from dataclasses import dataclass

from wcfollowup.common.emails import normalize_email
from wcfollowup.config import Config
from wcfollowup.core.clock import Clock, SystemClock
from wcfollowup.core.conditions import describe, evaluate, explain
from wcfollowup.engine.compose import Composer, NothingToSend
from wcfollowup.engine.facts import FactsSource
from wcfollowup.engine.step_ref import StepRef
from wcfollowup.render.renderer import Renderer
from wcfollowup.woo.gateway import WooGateway


@dataclass(frozen=True, slots=True)
class PreviewedEmail:
    sequence: str
    step: str
    kind: str
    recipient: str
    subject: str
    html: str
    text: str
    note: str  # why it would not be sent as it stands, or ""


class StepNotFound(LookupError):
    pass


def preview_emails(
    config: Config, order_id: int, step: str | None = None, clock: Clock | None = None
) -> list[PreviewedEmail]:
    from wcfollowup.web.tokens import make_signer

    clock = clock or SystemClock()
    store = config.store
    gateway = WooGateway(
        store.url,
        store.consumer_key.get_secret_value(),
        store.consumer_secret.get_secret_value(),
        timeout=store.request_timeout.total_seconds(),
        verify=store.verify_tls,
    )
    composer = Composer(
        config, gateway, Renderer(config.templates_dir), make_signer(config), None, None
    )
    facts_source = FactsSource(gateway)
    order = gateway.get_order(order_id)
    now = clock.now()
    billing = order.get("billing") or {}
    customer = normalize_email(str(billing.get("email") or ""))
    found: list[PreviewedEmail] = []
    for sequence in config.sequences:
        for step_config in sequence.steps:
            if step is not None and step_config.name != step:
                continue
            notes: list[str] = []
            conditions = [sequence.conditions, step_config.only_if, step_config.skip_if]
            facts = facts_source.facts(order, conditions)
            if sequence.conditions is not None and not evaluate(sequence.conditions, facts):
                notes.append(f"not enrolled: {explain(sequence.conditions, facts)}")
            if step_config.only_if is not None and not evaluate(step_config.only_if, facts):
                notes.append(f"only_if not met: {explain(step_config.only_if, facts)}")
            if step_config.skip_if is not None and evaluate(step_config.skip_if, facts):
                notes.append(f"skip_if met: {describe(step_config.skip_if)}")
            if step_config.to == "owner":
                recipient = composer.owner_address()
            elif customer is None:
                recipient = str(billing.get("email") or "")
                notes.append("the order has no valid billing email")
            else:
                recipient = customer
            ref = StepRef(0, 0, int(order["id"]), sequence.name, step_config.name)
            try:
                composed = composer.compose(
                    ref, step_config, order, recipient or "customer@example.com", now, dry_run=True
                )
            except NothingToSend as exc:
                found.append(
                    PreviewedEmail(
                        sequence.name,
                        step_config.name,
                        step_config.kind,
                        recipient,
                        "",
                        "",
                        "",
                        "; ".join([*notes, str(exc)]),
                    )
                )
                continue
            email = composed.email
            found.append(
                PreviewedEmail(
                    sequence.name,
                    step_config.name,
                    step_config.kind,
                    recipient,
                    email.subject,
                    email.html,
                    email.text,
                    "; ".join(notes),
                )
            )
    if step is not None and not found:
        names = sorted({s.name for seq in config.sequences for s in seq.steps})
        raise StepNotFound(f"no step named '{step}' in the config; steps: {', '.join(names)}")
    return found
