"""What every route needs, built once by the composition root."""

from __future__ import annotations

from dataclasses import dataclass, field

from wafleet.actors.alerts import AlertBoard
from wafleet.actors.assistant.service import Assistant
from wafleet.actors.broadcast import Broadcaster
from wafleet.actors.directory import Directory, SessionRecord
from wafleet.actors.links.factory import LinkFactory
from wafleet.actors.metrics import Metrics
from wafleet.actors.process_stats import ProcessMeter
from wafleet.actors.tree import Tree
from wafleet.http.api import ApiError
from wafleet.http.auth import Authenticator, Principal
from wafleet.http.settings import Settings
from wafleet.storage.blocklist import Blocklist
from wafleet.storage.crypto import Cipher
from wafleet.storage.database import Database
from wafleet.storage.shared_state import SharedState


@dataclass
class Context:
    settings: Settings
    db: Database
    tree: Tree
    directory: Directory
    auth: Authenticator
    links: LinkFactory
    broadcaster: Broadcaster = field(default_factory=Broadcaster)
    shared: SharedState = field(default_factory=SharedState)
    cipher: Cipher | None = None  # set when WAFLEET_ENCRYPTION_KEY is: Cloud API secrets at rest
    blocklist: Blocklist | None = None  # numbers a company does not message or answer
    metrics: Metrics = field(default_factory=lambda: Metrics(None))  # StatsD and the node's figures
    alerts: AlertBoard = field(default_factory=AlertBoard)  # threshold alerts firing now
    process: ProcessMeter = field(default_factory=ProcessMeter)
    assistant: Assistant | None = None  # conversations, bookings (routes_assistant)

    def company_id(self, value: str) -> str:
        if len(value) > 64 or not self.settings.company_id_pattern.fullmatch(value):
            raise ApiError(
                400,
                "invalid_company_id",
                f"company id must match {self.settings.company_id_pattern.pattern} and be at most 64 characters",
            )
        return value

    def phone(self, value: object, name: str = "phoneNumber") -> str:
        if not isinstance(value, str) or not self.settings.allowed_phone_pattern.fullmatch(value):
            raise ApiError(
                400,
                "invalid_phone",
                f"{name} must match {self.settings.allowed_phone_pattern.pattern} (digits with country code, no +)",
            )
        return value

    def authorised_record(self, company_id: str) -> tuple[Principal, SessionRecord]:
        """Authenticate, validate the id, authorise for that company, then find it."""
        principal = self.auth.principal(company_id)
        self.company_id(company_id)
        if not principal.admin and principal.company_id != company_id:
            raise ApiError(403, "forbidden", "this token does not open this company's routes")
        record = self.directory.get(company_id)
        if record is None:
            raise ApiError(404, "not_found", f"company {company_id!r} does not exist")
        return principal, record
