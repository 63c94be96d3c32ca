"""Keep passwords and tokens out of every log line, --debug included.

keystoneauth and openstacksdk log requests and responses at DEBUG. keystoneauth hashes the
X-Auth-Token header, but a body (a password auth request, a token in a JSON answer) or a
library that logs differently must not leak either. So every handler of the root logger gets
a filter that rewrites each record: secrets registered at run time (the password we were
given, the token we got) are replaced wherever they appear, and anything shaped like a
credential field is masked even if it was never registered.
"""

import logging
import re
import threading

MASK = "***"

# "password": "x"  /  'password': 'x'  /  password=x  /  X-Auth-Token: x  /  "token": {"id": "x"
_PATTERNS = [
    re.compile(r'''(?P<key>["']?(?:password|secret|token|passcode|application_credential_secret|'''
               r'''admin_password|id_token|access_token)["']?\s*[:=]\s*["']?)(?P<value>[^"'\s,}&]+)''',
               re.IGNORECASE),
    re.compile(r"(?P<key>X-(?:Auth|Subject|Service)-Token:?\s*)(?P<value>[^\s'\"]+)", re.IGNORECASE),
]

_known = set()
_lock = threading.Lock()


def register_secret(value):
    """Mask `value` in every later log line (only values long enough not to hit ordinary words)."""
    if value and isinstance(value, str) and len(value) >= 6:
        with _lock:
            _known.add(value)


def redact(text):
    with _lock:
        known = sorted(_known, key=len, reverse=True)
    for secret in known:
        if secret in text:
            text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group("key") + MASK if m.group("value") not in (MASK, "null",
                                                                                         "None")
                           else m.group(0), text)
    return text


class SecretFilter(logging.Filter):
    def filter(self, record):
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: keep the raw text, still redacted
            message = str(record.msg)
        record.msg = redact(message)
        record.args = ()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


_FILTER = SecretFilter()


def install():
    """Attach the filter to every handler of the root logger (handlers added later too)."""
    root = logging.getLogger()
    for handler in root.handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
    if not getattr(root, "_bayctl_secret_filter", False):
        original = root.addHandler

        def add_handler(handler):
            handler.addFilter(_FILTER)
            original(handler)

        root.addHandler = add_handler
        root._bayctl_secret_filter = True
