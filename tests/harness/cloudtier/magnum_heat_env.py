"""The test Heat's global environment for REAL Magnum's mesos_ubuntu_v1 templates.

Magnum 10.0.0's conductor builds its stack from its own templates, which use OS::Nova::Server
and OS::Neutron::* directly, and the test tier has no Nova or Neutron. Its installed files are
not patched; instead Heat's global environment (heat.conf `environment_dir`) maps those
resources BY NAME (Heat's `resource_registry: resources: {<name>: {<type>: ...}}`) to the
stand-ins in bayctl/share/heat_templates/standins/. No type is mapped globally: a test that uses a real
OS::Nova::Server against the Nova emulator is unaffected, and only resources with the names
Magnum's mesos templates give them (mesoscluster.yaml, mesosmaster.yaml, mesosslave.yaml,
common/templates/network.yaml) are replaced.

Servers, ports and floating IPs become templates that are full facades of the core type (Heat
insists on that), so the stack still has nested "servers" with made-up addresses in its
outputs and a flavor named `bayctl-test-fail` makes a boot fail. What only waits for a booted
node to call back (software deployments, the slaves' wait condition) or only exists in Neutron
and Nova (security groups, server groups, the private network and router) is OS::Heat::None.
"""

import os

import yaml

from harness.paths import REPO

STANDINS = os.path.join(REPO,
                        "bayctl", "share", "heat_templates", "standins")
FILE_NAME = "magnum-mesos-standins.yaml"

# resource name in Magnum's mesos templates -> (its type there, stand-in template or class)
MAPPINGS = {
    "mesos-master": ("OS::Nova::Server", "nova_server.yaml"),
    "mesos-slave": ("OS::Nova::Server", "nova_server.yaml"),
    "mesos_master_eth0": ("OS::Neutron::Port", "neutron_port.yaml"),
    "mesos_slave_eth0": ("OS::Neutron::Port", "neutron_port.yaml"),
    "mesos_master_floating": ("OS::Neutron::FloatingIP", "neutron_floatingip.yaml"),
    "mesos_slave_floating": ("OS::Neutron::FloatingIP", "neutron_floatingip.yaml"),
    "secgroup_master": ("OS::Neutron::SecurityGroup", "OS::Heat::None"),
    "secgroup_slave_all_open": ("OS::Neutron::SecurityGroup", "OS::Heat::None"),
    "master_nodes_server_group": ("OS::Nova::ServerGroup", "OS::Heat::None"),
    "worker_nodes_server_group": ("OS::Nova::ServerGroup", "OS::Heat::None"),
    # common/templates/network.yaml, through Magnum's with_private_network.yaml environment
    "private_network": ("OS::Neutron::Net", "OS::Heat::None"),
    "private_subnet": ("OS::Neutron::Subnet", "OS::Heat::None"),
    "extrouter": ("OS::Neutron::Router", "OS::Heat::None"),
    "extrouter_inside": ("OS::Neutron::RouterInterface", "OS::Heat::None"),
    # would wait for os-collect-config / curl on a booted node
    "write_params_master_deployment": ("OS::Heat::SoftwareDeploymentGroup", "OS::Heat::None"),
    "configure_master_deployment": ("OS::Heat::SoftwareDeploymentGroup", "OS::Heat::None"),
    "add_proxy_master_deployment": ("OS::Heat::SoftwareDeploymentGroup", "OS::Heat::None"),
    "start_services_master_deployment": ("OS::Heat::SoftwareDeploymentGroup", "OS::Heat::None"),
    "slave_wait_condition": ("OS::Heat::WaitCondition", "OS::Heat::None"),
}


def environment():
    resources = {}
    for name, (rtype, target) in MAPPINGS.items():
        if target.endswith(".yaml"):  # a global environment may name local files (file: only)
            target = "file://" + os.path.join(STANDINS, target)
        resources[name] = {rtype: target}
    return {"resource_registry": {"resources": resources}}


def write(env_dir):
    """Write the environment file into heat.conf's environment_dir (read when heat starts)."""
    os.makedirs(env_dir, exist_ok=True)
    path = os.path.join(env_dir, FILE_NAME)
    with open(path, "w") as f:
        f.write("# Written by tests/harness/cloudtier/magnum_heat_env.py; see its docstring.\n")
        yaml.safe_dump(environment(), f, default_flow_style=False, sort_keys=True)
    return path
