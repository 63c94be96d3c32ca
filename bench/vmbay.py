#!/usr/bin/env python3
"""Time from `create` to a verified bay of REAL VMs (the VM tier, issue 13), per step.

Prints ONE JSON document. What runs is the VM tier of the tests: the REAL keystone, glance
and heat (tests/harness/cloudtier), the Nova and Neutron emulators with servers booted as qemu VMs
(TCG) on a network namespace (tests/harness/emulators/vms.py, fabric.py), the node image built by
diskimage-builder with the tests' stand-in Mesos packages and uploaded to Glance. Then one
bay (1 master + SLAVES slaves) through bayctl's create steps with the production templates
and environments/openstack.yaml, `verify`, and delete. Set-up (tier, image, upload) is timed
apart from the bay; each create step is timed from its start to its end line, and "ratios"
puts each step beside the whole create.

    python3 bench/vmbay.py                 # as root; 10-25 min on a 2-core machine
    python3 bench/vmbay.py --slaves 1
    python3 bench/vmbay.py --image /path/node.qcow2   # an image built already (not timed)
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
import benchpath  # noqa: E402,F401  (this tree and tests/harness on sys.path)

WEB_DB = os.path.join(HERE, "..", "bayctl", "share", "policies", "web-db.yaml")


class TimedStatus:
    """bayctl's Status, recording when each step starts and ends."""

    def __init__(self):
        from bayctl.create.context import Status

        self.steps = {}
        self._current, self._t0 = None, None
        bench = self

        class _Status(Status):
            def start(self, title):
                bench._current, bench._t0 = title, time.monotonic()
                super().start(title)

            def end(self, outcome):
                bench.steps[bench._current] = {"seconds": round(time.monotonic() - bench._t0, 1),
                                               "outcome": outcome}
                super().end(outcome)

        self.status = _Status(lambda line: print(line, file=sys.stderr, flush=True))


def build_image(work, timings):
    from harness import fixtures_image as fi

    from bayctl.image import DEFAULT_ELEMENTS, ImageRequest, blockdev, build, source

    for d in ("repo", "debs", "pkg", "out"):
        os.makedirs(os.path.join(work, d))
    fi.build_standin_deb("mesos", fi.STANDINS["mesos"], os.path.join(work, "repo"), os.path.join(work, "pkg"))
    fi.build_standin_deb("marathon", fi.STANDINS["marathon"], os.path.join(work, "repo"),
                         os.path.join(work, "pkg"))
    fi.build_standin_deb("zookeeperd", fi.STANDINS["zookeeperd"], os.path.join(work, "debs"),
                         os.path.join(work, "pkg"))
    server = fi.AptRepoServer(os.path.join(work, "repo"))
    try:
        env = {"DIB_MESOS_APT_REPO": server.url, "DIB_MESOS_DEB_DIR": os.path.join(work, "debs")}
        if blockdev.has_device_mapper():
            env["DIB_BLOCK_DEVICE_CONFIG"] = blockdev.FLAT_EXT4_LAYOUT
        t0 = time.monotonic()
        with open(os.path.join(work, "out", "wheelhouse.log"), "w") as log:
            wheelhouse = source.wheelhouse(fi.image_cache_dir(), log)
        request = ImageRequest(output=os.path.join(work, "out", "node.qcow2"),
                               elements=(*DEFAULT_ELEMENTS, "bayctl-test-assert"), compress=False,
                               cache_dir=fi.image_cache_dir(), env=env, elements_dirs=(fi.TEST_ELEMENTS_DIR,),
                               bayctl_source=wheelhouse)
        image = build(request)
        timings["image_build"] = round(time.monotonic() - t0, 1)
        return image
    finally:
        server.close()


def given_image(path):
    """The ImageBuild of an image built already, from the record `build` keeps beside it."""
    from bayctl.image import ImageBuild, record

    rec = record.read_record(path)
    if not rec or "inputs_digest" not in rec:
        raise SystemExit(f"{path}: no build record beside it (is it an image `bayctl image build` made?)")
    return ImageBuild(path=path, image_format=rec.get("format", "qcow2"), distro=rec.get("distro", "debian"),
                      release=rec.get("release", ""), inputs_digest=rec["inputs_digest"], reused=True,
                      seconds=0.0, log_path=rec.get("log"), sha256=rec.get("sha256", ""),
                      size=rec.get("size", 0))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--slaves", type=int, default=2)
    parser.add_argument("--image", help="a node image (qcow2) built already, e.g. by the tests' session "
                        "(its build is then not timed); default: build one")
    args = parser.parse_args()

    import yaml
    from harness.cloudtier import venv
    from harness.cloudtier.emulators_wiring import start_emulators
    from harness.cloudtier.tier import PORTS, VM_PROJECT, Tier
    from harness.emulators.fabric import EXTERNAL_CIDR, Fabric
    from harness.emulators.vms import QemuLauncher

    from bayctl import api
    from bayctl.cloud.connection import connect
    from bayctl.image.upload import upload
    from bayctl.providers.heat import templates_dir

    setup, result = {}, {"slaves": args.slaves, "memory_mb": 448, "accel": "tcg"}
    work = tempfile.mkdtemp(prefix="bayctl-bench-vmbay-", dir="/var/tmp")
    os.environ["BAYCTL_STATE_DIR"] = os.path.join(work, "bays")
    tier = emulators = fabric = launcher = None
    try:
        t0 = time.monotonic()
        venv.ensure_venv()
        tier = Tier(os.path.join(work, "tier")).start()
        emulators = start_emulators(tier)
        setup["tier"] = round(time.monotonic() - t0, 1)
        if args.image:
            image = given_image(args.image)
            setup["image_build"] = "given (--image)"
        else:
            image = build_image(os.path.join(work, "image"), setup)
        admin = connect(**tier.auth)
        vms = connect(**tier.user_auth(VM_PROJECT, tier.demo_password, VM_PROJECT))
        t0 = time.monotonic()
        glance_image = upload(vms, image, "bayctl-vm-node", timeout=900).image
        setup["image_upload"] = round(time.monotonic() - t0, 1)
        flavor = admin.compute.create_flavor(name="vm-node", ram=448, vcpus=1, disk=4)
        key = os.path.join(work, "key")
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
        with open(key + ".pub") as f:
            vms.compute.create_keypair(name="bench-key", public_key=f.read().strip())
        fabric = Fabric()
        emulators.neutron.fabric = fabric
        public = admin.network.create_network(name="vm-public", is_router_external=True)
        admin.network.create_subnet(network_id=public.id, cidr=EXTERNAL_CIDR, ip_version=4)
        launcher = QemuLauncher(os.path.join(work, "vms"), PORTS["heat"], fabric=fabric)
        emulators.nova.launcher = launcher

        auth = dict(tier.user_auth(VM_PROJECT, tier.demo_password, VM_PROJECT))
        region = auth.pop("region_name")
        auth.pop("identity_api_version")
        clouds = os.path.join(work, "clouds.yaml")
        with open(clouds, "w") as f:
            yaml.safe_dump({"clouds": {"bench": {"auth": auth, "region_name": region,
                                                 "identity_api_version": 3}}}, f)
        os.environ["OS_CLIENT_CONFIG_FILE"] = clouds
        options = {"environments": [os.path.join(templates_dir(), "environments", "openstack.yaml")],
                   "poll_interval": 5}
        timed = TimedStatus()
        t0 = time.monotonic()
        api.create_bay("benchvm", provider="heat", slaves=args.slaves, image=glance_image.id,
                       flavor=flavor.name,
                       keypair="bench-key", external_network="vm-public", cloud="bench", ssh_user="debian",
                       ssh_key=key, policy=WEB_DB, timeout="3600", status=timed.status,
                       provider_options=options)
        created = time.monotonic() - t0
        t1 = time.monotonic()
        report = api.verify_bay("benchvm")
        verified = time.monotonic() - t1
        t2 = time.monotonic()
        api.delete_bay("benchvm", provider_options=options)
        result.update({
            "setup_seconds": setup,
            "create_seconds": round(created, 1),
            "verify_seconds": round(verified, 1),
            "create_to_verified_seconds": round(created + verified, 1),
            "delete_seconds": round(time.monotonic() - t2, 1),
            "steps": timed.steps,
            "ratios": {step: round(v["seconds"] / created, 3) for step, v in timed.steps.items()},
            "verify": {"pairs": len(report.pairs), "mismatches": len(report.mismatches), "ok": report.ok},
        })
    finally:
        if launcher is not None:
            launcher.close()
        if emulators is not None:
            emulators.stop()
        if fabric is not None:
            fabric.close()
        if tier is not None:
            tier.stop()
        shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
