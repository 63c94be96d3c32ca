"""`bayctl node docker-plugin`: the Docker network + IPAM driver in the foreground.

(The CNI plugin is an executable the runtime calls, `bayctl-cni`, not a bayctl verb.)
"""

import logging

from cliff.command import Command


class DockerPlugin(Command):
    """Serve bayctl's Docker network driver and IPAM driver on PLUGIN_DIR/NAME.sock (mode 0600).

    Then: `docker network create -d NAME --ipam-driver NAME -o bayctl.group=web --subnet
    10.10.0.0/16 web` and `docker run --network web ...`. The node agent must be running
    (containers' IP -> group go to it). Stops on SIGTERM; networks and addresses stay in
    --state-dir, so a restarted plugin carries on with the running containers.
    """

    def get_parser(self, prog_name):
        from bayctl.node import docker_driver

        return docker_driver.add_arguments(super().get_parser(prog_name))

    def take_action(self, parsed_args):
        from bayctl.node import docker_driver

        level = logging.DEBUG if self.app.options.verbose_level > 1 else logging.INFO
        logging.getLogger("bayctl").setLevel(level)
        return docker_driver.serve(parsed_args)
