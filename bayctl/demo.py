"""`bayctl demo`: a local bay, each example policy verified on it, the bay deleted.

A thin wrapper over the one engine (the local bay + `bayctl verify`): what it shows is exactly
what `bayctl create mesosbay NAME --policy P && bayctl verify NAME --grid` shows, with
`bayctl policy apply` + `verify` for each further policy. It keeps no namespaces, probes or
cleanup of its own.
"""

import sys

from bayctl.errors import BayctlError, NodeError

DEFAULT_POLICIES = ("web-db", "stars")
DEFAULT_BAY = "bdemo"


def default_policies():
    from bayctl.share import example_policies

    return [example_policies()[name] for name in DEFAULT_POLICIES]


def run_demo(policy_files=None, bay=DEFAULT_BAY, keep=False, slaves=2, out=sys.stdout, status=None):
    """Returns 0 when every probe of every policy agrees with it, else 1."""
    import os

    from bayctl import api
    from bayctl.policy import load_policy
    from bayctl.share import policy_path

    paths = [policy_path(path) for path in (policy_files or default_policies())]
    for path in paths:
        load_policy(path)  # bad input: one line naming file and line, before anything is made
    if os.geteuid() != 0:
        raise NodeError("bayctl demo needs root (a local bay: network namespaces, bpffs, tc): run it as root")
    if api.find_bay(bay) is not None:  # never resume, and then delete, a bay the user made
        raise BayctlError(f"bay {bay} exists already: `bayctl demo --bay OTHER` or `bayctl delete bay {bay}`")
    mismatches = 0
    try:
        api.create_bay(bay, provider="local", slaves=slaves, policy=paths[0], status=status)
        for index, path in enumerate(paths):
            if index:
                api.apply_policy(bay, path, status=status)
            report = api.verify_bay(bay, status=status)
            out.write(f"\n== {path}  digest {report.policy_digest[:12]}\n")
            out.write("".join(f"   {line}\n" for line in report.grid().splitlines()))
            mismatches += len(report.mismatches)
        verdict = "every probe as the policies say" if not mismatches else f"{mismatches} probe(s) DISAGREE"
        out.write(f"\nresult: {verdict}\n")
    finally:
        if keep:
            out.write(f"kept: bay {bay} (`bayctl show {bay}`, `bayctl ssh {bay}`); "
                      f"remove with: bayctl delete bay {bay}\n")
        else:
            api.delete_bay(bay, status=status)
    return 1 if mismatches else 0
