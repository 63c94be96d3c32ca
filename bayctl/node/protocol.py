"""What the node side agrees on, stated once: where the agent listens and keeps its state,
the headers its API reads, and the kernel's limit on interface names.

The agent, its client, the node CLI, the Docker driver, the CNI plugin and seeding's remote
commands all read these from here. The group range is the datapath's and lives with its
layout (bayctl.policy.layout.GROUP_MIN/GROUP_MAX/GROUP_EXTERNAL).
"""

import os

# Where the agent listens; the environment variable wins (a node's sshd hands it to sessions).
DEFAULT_SOCKET = "/run/bayctl/agent.sock"
ENV_SOCKET = "BAYCTL_AGENT_SOCKET"
# The bpffs directory of the datapath's pinned maps and program.
DEFAULT_PIN_DIR = "/sys/fs/bpf/bayctl"
ENV_PIN_DIR = "BAYCTL_AGENT_PIN_DIR"
# Where the agent keeps the policy and endpoints across restarts.
DEFAULT_STATE_DIR = "/var/lib/bayctl"
ENV_STATE_DIR = "BAYCTL_AGENT_STATE_DIR"

# Optional request header naming the policy's file, so errors read "web-db.yaml:12: ...".
SOURCE_HEADER = "X-Bayctl-Source"
# A policy's entity tag is its digest: `If-None-Match: "<digest>"` makes a PUT conditional
# (RFC 9110 13.1.2), so a seeder can apply-unless-current in one request instead of two.
IF_NONE_MATCH = "If-None-Match"
# Promote only what the caller audited: `If-Match: "<digest>"` of the staged policy.
IF_MATCH = "If-Match"
# The node's name in flow events (the agent's --node-name; default: the host's name).
ENV_NODE_NAME = "BAYCTL_NODE_NAME"

# The longest interface name Linux takes: IFNAMSIZ (16) bytes with the terminating NUL.
IFNAME_MAX_LEN = 15


def default_socket() -> str:
    return os.environ.get(ENV_SOCKET) or DEFAULT_SOCKET


def default_pin_dir() -> str:
    return os.environ.get(ENV_PIN_DIR) or DEFAULT_PIN_DIR


def default_state_dir() -> str:
    return os.environ.get(ENV_STATE_DIR) or DEFAULT_STATE_DIR
