"""BaySpec: what a bay should be, from a bay.yaml file and command-line flags.

The file's keys and the flags are one list (`FIELDS`): every key has a flag spelled the
same way (`master_flavor` <-> `--master-flavor`), and a flag given on the command line
wins over the file. Every problem is a SpecError naming the file, line and field (or the
flag), raised before anything is created.

    spec = load_spec("bay.yaml", name="demo", overrides={"slaves": 3})

Relative paths in a file (policy, ssh_key) are relative to the file's directory; on the
command line, to the current directory.
"""

import dataclasses
import os
import re
from typing import Any, Callable, Dict, Optional, Tuple

import yaml
from yaml.nodes import MappingNode, ScalarNode

from bayctl.errors import SpecError

PROVIDERS = ("auto", "local", "heat", "magnum")
CLOUD_PROVIDERS = ("heat", "magnum")
MAX_SLAVES = 64
# Each local slave is a namespace with its own sshd and agent on this machine (~35 MiB each).
# bench/local_bay_size.py on the 2-core CI machine, 7 other jobs running: 32 slaves were created
# in 17 s and verified in 24 s (1.1 GiB). Issue 16 item 4 verifies a 64-slave bay:
# bench/verify_scale.py on the same machine at load average 30 created 64 slaves in 81 s (every
# node ready within the local provider's 60 s wait, which starts once the nodes are launched)
# and verified them with 16 groups (5472 probes) in 36 s, so the cap is 64.
MAX_LOCAL_SLAVES = 64
LOCAL_SLAVES_MEASURED = ("measured: on a 2-core machine under load 64 slaves take 81 s to create "
                         "(~35 MiB each)")
MAX_SPEC_BYTES = 1024 * 1024

# A bay name becomes a Heat stack name, a Magnum cluster name and (local) a prefix of
# namespace names: keep it to what all of them accept.
BAY_NAME = re.compile(r"[a-z][a-z0-9-]{0,39}\Z")


@dataclasses.dataclass(frozen=True)
class Field:
    """One key of bay.yaml and its flag."""

    key: str
    kind: str  # "str", "int", "path", "choice", "labels", "bool"
    help: str
    default: Any = None
    choices: Tuple[str, ...] = ()
    lo: Optional[int] = None
    hi: Optional[int] = None

    @property
    def flag(self) -> str:
        return "--" + self.key.replace("_", "-")


FIELDS = (
    Field("provider", "choice", "where the nodes come from: local (namespaces on this machine), heat, "
          "magnum, or auto (a cloud if one is configured, else local)", "auto", choices=PROVIDERS),
    Field("slaves", "int", "number of Mesos slaves", 2, lo=1, hi=MAX_SLAVES),
    Field("policy", "path", "group policy seeded on every slave: a file (bayctl/v1 GroupPolicy) or the "
          "name of a shipped example (`bayctl policy examples`); a file of that name wins"),
    Field("image", "str", "Glance image of the nodes (cloud providers)"),
    Field("flavor", "str", "Nova flavor of the slaves (cloud providers)"),
    Field("master_flavor", "str", "Nova flavor of the master (default: --flavor)"),
    Field("keypair", "str", "Nova keypair installed on the nodes (cloud providers; default: the bay's "
          "own key, uploaded as bayctl-NAME and deleted with the bay)"),
    Field("external_network", "str", "Neutron network giving the master its public address"),
    Field("cloud", "str", "clouds.yaml entry to use (default: $OS_CLOUD)"),
    Field("ssh_user", "str", "login user on the nodes (default: root locally, debian on a cloud)"),
    Field("ssh_key", "path", "private key for the nodes (default: a key bayctl makes for this bay)"),
    Field("labels", "labels", "KEY=VALUE passed to the provider (Magnum labels, Heat parameters)"),
    Field("timeout", "int", "seconds the whole create may take", 3600, lo=60, hi=24 * 3600),
    Field("container_cidr", "str", "cloud bays: the containers' range, one subnet per node derived from its "
          "private address (10.0.0.N -> 10.100.N.0/24); a /18 or larger, not overlapping 10.0.0.0/24",
          "10.100.0.0/16"),
    Field("distribution", "choice", "how a policy reaches the slaves: zookeeper (written once to the bay's "
          "ZooKeeper, watched by every agent), ssh (pushed to each slave), or auto (zookeeper where the bay "
          "has one)", "auto", choices=("auto", "zookeeper", "ssh")),
)
FIELDS_BY_KEY = {field.key: field for field in FIELDS}


@dataclasses.dataclass(frozen=True)
class BaySpec:
    """A validated bay spec. Paths are absolute; `source` names where it came from."""

    name: str
    provider: str = "auto"
    slaves: int = 2
    policy: Optional[str] = None
    image: Optional[str] = None
    flavor: Optional[str] = None
    master_flavor: Optional[str] = None
    keypair: Optional[str] = None
    external_network: Optional[str] = None
    cloud: Optional[str] = None
    ssh_user: Optional[str] = None
    ssh_key: Optional[str] = None
    labels: Dict[str, str] = dataclasses.field(default_factory=dict)
    timeout: int = 3600
    container_cidr: str = "10.100.0.0/16"
    distribution: str = "auto"
    source: Optional[str] = dataclasses.field(default=None, compare=False)

    def to_dict(self) -> dict:
        data = {field.key: getattr(self, field.key) for field in FIELDS}
        data["name"] = self.name
        return data

    @classmethod
    def from_dict(cls, data: dict) -> "BaySpec":
        """Rebuild a spec saved in a bay's state (already validated when it was saved)."""
        known = {key: data[key] for key in FIELDS_BY_KEY if key in data}
        return cls(name=data["name"], **known)

    def with_provider(self, provider: str) -> "BaySpec":
        return dataclasses.replace(self, provider=provider)


def check_name(name: str, *, field: str = "NAME") -> str:
    if not isinstance(name, str) or not BAY_NAME.match(name):
        raise SpecError(f"{name!r} is not a bay name (lower-case letter, then up to 39 of a-z 0-9 -)",
                        field=field)
    return name


def load_spec(path: Optional[str] = None, *, name: str, overrides: Optional[dict] = None) -> BaySpec:
    """The spec from `path` (bay.yaml; None: defaults only) with `overrides` (flag values) on top.

    `overrides` maps field keys to raw flag values (strings, or a list of KEY=VALUE for
    labels); None values mean "flag not given".
    """
    check_name(name)
    values: Dict[str, Any] = {field.key: field.default for field in FIELDS}
    source = None
    if path is not None:
        source = os.path.abspath(os.fspath(path))
        values.update(_read_file(os.fspath(path)))
    for key, raw in (overrides or {}).items():
        if raw is None or (key == "labels" and not raw):
            continue
        field = FIELDS_BY_KEY.get(key)
        if field is None:
            raise SpecError(f"unknown option (known: {', '.join(f.flag for f in FIELDS)})", field=key)
        values[key] = _from_flag(field, raw)
    values["labels"] = dict(values["labels"] or {})
    spec = BaySpec(name=name, source=source, **values)
    check_consistency(spec, path)
    return spec


def check_local_size(spec: BaySpec, path: Optional[str] = None) -> None:
    """The local provider's slave cap. Called again once `auto` has resolved to local, so
    the default choice obeys it as `--provider local` does."""
    if spec.provider == "local" and spec.slaves > MAX_LOCAL_SLAVES:
        raise SpecError(f"{spec.slaves} is more than a local bay holds (at most {MAX_LOCAL_SLAVES}: "
                        f"{LOCAL_SLAVES_MEASURED})", path=path, field="slaves")


def check_consistency(spec: BaySpec, path: Optional[str] = None) -> None:
    """Checks across fields, and that the files the spec names can be read."""
    check_local_size(spec, path)
    if spec.provider in CLOUD_PROVIDERS:
        # No keypair: bayctl uploads the bay's own key as keypair bayctl-NAME (bayctl.create.keypair).
        for key in ("image", "flavor", "external_network"):
            if not getattr(spec, key):
                field = FIELDS_BY_KEY[key]
                raise SpecError(f"required for provider {spec.provider} (set `{key}` in bay.yaml or "
                                f"{field.flag})", path=path, field=key)
    if spec.ssh_key is not None and not os.access(spec.ssh_key, os.R_OK):
        raise SpecError(f"cannot read private key {spec.ssh_key}", path=path, field="ssh_key")
    if spec.policy is not None:
        from bayctl.policy import load_policy

        load_policy(spec.policy)  # a PolicyError names the policy file, line and field
    if spec.provider != "local":  # a local bay routes its own ranges (bayctl.providers.local_net)
        from bayctl.node.hostgw import DEFAULT_PRIVATE_CIDR, RangeError, node_prefix

        try:
            node_prefix(DEFAULT_PRIVATE_CIDR, spec.container_cidr)
        except RangeError as err:
            raise SpecError(str(err), path=path, field="container_cidr") from None
        if spec.provider == "magnum" and spec.container_cidr != FIELDS_BY_KEY["container_cidr"].default:
            # Magnum's own Mesos templates take no such parameter: the nodes apply the default.
            raise SpecError("a magnum bay's container range is the nodes' default "
                            f"{FIELDS_BY_KEY['container_cidr'].default} (Magnum's templates cannot pass "
                            "another): use --provider heat", path=path, field="container_cidr")
    if spec.ssh_user is not None and not re.match(r"[a-z_][a-z0-9_-]{0,31}\Z", spec.ssh_user):
        raise SpecError(f"{spec.ssh_user!r} is not a user name", path=path, field="ssh_user")


# --- the file --------------------------------------------------------------------------------

def _read_file(path: str) -> Dict[str, Any]:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_SPEC_BYTES + 1)
    except OSError as err:
        raise SpecError(f"cannot read: {err.strerror or err}", path=path) from None
    if len(data) > MAX_SPEC_BYTES:
        raise SpecError(f"larger than {MAX_SPEC_BYTES} bytes: not a bay spec", path=path)
    try:
        root = yaml.compose(data.decode("utf-8"), Loader=yaml.SafeLoader)
    except UnicodeDecodeError:
        raise SpecError("not UTF-8 text", path=path) from None
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        line = mark.line + 1 if mark else None
        raise SpecError(f"not valid YAML: {err.problem or err}", path=path, line=line) from None
    except yaml.YAMLError as err:
        raise SpecError(f"not valid YAML: {err}", path=path) from None
    if root is None:
        return {}
    if not isinstance(root, MappingNode):
        raise SpecError("expected a mapping of bay settings (provider, slaves, policy, ...)",
                        path=path, line=_line(root))
    base_dir = os.path.dirname(os.path.abspath(path))
    values: Dict[str, Any] = {}
    for key_node, value_node in root.value:
        key = key_node.value if isinstance(key_node, ScalarNode) else None
        field = FIELDS_BY_KEY.get(key)
        if field is None:
            raise SpecError(f"unknown key (known: {', '.join(FIELDS_BY_KEY)})", path=path,
                            line=_line(key_node), field=str(key))
        if key in values:
            raise SpecError("given twice", path=path, line=_line(key_node), field=key)
        values[key] = _from_node(field, value_node, path, base_dir)
    return values


def _line(node) -> int:
    return node.start_mark.line + 1


def _from_node(field: Field, node, path: str, base_dir: str):
    def fail(message):
        return SpecError(message, path=path, line=_line(node), field=field.key)

    if field.kind == "labels":
        if not isinstance(node, MappingNode):
            raise fail("expected a mapping of KEY: VALUE")
        labels = {}
        for key_node, value_node in node.value:
            if not isinstance(key_node, ScalarNode) or not isinstance(value_node, ScalarNode):
                raise SpecError("labels are KEY: VALUE with plain values", path=path,
                                line=_line(key_node), field=f"labels.{getattr(key_node, 'value', '?')}")
            labels[_label_key(key_node.value, fail)] = value_node.value
        return labels
    if not isinstance(node, ScalarNode) or node.tag == "tag:yaml.org,2002:null" or node.value == "":
        raise fail("expected a single value")
    return _convert(field, node.value, fail, base_dir)


# --- flags -----------------------------------------------------------------------------------

def _from_flag(field: Field, raw):
    def fail(message):
        return SpecError(message, field=field.flag)

    if field.kind == "labels":
        labels = {}
        for item in raw if isinstance(raw, (list, tuple)) else [raw]:
            key, sep, value = str(item).partition("=")
            if not sep:
                raise fail(f"{item!r}: expected KEY=VALUE")
            labels[_label_key(key, fail)] = value
        return labels
    return _convert(field, str(raw) if not isinstance(raw, (int, bool)) else raw, fail, os.getcwd())


# --- values ----------------------------------------------------------------------------------

def _convert(field: Field, raw, fail: Callable[[str], SpecError], base_dir: str):
    if field.kind == "int":
        text = str(raw).strip()
        if not re.match(r"[0-9]{1,9}\Z", text):
            raise fail(f"{raw!r} is not a whole number")
        number = int(text)
        if (field.lo is not None and number < field.lo) or (field.hi is not None and number > field.hi):
            raise fail(f"{number} is out of range ({field.lo}-{field.hi})")
        return number
    if field.kind == "choice":
        if raw not in field.choices:
            raise fail(f"{raw!r} is not one of {', '.join(field.choices)}")
        return raw
    if field.key == "policy":  # a file, or the name of a shipped example (`web-db`)
        from bayctl.share import policy_path

        return policy_path(str(raw), base_dir)
    if field.kind == "path":
        expanded = os.path.expanduser(str(raw))
        return os.path.normpath(os.path.join(base_dir, expanded))
    text = str(raw)
    if not text.strip() or "\n" in text or len(text) > 255:
        raise fail(f"{raw!r} is not a usable value (one line, 1-255 characters)")
    return text


def _label_key(key: str, fail) -> str:
    if not re.match(r"[A-Za-z0-9_.-]{1,63}\Z", str(key)):
        raise fail(f"{key!r} is not a label key (letters, digits, _ . -)")
    return str(key)
