"""Argument types shared by the CLI's commands."""

from __future__ import annotations

import argparse


def service_url(value: str) -> str:
    """`--url`: an http(s) URL (a bare host:port ended in an httpx traceback)."""
    if not value.startswith(("http://", "https://")):
        raise argparse.ArgumentTypeError(f"{value!r} is not an http:// or https:// URL (try http://{value})")
    return value.rstrip("/")
