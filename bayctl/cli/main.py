"""Entry point of the `bayctl` command (cliff, like the OpenStack clients)."""

import importlib.metadata
import logging
import sys

from cliff.app import App
from cliff.commandmanager import CommandManager

import bayctl
from bayctl.cli.os_options import mentions_os_options

# "verb words" -> "module:Class". Each room registers its commands here, one line each.
COMMANDS = {
    "image upload": "bayctl.cli.cloud:ImageUpload",
    "image list": "bayctl.cli.cloud:ImageList",
    "preflight": "bayctl.cli.cloud:Preflight",
    "stack diagnose": "bayctl.cli.cloud:StackDiagnose",
    "create mesosbay": "bayctl.cli.bay:CreateMesosBay",
    "delete bay": "bayctl.cli.bay:DeleteBay",
    "list": "bayctl.cli.bay:ListBays",
    "show": "bayctl.cli.bay:ShowBay",
    "policy apply": "bayctl.cli.bay:PolicyApply",
    "verify": "bayctl.cli.bay:Verify",
    "ssh": "bayctl.cli.bay:Ssh",
    "demo": "bayctl.cli.demo:Demo",
    "node agent": "bayctl.cli.node:Agent",
    "node observe": "bayctl.cli.observe:NodeObserve",
    "observe": "bayctl.cli.observe:Observe",
    "node apply": "bayctl.cli.node:Apply",
    "node show": "bayctl.cli.node:Show",
    "node clear": "bayctl.cli.node:Clear",
    "node endpoints": "bayctl.cli.node:Endpoints",
    "node endpoint add": "bayctl.cli.node:EndpointAdd",
    "node endpoint remove": "bayctl.cli.node:EndpointRemove",
    "policy stats": "bayctl.cli.node:PolicyStats",
    "node docker-plugin": "bayctl.cli.node_plugins:DockerPlugin",
    "node hostgw": "bayctl.cli.node_hostgw:HostGw",
    "policy drops": "bayctl.cli.node:PolicyDrops",
    "policy check": "bayctl.cli.policy:Check",
    "policy compile": "bayctl.cli.policy:Compile",
    "policy examples": "bayctl.cli.policy:Examples",
    "policy diff": "bayctl.cli.policy:Diff",
    "policy history": "bayctl.cli.policy:History",
    "policy rollback": "bayctl.cli.policy:Rollback",
    "node staged": "bayctl.cli.staging:NodeStaged",
    "node promote": "bayctl.cli.staging:NodePromote",
    "node discard": "bayctl.cli.staging:NodeDiscard",
    "policy staged": "bayctl.cli.staging:BayStaged",
    "policy promote": "bayctl.cli.staging:BayPromote",
    "policy discard": "bayctl.cli.staging:BayDiscard",
    "image build": "bayctl.cli.image:Build",
}


class BayctlApp(App):
    def __init__(self):
        # No entry-point namespace to scan: every command is listed in COMMANDS, and a scan of
        # the installed packages would cost each short command (run on every slave) ~0.1 s.
        manager = CommandManager(None, convert_underscores=False)
        for name, target in COMMANDS.items():
            # An entry point is imported only when its command runs: `bayctl --help`
            # and every other command stay fast, and a node without cloud
            # libraries can still run the node commands.
            manager.commands[name] = importlib.metadata.EntryPoint(name, target, "bayctl.cli")
        super().__init__(
            description="Policy-isolated Mesos bays on OpenStack, or on this machine.",
            version=bayctl.__version__,
            command_manager=manager,
            deferred_help=True,
        )
        # cliff registers its own `complete`; bayctl's also completes bay names, for bash and zsh.
        manager.commands["complete"] = importlib.metadata.EntryPoint(
            "complete", "bayctl.cli.complete:Complete", "bayctl.cli")

    def configure_logging(self):
        super().configure_logging()
        # Library loggers must never leak request bodies with credentials (keystoneauth
        # logs them at DEBUG): keep them at WARNING unless asked for with --debug AND the
        # secret filter is installed by bayctl.cloud.
        logging.getLogger("keystoneauth").setLevel(logging.WARNING)

    def prepare_to_run_command(self, cmd):
        # cliff's default epilog names the plugin distribution a command comes from, found
        # by reading every installed package's metadata: ~0.2 s, most of a short command's
        # run, and node commands run over SSH on every slave. bayctl's commands are all
        # bayctl's own, so the epilog is just the command's.
        cmd.get_epilog = lambda: cmd._epilog or ""
        super().prepare_to_run_command(cmd)

    def run(self, argv):
        # The global --os-* options, as `openstack --os-cloud x ...` takes them (bayctl.cli.os_options
        # says why only when the line names one or asks for help).
        self.argv = list(argv)
        if mentions_os_options(self.argv):
            from bayctl.cloud.connection import add_cloud_arguments
            from bayctl.errors import BayctlError

            try:
                add_cloud_arguments(self.parser, self.argv)
            except BayctlError as err:  # e.g. OS_CLOUD names no clouds.yaml entry
                print(f"bayctl: {err}", file=sys.stderr)
                return 1
        return super().run(argv)

    # cliff prints a failing command's error in one line (a traceback only with --debug)
    # and exits 1; commands with a partial outcome (seeding) return their own status.
    def run_subcommand(self, argv):
        try:
            return super().run_subcommand(argv)
        except KeyboardInterrupt as interrupt:
            # Steps are idempotent: re-running the command resumes where this one stopped (the
            # create pipeline's interrupt says so, naming the bay).
            print(f"bayctl: interrupted{': ' if str(interrupt) else ''}{interrupt}", file=sys.stderr)
            return 130


def main(argv=None):
    app = BayctlApp()
    return app.run(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
