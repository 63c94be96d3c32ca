"""Debian mirrors for the build, taken from this machine's own apt sources.

A build machine that installs its packages from a mirror can reach that mirror, while
DIB's defaults (deb.debian.org, security.debian.org) may be refused or slow from it. The
security archive is the distribution mirror's host + /debian-security unless the
sources name one.
"""

import glob
import os
import socket
import urllib.error
import urllib.request
from collections import namedtuple
from urllib.parse import urlsplit, urlunsplit

from bayctl.errors import ImageError

AptSource = namedtuple("AptSource", "uri suites")
Mirrors = namedtuple("Mirrors", "distribution security")

DEFAULT_SOURCES_DIR = "/etc/apt"


def read_apt_sources(apt_dir=DEFAULT_SOURCES_DIR):
    """Every `deb` source of the machine, deb822 (.sources) and one-line (.list) files."""
    sources = []
    one_line = [os.path.join(apt_dir, "sources.list")]
    one_line += sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.list")))
    for path in one_line:
        if os.path.isfile(path):
            with open(path, encoding="utf-8", errors="replace") as f:
                sources += _parse_one_line(f.read())
    for path in sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.sources"))):
        with open(path, encoding="utf-8", errors="replace") as f:
            sources += _parse_deb822(f.read())
    return sources


def _parse_one_line(text):
    sources = []
    for line in text.splitlines():
        words = line.split("#", 1)[0].split()
        if not words or words[0] != "deb":
            continue
        words = words[1:]
        if words and words[0].startswith("["):  # options: [arch=amd64 signed-by=...]
            while words and not words[0].endswith("]"):
                words.pop(0)
            words = words[1:]
        if len(words) >= 2:
            sources.append(AptSource(words[0], (words[1],)))
    return sources


def _parse_deb822(text):
    sources = []
    for stanza in text.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line.startswith("#") or ":" not in line or line[:1].isspace():
                continue
            key, value = line.split(":", 1)
            fields[key.strip().lower()] = value.split()
        if "deb" not in fields.get("types", []) or fields.get("enabled", ["yes"])[0] == "no":
            continue
        for uri in fields.get("uris", []):
            sources.append(AptSource(uri, tuple(fields.get("suites", []))))
    return sources


def debian_mirrors(release, sources):
    """(distribution mirror, security mirror) for `release` from `sources`, None where unknown."""
    distribution = security = None
    for source in sources:
        path = urlsplit(source.uri).path.rstrip("/")
        if path.endswith("/debian-security") and f"{release}-security" in source.suites:
            security = security or source.uri.rstrip("/")
        elif path.endswith("/debian") and release in source.suites:
            distribution = distribution or source.uri.rstrip("/")
    if distribution is None:  # the machine runs another release: any Debian archive will do
        for source in sources:
            if urlsplit(source.uri).path.rstrip("/").endswith("/debian"):
                distribution = source.uri.rstrip("/")
                break
    if security is None and distribution is not None:
        parts = urlsplit(distribution)
        base = parts.path.rstrip("/")[: -len("/debian")]
        security = urlunsplit((parts.scheme, parts.netloc, base + "/debian-security", "", ""))
    return Mirrors(distribution, security)


def mirror_env(release, environ, apt_dir=DEFAULT_SOURCES_DIR):
    """DIB_DISTRIBUTION_MIRROR / DIB_DEBIAN_SECURITY_MIRROR: the caller's values win."""
    found = debian_mirrors(release, read_apt_sources(apt_dir))
    env = {}
    if not environ.get("DIB_DISTRIBUTION_MIRROR") and found.distribution:
        env["DIB_DISTRIBUTION_MIRROR"] = found.distribution
    if not environ.get("DIB_DEBIAN_SECURITY_MIRROR") and found.security:
        env["DIB_DEBIAN_SECURITY_MIRROR"] = found.security
    return env


def check_reachable(env, release, timeout=20):
    """Fail in seconds, before the build, if a Debian mirror the build will use does not answer."""
    checks = (("DIB_DISTRIBUTION_MIRROR", release), ("DIB_DEBIAN_SECURITY_MIRROR", f"{release}-security"))
    for key, suite in checks:
        mirror = env.get(key)
        if not mirror or urlsplit(mirror).scheme not in ("http", "https"):
            continue
        url = f"{mirror.rstrip('/')}/dists/{suite}/InRelease"
        try:
            with urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=timeout):
                pass
        except urllib.error.HTTPError as e:
            raise ImageError(f"{key}={mirror}: {url} answered HTTP {e.code}; is {release} on this mirror?") \
                from None
        except (urllib.error.URLError, socket.timeout, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ImageError(f"{key}={mirror}: unreachable ({reason}); set another mirror "
                             "(--mirror / --security-mirror or the DIB_* variable)") from None
