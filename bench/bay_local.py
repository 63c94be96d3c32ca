"""Local bay lifecycle, measured once: create, seed (both remote modes), verify, delete.

Prints ONE JSON document: raw seconds per phase and the ratios that matter, all from this
one run (never compare absolute times across runs or machines). Needs root.

    python3 bench/bay_local.py [--slaves 2]
"""

import argparse
import json
import os
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)

WEB_DB = os.path.join(ROOT, "bayctl", "share", "policies", "web-db.yaml")
STARS = os.path.join(ROOT, "bayctl", "share", "policies", "stars.yaml")


def timed(fn, *args, **kwargs):
    started = time.perf_counter()
    result = fn(*args, **kwargs)
    return result, round(time.perf_counter() - started, 3)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slaves", type=int, default=2)
    args = parser.parse_args()
    os.environ["BAYCTL_STATE_DIR"] = tempfile.mkdtemp(prefix="bb-bench-")
    from bayctl import api
    from bayctl.seed.runner import seed_policy

    name = "bbbench"
    figures = {"slaves": args.slaves}
    try:
        bay, figures["create_s"] = timed(api.create_bay, name, provider="local", slaves=args.slaves,
                                         policy=WEB_DB)
        _, figures["create_again_s"] = timed(api.create_bay, name, provider="local", slaves=args.slaves,
                                             policy=WEB_DB)
        report, figures["verify_web_db_s"] = timed(bay.verify)
        figures["verify_web_db_probes"] = len(report.pairs)
        figures["verify_web_db_mismatches"] = len(report.mismatches)
        _, figures["apply_stars_s"] = timed(bay.apply_policy, STARS)
        report, figures["verify_stars_s"] = timed(bay.verify)
        figures["verify_stars_probes"] = len(report.pairs)
        figures["verify_stars_mismatches"] = len(report.mismatches)
        # The two remote modes of bayctl.seed, same slaves, same change (web-db <-> stars).
        master = bay.master
        for mode, policy in (("cli", WEB_DB), ("curl", STARS), ("cli_again", WEB_DB), ("curl_again", STARS)):
            with open(policy) as handle:
                text = handle.read()
            results, seconds = timed(seed_policy, bay.slaves, text, bay_state_dir=bay.state.directory,
                                     ssh_user=bay.ssh_user, ssh_key=bay.ssh_key, bastion=master,
                                     remote=mode.split("_")[0])
            figures[f"seed_{mode}_s"] = seconds
            figures[f"seed_{mode}_statuses"] = sorted({r.status for r in results})
    finally:
        _, figures["delete_s"] = timed(api.delete_bay, name)
    cli = figures["seed_cli_s"] + figures["seed_cli_again_s"]
    curl = figures["seed_curl_s"] + figures["seed_curl_again_s"]
    figures["ratios"] = {
        "seed_cli_over_curl": round(cli / curl, 2) if curl else None,
        "create_over_resume": round(figures["create_s"] / figures["create_again_s"], 2),
        "verify_stars_over_web_db": round(figures["verify_stars_s"] / figures["verify_web_db_s"], 2),
    }
    print(json.dumps(figures, indent=1))


if __name__ == "__main__":
    main()
