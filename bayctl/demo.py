"""`bayctl demo`: enforce the example policies on this machine and show that they hold.

Until the create pipeline can stand up a local bay, the demo builds the smallest thing that
shows the node side working for real: containers as network namespaces on one bridge, a
node agent (a real process, its own socket, pins and state), and for each policy the
connectivity between every pair of containers measured with real packets, printed next to
what the policy says.
"""

import os
import sys

from bayctl.demolab import Lab, group_members, policy_allows, probes_for
from bayctl.errors import NodeError

DEFAULT_POLICIES = ("web-db", "stars")
PASS, DROP = "pass", "drop"


def default_policies():
    from bayctl.share import example_policies

    return [example_policies()[name] for name in DEFAULT_POLICIES]


def paths(prefix):
    """Where a demo with `prefix` keeps its agent's socket, pins and state."""
    run_dir = f"/run/{prefix}"
    return {
        "socket": os.path.join(run_dir, "agent.sock"),
        "state_dir": os.path.join(run_dir, "state"),
        "pin_dir": f"/sys/fs/bpf/{prefix}",
        "log": os.path.join(run_dir, "agent.log"),
        "pid": os.path.join(run_dir, "agent.pid"),
    }


def run_demo(policy_files=None, prefix="bdemo", keep=False, timeout=2.0, out=sys.stdout):
    """Run the demo; returns 0 when every measured probe agrees with its policy, else 1."""
    from bayctl.policy import load_policy

    policy_files = list(policy_files or default_policies())
    from bayctl.share import policy_path

    policies = [load_policy(policy_path(path)) for path in policy_files]  # bad input: stop here
    if os.geteuid() != 0:
        raise NodeError("bayctl demo needs root (network namespaces, bpffs, tc): run it as root")
    clean(prefix)
    where = paths(prefix)
    os.makedirs(os.path.dirname(where["socket"]), mode=0o700, exist_ok=True)
    size = max(len(group_members(policy)) for policy in policies)
    lab = Lab(prefix).create()
    agent = None
    try:
        from bayctl.node.agent_process import AgentProcess

        members = [lab.add_member(f"c{index}") for index in range(1, size)] + [lab.add_member("ext")]
        agent = AgentProcess(where["socket"], where["pin_dir"], where["state_dir"], log_path=where["log"])
        agent.start()
        with open(where["pid"], "w") as handle:
            handle.write(f"{agent.process.pid}\n")
        out.write(f"agent pid {agent.process.pid}: socket {where['socket']}, pins {where['pin_dir']}\n")
        mismatches = 0
        for path, policy in zip(policy_files, policies):
            mismatches += _show_policy(lab, agent.client, members, path, policy, timeout, out)
        verdict = "every probe as the policies say" if not mismatches else f"{mismatches} probe(s) DISAGREE"
        out.write(f"\nresult: {verdict}\n")
        if keep:
            clean_flags = "--clean" if prefix == "bdemo" else f"--clean --prefix {prefix}"
            out.write(f"kept: namespaces {prefix}-*, agent pid {agent.process.pid} "
                      f"(bayctl node endpoints --socket {where['socket']}); "
                      f"remove with: bayctl demo {clean_flags}\n")
        return 1 if mismatches else 0
    finally:
        if not keep:
            if agent is not None:
                agent.close()
            lab.destroy()
            clean(prefix)


def _show_policy(lab, client, members, path, policy, timeout, out):
    """Apply `policy`, place the members in its groups, measure, print. Returns the mismatches."""
    with open(path, encoding="utf-8") as handle:
        applied = client.apply_policy(handle.read(), source=path)
    placed = group_members(policy)
    external = members[-1]
    roles = list(zip(members[:len(placed) - 1], placed[:-1])) + [(external, placed[-1])]
    for member in members[:-1]:
        client.remove_endpoint(member.ip)
    for member, (group, _tag) in roles[:-1]:
        client.add_endpoint(member.ip, group, ifname=member.ifname, netns=member.netns)
    probes = probes_for(policy)
    lab.listen(probes)
    pairs = [(a, b) for a in roles for b in roles if a[0] is not b[0]]
    measured = lab.measure([(a[0].name, b[0].name) for a, b in pairs], probes, timeout=timeout)

    digest, entries = applied["digest"][:12], applied["entries"]
    out.write(f"\n== {os.path.relpath(path)}  digest {digest}  ({entries} entries)\n")
    out.write("   " + ", ".join(f"{m.name} {m.ip} = {group}" for m, (group, _) in roles)
              + "  (external: registered nowhere)\n")
    label = {id(member): f"{group}({member.name})" for member, (group, _) in roles}
    width = max(len(label[id(a[0])]) + len(label[id(b[0])]) + 4 for a, b in pairs) + 2
    columns = [max(len(str(p)), 5) + 2 for p in probes]
    header = "".join(str(p).ljust(w) for p, w in zip(probes, columns))
    out.write(("   " + "from -> to".ljust(width) + header).rstrip() + "\n")
    mismatches = 0
    for (src, (_, src_tag)), (dst, (_, dst_tag)) in pairs:
        cells = []
        for probe, column in zip(probes, columns):
            reached = measured[(src.name, dst.name, probe)]
            cell = PASS if reached else DROP
            if reached != policy_allows(policy, src_tag, dst_tag, probe):
                mismatches += 1
                cell = cell.upper() + "!"
            cells.append(cell.ljust(column))
        row = f"{label[id(src)]} -> {label[id(dst)]}".ljust(width) + "".join(cells)
        out.write("   " + row.rstrip() + "\n")
    total = len(pairs) * len(probes)
    out.write(f"   {total - mismatches}/{total} probes as the policy says (cells: what real packets did; "
              "PASS!/DROP! would mark a disagreement)\n")
    return mismatches


def clean(prefix="bdemo"):
    """Remove what a demo with `prefix` left behind (--keep, or an interrupted run)."""
    import signal
    import subprocess

    from bayctl.node.agent_process import remove_tree

    where = paths(prefix)
    try:
        with open(where["pid"]) as handle:
            pid = int(handle.read().strip())
        if _is_agent(pid):
            os.kill(pid, signal.SIGTERM)
    except (FileNotFoundError, ValueError, ProcessLookupError):
        pass
    names = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout.split()
    for name in names:
        if name.startswith(f"{prefix}-"):
            subprocess.run(["ip", "netns", "del", name], capture_output=True)
    remove_tree(where["pin_dir"])
    remove_tree(os.path.dirname(where["socket"]))


def _is_agent(pid):
    # Only signal the demo's own agent: the pid file may be stale and the pid reused.
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"bayctl.node.agent" in handle.read()
    except OSError:
        return False
