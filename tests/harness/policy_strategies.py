"""Hypothesis strategies for group policies: valid models, and packets worth asking about."""

from hypothesis import strategies as st

from bayctl.policy import PortSpec, Rule
from bayctl.policy.model import make_policy

# Names YAML would read as something else unless quoted: the dump must quote them.
TRICKY_NAMES = ["on", "yes", "no", "off", "y", "n", "null", "true", "False", "nan", "inf", "e1", "a.b", "x_1"]

group_names = st.one_of(
    st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True),
    st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,62}", fullmatch=True),
    st.sampled_from(TRICKY_NAMES),
).filter(lambda name: name != "external")

tags = st.integers(1, 65535)


@st.composite
def port_specs(draw):
    proto = draw(st.sampled_from(["tcp", "udp", "icmp"]))
    if proto == "icmp" or draw(st.integers(0, 4)) == 0:
        return PortSpec(proto)
    lo = draw(st.one_of(st.integers(1, 65535), st.sampled_from([1, 1023, 1024, 8000, 32768, 65535])))
    width = draw(st.one_of(st.just(0), st.integers(0, 300), st.integers(0, 65535)))
    return PortSpec(proto, lo, min(65535, lo + width))


@st.composite
def policies(draw, max_groups=6, max_rules=6):
    names = draw(st.lists(group_names, max_size=max_groups, unique=True))
    tag_list = draw(st.lists(tags, min_size=len(names), max_size=len(names), unique=True))
    groups = dict(zip(names, tag_list))
    members = names + ["external"]
    rules = []
    for _ in range(draw(st.integers(0, max_rules))):
        ends = []
        for _side in range(2):
            if draw(st.integers(0, 5)) == 0:
                ends.append(("*",))
            else:
                ends.append(tuple(draw(st.lists(st.sampled_from(members), min_size=1, max_size=3))))
        ports = tuple(draw(st.lists(port_specs(), max_size=4)))
        rules.append(Rule(ends[0], ends[1], ports))
    intra = draw(st.sampled_from(["allow", "deny"]))
    return make_policy(groups, rules, intra)


def interesting_ports(policy):
    """Every port at or next to a rule's range boundary, and the extremes."""
    ports = {0, 1, 65535}
    for rule in policy.rules:
        for spec in rule.ports:
            if not spec.any_port:
                edges = (spec.lo - 1, spec.lo, spec.hi, spec.hi + 1)
                ports.update(port for port in edges if 0 <= port <= 65535)
    return sorted(ports)


def packet_tags(policy):
    """Every tag of the policy (external included) plus one it does not know."""
    known = set(policy.groups.values())
    unknown = next(tag for tag in (7777, 7778, 7779, 7780, 7781, 7782, 7783) if tag not in known)
    return sorted(known | {unknown})


# IP protocols a packet may carry: the three the language names, and one it does not (GRE).
PACKET_PROTOS = (1, 6, 17, 47)
PORTED_PROTOS = (6, 17)
