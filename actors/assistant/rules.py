"""The rule-based understanding: works offline, and answers whenever the model cannot."""

from __future__ import annotations

import re

from wafleet.actors.assistant.understanding import Intent, TurnContext, Understanding

CODE_RE = re.compile(r"\b([ABCDEFGHJKLMNPQRSTUVWXYZ23456789]{6})\b", re.IGNORECASE)

KEYWORDS: dict[Intent, tuple[str, ...]] = {
    Intent.CANCEL: ("отмен", "cancel", "desmarc"),
    Intent.RESCHEDULE: ("перенес", "remarc", "reschedul"),
    Intent.BOOKING: ("запис", "marcar", "book", "agendar"),
    Intent.GREETING: ("привет", "здравств", "olá", "ola", "oi", "hello", "hi"),
}


def understand_rules(text: str, ctx: TurnContext) -> Understanding:
    """Understand one customer message with keywords and patterns."""
    lowered = text.lower()
    intent = next((i for i, words in KEYWORDS.items() if any(w in lowered for w in words)), Intent.OTHER)
    match = CODE_RE.search(text) if intent in (Intent.CANCEL, Intent.RESCHEDULE) else None
    return Understanding(
        intent=intent,
        language=ctx.language or ctx.languages[0],
        code=match.group(1).upper() if match else None,
    )
