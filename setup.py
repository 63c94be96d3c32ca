"""bayctl packaging. `pip install -e .` gives the `bayctl` command.

The datapath object (policy/*.bpf.c -> bayctl/node/bpf/*.bpf.o) is compiled with clang
by `build_bpf`, which `build_py` and `develop` (editable installs) run first.
"""

import os
import subprocess

from setuptools import Command, find_packages, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop
from setuptools.command.editable_wheel import editable_wheel

HERE = os.path.dirname(os.path.abspath(__file__))


class BuildBpf(Command):
    """Compile the eBPF datapath with clang (see policy/Makefile)."""

    description = "compile the eBPF datapath objects"
    user_options = []

    def initialize_options(self):
        pass

    def finalize_options(self):
        pass

    def run(self):
        if os.path.exists(os.path.join(HERE, "policy", "Makefile")):
            subprocess.run(["make", "-C", os.path.join(HERE, "policy")], check=True)


class BuildPyWithBpf(build_py):
    def run(self):
        self.run_command("build_bpf")
        super().run()


class DevelopWithBpf(develop):
    def run(self):
        self.run_command("build_bpf")
        super().run()


class EditableWheelWithBpf(editable_wheel):  # `pip install -e .` (PEP 660)
    def run(self):
        self.run_command("build_bpf")
        super().run()


# Each room's own dependencies. A slave needs only "node"; the controller "cloud".
EXTRAS = {
    "node": ["pyroute2>=0.7"],
    "cloud": [
        "openstacksdk>=3.0",
        "python-heatclient>=3.0",
        "python-magnumclient>=4.0",
    ],
    "seed": ["asyncssh>=2.14"],
    "image": ["diskimage-builder>=3.30"],
    "test": [
        "pytest>=7",
        "pytest-timeout>=2",
        "hypothesis>=6",
    ],
    "lint": ["ruff>=0.4"],
}
EXTRAS["all"] = sorted({dep for name, deps in EXTRAS.items() if name != "lint" for dep in deps})

setup(
    name="bayctl",
    version="0.1.0",
    description="Policy-isolated Mesos bays on OpenStack, or on this one machine",
    long_description=open(os.path.join(HERE, "README.md")).read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.9",
    packages=find_packages(include=["bayctl", "bayctl.*"]),
    include_package_data=True,
    package_data={"bayctl": ["node/bpf/*.o", "data/*"]},
    install_requires=["PyYAML>=6.0", "cliff>=4.0"],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": ["bayctl = bayctl.cli.main:main", "bayctl-agent = bayctl.node.agent:main",
                            "bayctl-docker-plugin = bayctl.node.docker_driver:main",
                            "bayctl-cni = bayctl.node.cni:main"],
        "pytest11": ["bayctl = bayctl.pytest_plugin"],
    },
    cmdclass={
        "build_bpf": BuildBpf,
        "build_py": BuildPyWithBpf,
        "develop": DevelopWithBpf,
        "editable_wheel": EditableWheelWithBpf,
    },
)
