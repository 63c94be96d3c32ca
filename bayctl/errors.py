"""Typed errors. The CLI turns each into one clear line and a non-zero exit.

Messages never carry secrets (passwords, tokens, private keys): build them from names,
paths and reasons only.
"""


class BayctlError(Exception):
    """Base of every error bayctl raises on purpose."""


class SpecError(BayctlError):
    """A bay spec (bay.yaml or flags) is invalid. Names the file, line and field."""

    def __init__(self, message, *, path=None, line=None, field=None):
        self.path, self.line, self.field = path, line, field
        super().__init__(_locate(message, path, line, field))


class PolicyError(BayctlError):
    """A group policy is invalid. Names the file, line and field."""

    def __init__(self, message, *, path=None, line=None, field=None):
        self.path, self.line, self.field = path, line, field
        self.reason = message
        super().__init__(_locate(message, path, line, field))


class CloudError(BayctlError):
    """The cloud refused or failed a request (pre-flight, quota, permission, API error)."""


class StackFailed(CloudError):
    """A Heat stack (or the stack behind a Magnum cluster) failed; names the resource and why."""

    def __init__(self, message, *, resource=None, resource_type=None, reason=None):
        self.resource, self.resource_type, self.reason = resource, resource_type, reason
        super().__init__(message)


class SeedError(BayctlError):
    """Seeding failed on one or more nodes; `results` holds the per-node outcome."""

    def __init__(self, message, *, results=None):
        self.results = results or []
        super().__init__(message)


class NodeError(BayctlError):
    """The node side (agent, datapath, links, plugins) failed."""


class ImageError(BayctlError):
    """An image build or upload failed; names the element or step."""


def _locate(message, path, line, field):
    where = ""
    if path is not None:
        where = str(path)
        if line is not None:
            where += f":{line}"
        where += ": "
    if field:
        where += f"{field}: "
    return where + message
