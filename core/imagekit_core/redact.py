"""Credentials never shown: the one place that knows what a credential in text looks like and hides it.

Every message imagekit prints (errors, log lines, crash files) goes through `redact`; `deploy render --env`
asks `looks_like_credential` before writing a value into a manifest.
"""
from __future__ import annotations

import logging
import re

HIDDEN = "***"
# scheme://user:password@host or scheme://token@host
_USERINFO = re.compile(r"(?P<scheme>\b[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<userinfo>[^/@\s'\"]+)@")
# ?X-Amz-Signature=…, &token=…: presigned URLs and tokens in query strings
_QUERY = re.compile(r"(?i)(?P<key>[?&](?:x-amz-signature|x-amz-credential|x-amz-security-token|signature|sig|token|"
                    r"access_token|password|passwd|secret|api_key|apikey)=)[^&\s'\"]+")
# NAME=value for names that say they hold a secret
_ASSIGNMENT = re.compile(r"(?P<name>\b[A-Za-z_]*(?:SECRET|TOKEN|PASSWORD|PASSWD|CREDENTIAL|API_KEY|PRIVATE_KEY)"
                         r"[A-Za-z_0-9]*=)[^\s'\"]+", re.IGNORECASE)
_CREDENTIAL_NAME = re.compile(r"(?i)(secret|token|password|passwd|credential|api_?key|private_?key|access_?key)")


def redact(text: str) -> str:
    text = _USERINFO.sub(lambda m: f"{m['scheme']}{HIDDEN}@", text)
    text = _QUERY.sub(lambda m: f"{m['key']}{HIDDEN}", text)
    return _ASSIGNMENT.sub(lambda m: f"{m['name']}{HIDDEN}", text)


def looks_like_credential(name: str, value: str) -> str | None:
    """Why NAME=VALUE would put a credential in plain text (None when it would not)."""
    if _CREDENTIAL_NAME.search(name):
        return f"the name {name} says it holds a credential"
    if redact(value) != value:
        return "the value holds a credential (a URL's user:password@, a token or a signature)"
    return None


class RedactingFilter(logging.Filter):
    """On a handler: every record's message is redacted before it is written."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = redact(message)
        if hidden != message:
            record.msg, record.args = hidden, None
        return True
