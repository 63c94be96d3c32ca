#!/usr/bin/env python3
"""Node image builds: cold vs reuse (unchanged inputs) vs warm cache (inputs changed slightly).

Prints ONE JSON document. Three requests for the default node image, side by side in one run:
- cold:  an empty DIB_IMAGE_CACHE (debootstrap, every .deb downloaded) + building bayctl's wheels;
- reuse: the same request again: the inputs digest matches, DIB does not run;
- warm:  one element file changed (a bench element's nonce), same cache: DIB runs again with
         the debootstrap tarball, the apt cache and bayctl's wheelhouse warm.
Mesos/Marathon/ZooKeeper are the stand-in packages of tests/harness/fixtures_image.py (Mesos is packaged
nowhere reachable), served from 127.0.0.1 like in the tests. Needs root and the image extra.
"""

import argparse
import json
import os
import shutil
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)
from harness.fixtures_image import STANDINS, AptRepoServer, build_standin_deb  # noqa: E402

from bayctl.image import DEFAULT_ELEMENTS, ImageRequest, build, source  # noqa: E402

BENCH_ELEMENT = "bayctl-bench-nonce"


def write_bench_element(folder, nonce):
    """A one-file element whose content is the nonce: changing it changes the inputs digest."""
    static = os.path.join(folder, BENCH_ELEMENT, "static", "etc", "bayctl")
    os.makedirs(static, exist_ok=True)
    with open(os.path.join(folder, BENCH_ELEMENT, "README.rst"), "w") as f:
        f.write(f"{BENCH_ELEMENT}\n{'=' * len(BENCH_ELEMENT)}\n\nbench/image.py's input nonce.\n")
    with open(os.path.join(folder, BENCH_ELEMENT, "element-deps"), "w") as f:
        f.write("install-static\n")
    with open(os.path.join(static, "bench-nonce"), "w") as f:
        f.write(f"{nonce}\n")


class StepClock:
    """Seconds spent in each DIB phase, from the progress callback."""

    def __init__(self):
        self.phases = {}
        self._phase, self._since = None, None

    def __call__(self, step):
        now = time.monotonic()
        if self._phase is not None:
            self.phases[self._phase] = round(self.phases.get(self._phase, 0) + now - self._since, 1)
        self._phase, self._since = step.phase, now


def timed_build(request):
    clock = StepClock()
    started = time.monotonic()
    image = build(request, on_step=clock)
    # Milliseconds: a reused image comes back in a few of them.
    return {"seconds": round(time.monotonic() - started, 3), "reused": image.reused,
            "inputs_digest": image.inputs_digest[:16], "image_bytes": image.size,
            "phase_seconds": clock.phases}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workdir", default=None, help="where images and caches go (default: a temp folder)")
    parser.add_argument("--keep", action="store_true", help="keep the images and caches")
    args = parser.parse_args()

    work = args.workdir or tempfile.mkdtemp(prefix="bayctl-bench-image-", dir="/var/tmp")
    os.makedirs(work, exist_ok=True)
    folders = ("repo", "debs", "scratch", "elements")
    repo, debs, scratch, elements_dir = (os.path.join(work, d) for d in folders)
    for d in (repo, debs, scratch, elements_dir):
        os.makedirs(d, exist_ok=True)
    build_standin_deb("mesos", STANDINS["mesos"], repo, scratch)
    build_standin_deb("marathon", STANDINS["marathon"], repo, scratch)
    build_standin_deb("zookeeperd", STANDINS["zookeeperd"], debs, scratch)
    server = AptRepoServer(repo)
    cache = os.path.join(work, "cache")  # empty: the first build is cold
    try:
        # bayctl's wheels (make -C policy + pip wheel), part of the cold build; built once and
        # passed as the source so that other work changing the checkout meanwhile does not
        # change the inputs between the three requests.
        started = time.monotonic()
        with open(os.path.join(work, "wheelhouse.log"), "w") as log:
            wheelhouse = source.wheelhouse(cache, log)
        wheelhouse_seconds = round(time.monotonic() - started, 1)
        write_bench_element(elements_dir, "first")
        request = ImageRequest(
            output=os.path.join(work, "node.qcow2"), elements=(*DEFAULT_ELEMENTS, BENCH_ELEMENT),
            cache_dir=cache, elements_dirs=(elements_dir,), bayctl_source=wheelhouse,
            env={"DIB_MESOS_APT_REPO": server.url, "DIB_MESOS_DEB_DIR": debs},
        )
        cold = timed_build(request)
        cold["wheelhouse_seconds"] = wheelhouse_seconds
        cold["seconds"] = round(cold["seconds"] + wheelhouse_seconds, 1)
        reuse = timed_build(request)
        write_bench_element(elements_dir, "second")
        warm = timed_build(request)
    finally:
        server.close()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)

    print(json.dumps({
        "benchmark": "image",
        "elements": ["debian-minimal", *DEFAULT_ELEMENTS],
        "cold": cold,
        "reuse": reuse,
        "warm_cache": warm,
        "ratios": {
            "cold_over_reuse": round(cold["seconds"] / max(reuse["seconds"], 0.0005), 1),
            "cold_over_warm_cache": round(cold["seconds"] / warm["seconds"], 2),
        },
    }, indent=2))


if __name__ == "__main__":
    main()
