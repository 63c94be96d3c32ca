"""The CNI plugin skeleton (as containernetworking/cni's pkg/skel): everything a plugin does
that is not its verbs.

The environment (CNI_COMMAND, CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH), the
network config on stdin, version negotiation (VERSION, cniVersion against the supported
list), the dispatch to the plugin's verbs, and failures as CNI error JSON on stdout
(`{"cniVersion", "code", "msg", "details"}`, exit 1) classified by exception type, never a
traceback. A plugin is its config check and its verbs:

    sys.exit(plugin_main(Verbs(add=cmd_add, delete=cmd_del, check=cmd_check, status=cmd_status,
                               gc=cmd_gc), invocation=MyInvocation, error_codes={MyError: 100}))
"""

import dataclasses
import json
import os
import sys
from typing import Callable, Dict, Optional

from bayctl.node.protocol import IFNAME_MAX_LEN

SUPPORTED_VERSIONS = ["0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]
COMMANDS = ("ADD", "DEL", "CHECK", "VERSION", "STATUS", "GC")

# Well-known error codes of the CNI spec; 100+ are a plugin's own.
INCOMPATIBLE_VERSION = 1
UNSUPPORTED_FIELD = 2
UNKNOWN_CONTAINER = 3
INVALID_ENVIRONMENT = 4
IO_FAILURE = 5
DECODE_FAILURE = 6
INVALID_CONFIG = 7
TRY_AGAIN_LATER = 11
PLUGIN_NOT_AVAILABLE = 50
INTERNAL_ERROR = 199


class CniError(Exception):
    def __init__(self, code, msg, details=""):
        self.code, self.msg, self.details = code, msg, details
        super().__init__(msg)


class Invocation:
    """One call of the plugin: environment + config, validated before anything is touched.

    A plugin subclasses it for its own config (`check_config`) and what it derives from it."""

    def __init__(self, environ, stdin_text):
        self.command = environ.get("CNI_COMMAND", "")
        if self.command not in COMMANDS:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_COMMAND {self.command!r} is not ADD, DEL, CHECK, "
                                                "VERSION, STATUS or GC")
        self.container_id = environ.get("CNI_CONTAINERID", "")
        self.netns = environ.get("CNI_NETNS", "")
        self.ifname = environ.get("CNI_IFNAME", "")
        self.cni_path = [p for p in environ.get("CNI_PATH", "").split(os.pathsep) if p]
        self.environ = environ
        self.raw_config = stdin_text
        self.config = {}
        self.version = ""
        if self.command == "VERSION":
            return
        try:
            self.config = json.loads(stdin_text or "")
        except ValueError as e:
            raise CniError(DECODE_FAILURE, f"network config on stdin is not JSON: {e}") from None
        if not isinstance(self.config, dict):
            raise CniError(DECODE_FAILURE, "network config on stdin is not a JSON object")
        self.version = str(self.config.get("cniVersion", ""))
        if not self.version:
            raise bad_config("'cniVersion' is required")
        if self.version not in SUPPORTED_VERSIONS:
            raise CniError(INCOMPATIBLE_VERSION, f"cniVersion {self.version!r} is not supported",
                           f"supported: {', '.join(SUPPORTED_VERSIONS)}")
        if self.command == "STATUS":
            return
        if self.command == "GC":
            self.check_config()
            return
        for var, value in (("CNI_CONTAINERID", self.container_id), ("CNI_IFNAME", self.ifname)):
            if not value:
                raise CniError(INVALID_ENVIRONMENT, f"{var} is not set")
        if self.command != "DEL" and not self.netns:
            raise CniError(INVALID_ENVIRONMENT, "CNI_NETNS is not set")
        if len(self.ifname) > IFNAME_MAX_LEN or "/" in self.ifname:
            raise CniError(INVALID_ENVIRONMENT, f"CNI_IFNAME {self.ifname!r} is not a valid interface name")
        self.check_config()

    def check_config(self):
        """The plugin's own config keys (raise bad_config); nothing by default."""


def bad_config(message, details=""):
    return CniError(INVALID_CONFIG, f"network config: {message}", details)


@dataclasses.dataclass
class Verbs:
    add: Callable
    delete: Callable
    check: Callable
    status: Callable
    gc: Callable


def run(environ, stdin_text, verbs: Verbs, *, invocation=Invocation,
        error_codes: Optional[Dict[type, int]] = None):
    """(stdout document or None, exit status). Never raises.

    error_codes: exception type -> CNI code, the most specific type first wins; a CniError
    carries its own code, an OSError is IO_FAILURE, anything else INTERNAL_ERROR. It may be a
    function returning that table, called only when a failure needs classifying (the table's
    types may live in modules a call that succeeds never imports)."""
    version = "1.0.0"
    try:
        inv = invocation(environ, stdin_text)
        version = inv.version or version
        if inv.command == "VERSION":
            return {"cniVersion": "1.1.0", "supportedVersions": SUPPORTED_VERSIONS}, 0
        verb = {"ADD": verbs.add, "DEL": verbs.delete, "CHECK": verbs.check, "STATUS": verbs.status,
                "GC": verbs.gc}[inv.command]
        return verb(inv), 0
    except CniError as e:
        return error_document(version, e.code, e.msg, e.details), 1
    except Exception as e:  # the runtime must get CNI error JSON, never a traceback
        table = error_codes() if callable(error_codes) else error_codes
        return _classified(version, e, table or {}), 1


def _classified(version, error, error_codes):
    for kind in type(error).__mro__:
        if kind in error_codes:
            if hasattr(error, "details"):  # the reason and its details apart (GroupRejected)
                return error_document(version, error_codes[kind], error.reason, error.details)
            return error_document(version, error_codes[kind], str(error))
    if isinstance(error, OSError):
        return error_document(version, IO_FAILURE, f"{error.strerror or error}",
                              str(getattr(error, "filename", "") or ""))
    return error_document(version, INTERNAL_ERROR, f"internal error: {type(error).__name__}: {error}")


def error_document(version, code, msg, details=""):
    return {"cniVersion": version, "code": code, "msg": " ".join(str(msg).split()), "details": details}


def plugin_main(verbs: Verbs, forward: Optional[Callable] = None, **options) -> int:
    """Run the plugin as the runtime calls it: environment, stdin, one JSON answer on stdout.

    forward(environ, stdin_text): a daemon's answer to the call, (document or None, status,
    stderr text), or None to run the verbs here (a thin plugin in front of a node daemon)."""
    environ = dict(os.environ)
    stdin_text = sys.stdin.read() if not sys.stdin.isatty() else ""
    answered = forward(environ, stdin_text) if forward is not None else None
    if answered is None:
        document, status = run(environ, stdin_text, verbs, **options)
    else:
        document, status, stderr = answered
        sys.stderr.write(stderr)
    if document is not None:
        sys.stdout.write(json.dumps(document) + "\n")
    return status
