"""QR codes as images, drawn by segno (a well-kept, pure-Python encoder: no hand-written QR)."""

from __future__ import annotations

import io

import segno


def svg(code: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(code, error="l").save(buffer, kind="svg", scale=6, border=4, xmldecl=False, svgns=True)
    return buffer.getvalue()


def png(code: str) -> bytes:
    buffer = io.BytesIO()
    segno.make(code, error="l").save(buffer, kind="png", scale=8, border=4)
    return buffer.getvalue()
