"""Policy file (YAML) -> model, with every error naming the file, line and field.

The YAML is read as an event stream and composed into nodes here rather than by
PyYAML's composer, so that hostile input is refused before it costs anything: the
size is capped, nesting depth is capped, aliases (and with them alias bombs) are
refused, and only one document is accepted. Values are then checked node by node,
so each error carries the node's line; nothing is constructed into Python objects
except through the narrow checks below (a 10,000-digit "tag" is refused by its
length, never converted).
"""

import re

import yaml
from yaml.events import (
    AliasEvent,
    DocumentStartEvent,
    MappingEndEvent,
    MappingStartEvent,
    ScalarEvent,
    SequenceEndEvent,
    SequenceStartEvent,
    StreamEndEvent,
)
from yaml.nodes import MappingNode, ScalarNode, SequenceNode

from bayctl.errors import PolicyError
from bayctl.gcpause import gc_paused
from bayctl.policy import layout, model

MAX_POLICY_BYTES = 8 * 1024 * 1024   # a 100k-entry policy is well under 2 MiB of YAML
MAX_DEPTH = 32                       # a policy nests 4 deep; anything deeper is not a policy
MAX_NODES = 300_000                  # bounds memory (~100 MB); a 100k-entry policy has ~100k nodes

_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

TAG_STR = "tag:yaml.org,2002:str"
TAG_INT = "tag:yaml.org,2002:int"
_TAG_NAMES = {
    TAG_STR: "a string",
    TAG_INT: "an integer",
    "tag:yaml.org,2002:float": "a number",
    "tag:yaml.org,2002:bool": "a boolean",
    "tag:yaml.org,2002:null": "nothing (null)",
    "tag:yaml.org,2002:timestamp": "a date",
    "tag:yaml.org,2002:merge": "a YAML merge key (<<)",
}
_TAG_MAP, _TAG_SEQ = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"

TOP_KEYS = ("apiVersion", "kind", "groups", "intraGroup", "rules")
TOP_REQUIRED = ("apiVersion", "kind", "groups")
RULE_KEYS = ("from", "to", "ports")
RULE_REQUIRED = ("from", "to")

SIMPLE_KEY = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")
GROUP_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,62}\Z")
DECIMAL = re.compile(r"(0|[1-9][0-9]{0,9})\Z")
PORT_SPEC = re.compile(r"(?P<proto>[A-Za-z0-9]+)(?:/(?P<lo>[0-9]+)(?:-(?P<hi>[0-9]+))?)?\Z")
PORT_MIN, PORT_MAX = 1, 65535


def load_policy(path) -> model.Policy:
    """Read and parse a policy file; PolicyError(path, line, field) on any problem."""
    path = str(path)
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_POLICY_BYTES + 1)
    except OSError as err:
        raise PolicyError(f"cannot read: {err.strerror or err}", path=path) from None
    return parse_policy(data, source=path)


def parse_policy(text, source="<string>") -> model.Policy:
    """Parse policy text (str or bytes); PolicyError naming `source`, line and field."""
    text = _as_text(text, source)
    with gc_paused():   # a big policy is ~4 acyclic objects per value: see bayctl/gcpause.py
        root = _compose(text, source)
        if root is None:
            raise PolicyError("empty policy (expected apiVersion, kind, groups, rules)", path=source, line=1)
        policy = _PolicyReader(source).read(root)
        del root    # freed here, so the collector's first pass after the pause does not walk it
    return policy


# --- text and YAML -------------------------------------------------------------------------

def _as_text(text, source) -> str:
    if isinstance(text, (bytes, bytearray)):
        if len(text) > MAX_POLICY_BYTES:
            raise PolicyError(f"file too large (over {MAX_POLICY_BYTES} bytes)", path=source)
        try:
            text = bytes(text).decode("utf-8-sig")
        except UnicodeDecodeError as err:
            line = text[: err.start].count(b"\n") + 1
            raise PolicyError("not UTF-8 text", path=source, line=line) from None
    elif not isinstance(text, str):
        raise PolicyError(f"expected policy text, got {type(text).__name__}", path=source)
    if len(text) > MAX_POLICY_BYTES:
        raise PolicyError(f"file too large (over {MAX_POLICY_BYTES} characters)", path=source)
    try:
        text.encode("utf-8")        # lone surrogates (from a lenient decoder) libyaml cannot take
    except UnicodeEncodeError as err:
        line = text[: err.start].count("\n") + 1
        raise PolicyError("not valid Unicode text", path=source, line=line) from None
    if "\x00" in text:
        # libyaml would read a NUL as the end of the text and accept a truncated policy.
        line = text[: text.index("\x00")].count("\n") + 1
        raise PolicyError("not a text file (contains NUL bytes)", path=source, line=line)
    return text


def _compose(text, source):
    """Compose the single YAML document into nodes, refusing aliases and deep nesting."""
    try:
        return _compose_with(_Loader, text, source)
    except _ReaderNestingLimit:
        # libyaml 0.2.6+ (PyYAML 6.0.4's wheels) scans a run of '[' or '{' ahead of the events
        # and stops at its own limit (1000) before MAX_DEPTH is ever counted. Its limit is far
        # above ours, so the pure-Python reader, which yields events as it goes, meets
        # MAX_DEPTH first and the error is bayctl's, at the same line, whatever the version.
        return _compose_with(yaml.SafeLoader, text, source)


class _ReaderNestingLimit(Exception):
    """The YAML reader refused the text for nesting deeper than its own limit."""


def _compose_with(loader_class, text, source):
    try:
        loader = loader_class(text)      # the pure-Python reader checks characters right here
    except yaml.YAMLError as err:
        raise _yaml_error(source, text, err) from None
    stack = []          # open collections: [node, pending mapping key or None]
    root = None
    documents = 0
    scalar_tags = {}    # (value, implicit) -> resolved tag: policies repeat names and ports a lot
    nodes = 0
    # The loop runs once per YAML event (~100k for a 100k-entry policy): dispatch on the exact
    # event type and attach inline, since a function call per event is a third of its cost.
    get_event, resolve = loader.get_event, loader.resolve
    starts = {SequenceStartEvent: SequenceNode, MappingStartEvent: MappingNode}
    try:
        while True:
            event = get_event()
            kind = type(event)
            if kind is ScalarEvent:
                nodes += 1
                if nodes > MAX_NODES:
                    raise _too_many_nodes(source, event)
                tag = event.tag
                if tag is None or tag == "!":
                    tag = scalar_tags.get((event.value, event.implicit))
                    if tag is None:
                        tag = scalar_tags[(event.value, event.implicit)] = resolve(ScalarNode, event.value,
                                                                                  event.implicit)
                node = ScalarNode(tag, event.value, event.start_mark, event.end_mark, style=event.style)
            elif kind in starts:
                nodes += 1
                if nodes > MAX_NODES:
                    raise _too_many_nodes(source, event)
                if len(stack) >= MAX_DEPTH:
                    raise _at(source, event.start_mark, f"nested more than {MAX_DEPTH} levels deep")
                node_class = starts[kind]
                tag = event.tag
                if tag is None or tag == "!":
                    tag = resolve(node_class, None, event.implicit)
                stack.append([node_class(tag, [], event.start_mark, event.end_mark), None])
                continue
            elif kind is SequenceEndEvent or kind is MappingEndEvent:
                node = stack.pop()[0]
                node.end_mark = event.end_mark
            elif kind is DocumentStartEvent:
                documents += 1
                if documents > 1:
                    raise _at(source, event.start_mark, "a policy file holds one YAML document")
                continue
            elif kind is AliasEvent:
                raise _at(source, event.start_mark, "YAML aliases (*name) are not allowed in a policy"
                          " (to mean any group, quote it: \"*\")")
            elif kind is StreamEndEvent or event is None:
                break
            else:
                continue    # stream start, document end
            if not stack:
                root = node
                continue
            frame = stack[-1]
            parent = frame[0]
            if type(parent) is SequenceNode:
                parent.value.append(node)
            elif frame[1] is None:
                frame[1] = node
            else:
                parent.value.append((frame[1], node))
                frame[1] = None
    except yaml.YAMLError as err:
        reader_limit = "maximum nesting depth" in str(getattr(err, "problem", ""))
        if reader_limit and loader_class is not yaml.SafeLoader:
            raise _ReaderNestingLimit() from None
        raise _yaml_error(source, text, err) from None
    except RecursionError:  # not reachable with MAX_DEPTH, kept so nothing but PolicyError escapes
        raise PolicyError("nested too deep", path=source) from None
    finally:
        loader.dispose()
    return root


def _too_many_nodes(source, event):
    return _at(source, event.start_mark, f"more than {MAX_NODES} YAML values: too large a policy")


def _yaml_error(source, text, err):
    mark = getattr(err, "problem_mark", None) or getattr(err, "context_mark", None)
    if mark is not None:
        line = mark.line + 1
    elif getattr(err, "position", None) is not None:   # ReaderError: a character offset
        line = text[: err.position].count("\n") + 1
    else:
        line = None
    problem = getattr(err, "problem", None) or getattr(err, "reason", None) or str(err).splitlines()[0]
    context = getattr(err, "context", None)
    message = f"not valid YAML: {context + ', ' if context else ''}{problem}"
    lines = text.splitlines()
    if line and line <= len(lines) and "*" in lines[line - 1]:
        message += " (to mean any group, quote it: \"*\")"
    return PolicyError(" ".join(message.split()), path=source, line=line)


def _at(source, mark, message):
    return PolicyError(message, path=source, line=mark.line + 1)


# --- checking nodes ------------------------------------------------------------------------

def _describe(node) -> str:
    if isinstance(node, MappingNode) and node.tag == _TAG_MAP:
        return "a mapping"
    if isinstance(node, SequenceNode) and node.tag == _TAG_SEQ:
        return "a list"
    return _TAG_NAMES.get(node.tag, f"a value tagged {node.tag}")


def _line(node) -> int:
    return node.start_mark.line + 1


def _join(field, key):
    """Field path of `key` under `field`; odd keys quoted so the path stays one printable line."""
    if not SIMPLE_KEY.match(key):
        key = _quote(key)
    return f"{field}.{key}" if field else key


def _quote(value: str, limit: int = 40) -> str:
    shown = value if len(value) <= limit else value[:limit] + "..."
    return repr(shown)


class _PolicyReader:
    """Walks the composed nodes of one file; knows the file name for every error."""

    def __init__(self, source):
        self.source = source
        self.port_specs = {}    # text -> PortSpec already accepted in this file

    def fail(self, node, field, message):
        return PolicyError(message, path=self.source, line=_line(node) if node is not None else None,
                           field=field or None)

    # generic shapes

    def mapping(self, node, field, allowed, required):
        """Check a mapping's keys; return {key: (key_node, value_node)}."""
        if not isinstance(node, MappingNode) or node.tag != _TAG_MAP:
            expected = "a mapping" if field else "a policy (a mapping with apiVersion, kind, groups, rules)"
            raise self.fail(node, field, f"expected {expected}, got {_describe(node)}")
        found = {}
        for key_node, value_node in node.value:
            key = self.key(key_node, field)
            where = _join(field, key)
            if key in found:
                raise self.fail(key_node, where,
                                f"duplicate key (first at line {_line(found[key][0])})")
            if key not in allowed:
                raise self.fail(key_node, where, f"unknown key {_quote(key)} (expected {', '.join(allowed)})")
            found[key] = (key_node, value_node)
        for key in required:
            if key not in found:
                raise self.fail(node, _join(field, key), "missing")
        return found

    def key(self, node, field):
        if not isinstance(node, ScalarNode) or node.tag != TAG_STR:
            raise self.fail(node, field or None, f"keys must be strings, got {_describe(node)}")
        return node.value

    def string(self, node, field, what="a string"):
        if not isinstance(node, ScalarNode) or node.tag != TAG_STR:
            raise self.fail(node, field, f"expected {what}, got {_describe(node)}")
        return node.value

    def sequence(self, node, field, what):
        if not isinstance(node, SequenceNode) or node.tag != _TAG_SEQ:
            raise self.fail(node, field, f"expected a list of {what}, got {_describe(node)}")
        return node.value

    def decimal(self, node, field, what):
        """A plain decimal integer scalar (no 0x, 0o, 1_000 or 1:40 forms), bounded in length."""
        if not isinstance(node, ScalarNode) or node.tag != TAG_INT:
            raise self.fail(node, field, f"expected {what}, got {_describe(node)}")
        if not DECIMAL.match(node.value):
            raise self.fail(node, field, f"bad {what} {_quote(node.value)} (write it in decimal, 1-65535)")
        return int(node.value)

    # the policy

    def read(self, root) -> model.Policy:
        top = self.mapping(root, "", TOP_KEYS, TOP_REQUIRED)
        api = self.string(top["apiVersion"][1], "apiVersion")
        if api != model.API_VERSION:
            raise self.fail(top["apiVersion"][1], "apiVersion",
                            f"unsupported apiVersion {_quote(api)} (expected {model.API_VERSION})")
        kind = self.string(top["kind"][1], "kind")
        if kind != model.KIND:
            raise self.fail(top["kind"][1], "kind",
                            f"unsupported kind {_quote(kind)} (expected {model.KIND})")
        groups = self.groups(top["groups"][1])
        intra = model.INTRA_ALLOW
        if "intraGroup" in top:
            node = top["intraGroup"][1]
            intra = self.string(node, "intraGroup", "allow or deny")
            if intra not in (model.INTRA_ALLOW, model.INTRA_DENY):
                raise self.fail(node, "intraGroup", f"expected allow or deny, got {_quote(intra)}")
        rules = []
        if "rules" in top:
            node = top["rules"][1]
            # `rules:` with nothing after it reads as null: a policy with no rules.
            if not (isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null"):
                for index, rule_node in enumerate(self.sequence(node, "rules", "rules")):
                    rules.append(self.rule(rule_node, f"rules[{index}]", groups))
        return model.make_policy(groups, rules, intra, source=self.source)

    def groups(self, node):
        if isinstance(node, ScalarNode) and node.tag == "tag:yaml.org,2002:null":
            return {}
        if not isinstance(node, MappingNode) or node.tag != _TAG_MAP:
            raise self.fail(node, "groups", f"expected a mapping of group name to tag, got {_describe(node)}")
        groups, lines, owners = {}, {}, {}
        for key_node, value_node in node.value:
            name = self.group_name(key_node)
            field = f"groups.{name}"
            if name in groups:
                raise self.fail(key_node, field, f"duplicate group name (first at line {lines[name]})")
            tag = self.decimal(value_node, field, "group tag")
            if tag == layout.GROUP_EXTERNAL:
                raise self.fail(value_node, field, "tag 0 is reserved for external (use 1-65535)")
            if not layout.GROUP_MIN <= tag <= layout.GROUP_MAX:
                raise self.fail(value_node, field, f"tag {tag} out of range (use 1-65535)")
            if tag in owners:
                first = owners[tag]
                raise self.fail(value_node, field,
                                f"duplicate tag {tag} (already group {_quote(first)} at line {lines[first]})")
            groups[name], lines[name], owners[tag] = tag, _line(key_node), name
        return groups

    def group_name(self, node):
        if not isinstance(node, ScalarNode) or node.tag != TAG_STR:
            shown = f" {_quote(node.value)}" if isinstance(node, ScalarNode) else ""
            raise self.fail(node, "groups",
                            f"group names must start with a letter, got {_describe(node)}{shown}")
        name = node.value
        if name == model.EXTERNAL:
            raise self.fail(node, f"groups.{name}", "'external' is reserved (peers in no group, tag 0)")
        if not GROUP_NAME.match(name):
            raise self.fail(node, f"groups.{_quote(name)}",
                            "bad group name (a letter, then letters, digits, '-', '_' or '.'; 63 at most)")
        return name

    def rule(self, node, field, groups):
        parts = self.mapping(node, field, RULE_KEYS, RULE_REQUIRED)
        sources = self.members(parts["from"][1], f"{field}.from", groups)
        destinations = self.members(parts["to"][1], f"{field}.to", groups)
        ports = ()
        if "ports" in parts:
            ports_node = parts["ports"][1]
            items = self.sequence(ports_node, f"{field}.ports", "ports like tcp/80")
            if not items:
                raise self.fail(ports_node, f"{field}.ports",
                                "empty list (leave ports out to allow every protocol and port)")
            ports = tuple(self.port(item, field, index) for index, item in enumerate(items))
        return model.Rule(sources, destinations, ports, line=_line(node))

    def members(self, node, field, groups):
        """from/to: a group name, a tag number, '*' or a list of names and numbers."""
        if isinstance(node, SequenceNode) and node.tag == _TAG_SEQ:
            if not node.value:
                raise self.fail(node, field, "empty list (name at least one group)")
            return tuple(self.member(item, f"{field}[{index}]", groups, in_list=True)
                         for index, item in enumerate(node.value))
        return (self.member(node, field, groups, in_list=False),)

    def member(self, node, field, groups, in_list):
        what = "a group name, a tag number or \"*\""
        if isinstance(node, ScalarNode) and node.tag == TAG_INT:
            tag = self.decimal(node, field, "group tag")
            if tag == layout.GROUP_EXTERNAL:
                return model.EXTERNAL
            for name, group_tag in groups.items():
                if group_tag == tag:
                    return name
            raise self.fail(node, field, f"unknown group tag {tag} ({_known(groups, tags=True)})")
        name = self.string(node, field, what)
        if name == model.ANY_GROUP:
            if in_list:
                raise self.fail(node, field, "\"*\" already means every group; use it alone, not in a list")
            return name
        if name != model.EXTERNAL and name not in groups:
            raise self.fail(node, field, f"unknown group {_quote(name)} ({_known(groups)})")
        return name

    def port(self, node, rule_field, index):
        # Runs once per port (100k times in a big policy): a port seen before costs a lookup;
        # the field's name is only spelled out for a new port, where an error may need it.
        if node.tag == TAG_STR and type(node) is ScalarNode:
            known = self.port_specs.get(node.value)
            if known is not None:
                return known
        field = f"{rule_field}.ports[{index}]"
        text = self.string(node, field, "a port spec like tcp/80")
        known = self.port_specs[text] = self.new_port(node, field, text)
        return known

    def new_port(self, node, field, text):
        spec = text.strip()
        match = PORT_SPEC.match(spec)
        if not match:
            raise self.fail(node, field, f"bad port spec {_quote(text)}"
                                         " (expected proto, proto/port or proto/lo-hi, e.g. tcp/5432)")
        proto = match["proto"].lower()
        if proto not in layout.PROTO_NUMBERS:
            raise self.fail(node, field, f"bad protocol {_quote(match['proto'])} in {_quote(text)}"
                                         " (expected tcp, udp or icmp)")
        if match["lo"] is None:
            return model.PortSpec(proto)
        if proto == "icmp":
            raise self.fail(node, field, f"bad port spec {_quote(text)} (icmp has no ports: write icmp)")
        lo = self.port_number(node, field, match["lo"], text)
        hi = self.port_number(node, field, match["hi"], text) if match["hi"] is not None else lo
        if lo > hi:
            raise self.fail(node, field, f"bad port range {_quote(text)} (low end {lo} above high end {hi})")
        return model.PortSpec(proto, lo, hi)

    def port_number(self, node, field, digits, text):
        number = int(digits) if len(digits) <= 6 else PORT_MAX + 1
        if not PORT_MIN <= number <= PORT_MAX:
            raise self.fail(node, field, f"bad port {_quote(text)} (ports are {PORT_MIN}-{PORT_MAX})")
        return number


def _known(groups, tags=False, limit=8):
    if tags:
        items = [str(tag) for tag in sorted(groups.values())] + ["0 (external)"]
        label = "tags"
    else:
        items = sorted(groups) + [model.EXTERNAL, '"*"']
        label = "groups"
    shown = ", ".join(items[:limit]) + (", ..." if len(items) > limit else "")
    return f"{label}: {shown}"
