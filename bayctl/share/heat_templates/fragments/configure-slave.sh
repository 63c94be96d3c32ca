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

mkdir -p /etc/mesos /etc/mesos-slave
echo "zk://$MESOS_MASTER_PRIVATE:2181/mesos" > /etc/mesos/zk
echo "${MY_IP}" > /etc/mesos-slave/ip
echo "${MY_IP}" > /etc/mesos-slave/hostname
echo "mesos,docker" > /etc/mesos-slave/containerizers
echo "$ISOLATION" > /etc/mesos-slave/isolation
echo "$EXECUTOR_REGISTRATION_TIMEOUT" > /etc/mesos-slave/executor_registration_timeout
echo /etc/bayctl/cni > /etc/mesos-slave/network_cni_config_dir
echo /usr/lib/bayctl/cni > /etc/mesos-slave/network_cni_plugins_dir
# Containers resolve each other through the master's mesos-dns.
sed -i "1i nameserver $MESOS_MASTER_PRIVATE" /etc/resolv.conf

# This slave's container subnet (derived from its private address), its Mesos CNI network
# config, forwarding, and a route to every other node's subnet via that node (host-gw).
mkdir -p /etc/default
printf 'BAYCTL_CONTAINER_CIDR=%s\nBAYCTL_PRIVATE_CIDR=%s\n' "$CONTAINER_CIDR" "$FIXED_NETWORK_CIDR" \
    > /etc/default/bayctl-hostgw  # bayctl-hostgw.service re-applies them at every boot
bayctl node hostgw --container-cidr "$CONTAINER_CIDR" --private-cidr "$FIXED_NETWORK_CIDR" \
    --cni-dir /etc/bayctl/cni -f value >/dev/null

systemctl enable --now bayctl-agent
systemctl enable --now mesos-slave

for _ in $(seq 120); do curl -fsS "http://${MY_IP}:5051/health" >/dev/null 2>&1 && break; sleep 5; done
curl -fsS "http://${MY_IP}:5051/health" >/dev/null || { notify FAILURE "mesos-slave does not answer"; exit 1; }
notify SUCCESS "mesos-slave and bayctl-agent are up"
