"""The one build step pyproject.toml cannot declare: compile the eBPF datapath.

policy/*.bpf.c -> bayctl/node/bpf/*.bpf.o with clang (policy/Makefile), before build_py
collects the package data, for wheels, sdist builds and editable installs alike. A build
that cannot compile the object fails in one line naming what to install; it never makes a
wheel without the datapath.

The wheel stays tagged py3-none-any: the object is BPF bytecode, not host code, and every
little-endian Linux (amd64, arm64, ppc64el, riscv64, ...) loads the same object. The build
checks that it IS a little-endian BPF object (a big-endian build host would make one that
only big-endian kernels load, wrong under an `any` tag), see _check_object.
"""

import os
import shutil
import subprocess

from setuptools import Command, setup
from setuptools.command.build_py import build_py
from setuptools.command.develop import develop
from setuptools.command.editable_wheel import editable_wheel
from setuptools.errors import SetupError

HERE = os.path.dirname(os.path.abspath(__file__))
POLICY_DIR = os.path.join(HERE, "policy")
OBJECT = os.path.join(HERE, "bayctl", "node", "bpf", "bayctl_tc.bpf.o")
INSTALL_HINT = ("to build bayctl from source install clang, llvm, libbpf-dev and make "
                "(Debian: apt-get install clang llvm libbpf-dev make), or install a bayctl wheel")
EM_BPF = 247  # ELF e_machine of eBPF objects


def _missing_tools():
    missing = [tool for tool in ("make", os.environ.get("CLANG", "clang")) if shutil.which(tool) is None]
    if not os.path.exists("/usr/include/bpf/bpf_helpers.h"):
        missing.append("libbpf-dev (/usr/include/bpf/bpf_helpers.h)")
    return missing


def _check_object(path):
    with open(path, "rb") as handle:
        header = handle.read(20)
    little_endian = header[5] == 1
    machine = int.from_bytes(header[18:20], "little" if little_endian else "big")
    if header[:4] != b"\x7fELF" or machine != EM_BPF or not little_endian:
        raise SetupError(f"{path} is not a little-endian eBPF object: the py3-none-any wheel needs one "
                         "(build on a little-endian machine)")


class BuildBpf(Command):
    """Compile the eBPF datapath with clang (see policy/Makefile)."""

    description = "compile the eBPF datapath objects"
    user_options = []

    def initialize_options(self):
        pass

    def finalize_options(self):
        pass

    def run(self):
        if not os.path.exists(os.path.join(POLICY_DIR, "Makefile")):
            raise SetupError("policy/Makefile is missing: this source tree cannot build the eBPF datapath "
                             "(an sdist must include policy/, see MANIFEST.in)")
        missing = _missing_tools()
        if missing:
            raise SetupError(f"cannot compile the eBPF datapath: {', '.join(missing)} not found; "
                             f"{INSTALL_HINT}")
        try:
            subprocess.run(["make", "-s", "-C", POLICY_DIR], check=True)
        except subprocess.CalledProcessError as err:  # clang's own messages are just above
            raise SetupError(f"compiling the eBPF datapath failed (make exit {err.returncode}, clang's "
                             f"messages above); {INSTALL_HINT}") from None
        _check_object(OBJECT)


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


setup(
    cmdclass={
        "build_bpf": BuildBpf,
        "build_py": BuildPyWithBpf,
        "develop": DevelopWithBpf,
        "editable_wheel": EditableWheelWithBpf,
    },
)
