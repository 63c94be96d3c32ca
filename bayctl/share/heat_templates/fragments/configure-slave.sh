#!/bin/bash
# Slave (Mesos agent) of a bayctl Mesos bay (run once by cloud-init as user data).
# Points mesos-slave at the master's ZooKeeper, starts it and the bayctl node agent (which
# owns the eBPF group-policy datapath seeded later), and signals Heat's wait condition.
set -eu -o pipefail

notify() {  # notify STATUS REASON
    $WAIT_NOTIFY --data-binary "{\"status\": \"$1\", \"reason\": \"$2\"}" || true
}
trap 'notify FAILURE "configure-slave failed at line $LINENO"' ERR

MY_IP=$(ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')

# The node's configuration is the image's (bayctl-node-configure, mesos element): containerizers,
# isolators, bayctl's CNI plugin and config dir, the role; a non-empty $ISOLATION /
# $EXECUTOR_REGISTRATION_TIMEOUT overrides the image's (the isolators CNI needs are kept).
MESOS_ISOLATION_OVERRIDE="$ISOLATION" MESOS_EXECUTOR_REGISTRATION_TIMEOUT_OVERRIDE="$EXECUTOR_REGISTRATION_TIMEOUT" \
    BAYCTL_NODE_IP="${MY_IP}" bayctl-node-configure slave "$MESOS_MASTER_PRIVATE"
# Containers resolve each other through the master's mesos-dns, where the image has it.
. /etc/bayctl/node.env
if [ "$BAYCTL_MESOS_DNS" = 1 ]; then sed -i "1i nameserver $MESOS_MASTER_PRIVATE" /etc/resolv.conf; fi

# This slave's container subnet (derived from its private address), its Mesos CNI network
# config, forwarding, and a route to every other node's subnet via that node (host-gw).
mkdir -p /etc/default
printf 'BAYCTL_CONTAINER_CIDR=%s\nBAYCTL_PRIVATE_CIDR=%s\n' "$CONTAINER_CIDR" "$FIXED_NETWORK_CIDR" \
    > /etc/default/bayctl-hostgw  # bayctl-hostgw.service re-applies them at every boot
bayctl node hostgw --container-cidr "$CONTAINER_CIDR" --private-cidr "$FIXED_NETWORK_CIDR" \
    --cni-dir "$BAYCTL_CNI_CONFIG_DIR" -f value >/dev/null

# shellcheck disable=SC2046
systemctl enable --now $(bayctl-node-configure services slave)

for _ in $(seq 120); do curl -fsS --max-time 10 "http://${MY_IP}:5051/health" >/dev/null 2>&1 && break; sleep 5; done
curl -fsS --max-time 10 "http://${MY_IP}:5051/health" >/dev/null || { notify FAILURE "mesos-slave does not answer"; exit 1; }
notify SUCCESS "mesos-slave and bayctl-agent are up"
