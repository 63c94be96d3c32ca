#!/bin/bash
# Master of a bayctl Mesos bay (run once by cloud-init as user data).
# ZooKeeper, Mesos master, Marathon and mesos-dns are installed in the image by the `mesos`
# diskimage-builder element; this writes their configuration, starts them, waits until each
# answers and tells Heat (wait condition) that the master is ready -- or why it is not.
set -eu -o pipefail

notify() {  # notify STATUS REASON
    $WAIT_NOTIFY --data-binary "{\"status\": \"$1\", \"reason\": \"$2\"}" || true
}
trap 'notify FAILURE "configure-master failed at line $LINENO"' ERR

MY_IP=$(ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')
ZK="zk://${MY_IP}:2181"

# Routes to every slave's container subnet (host-gw), so the master reaches containers.
mkdir -p /etc/default
printf 'BAYCTL_CONTAINER_CIDR=%s\nBAYCTL_PRIVATE_CIDR=%s\n' "$CONTAINER_CIDR" "$FIXED_NETWORK_CIDR" \
    > /etc/default/bayctl-hostgw  # bayctl-hostgw.service re-applies them at every boot
bayctl node hostgw --container-cidr "$CONTAINER_CIDR" --private-cidr "$FIXED_NETWORK_CIDR" --no-cni \
    -f value >/dev/null

echo 1 > /etc/zookeeper/conf/myid
systemctl enable --now zookeeper

mkdir -p /etc/mesos /etc/mesos-master /etc/marathon/conf /etc/mesos-dns
echo "${ZK}/mesos" > /etc/mesos/zk
echo "${MY_IP}" > /etc/mesos-master/ip
echo "${MY_IP}" > /etc/mesos-master/hostname
echo "$CLUSTER_NAME" > /etc/mesos-master/cluster
echo 1 > /etc/mesos-master/quorum
systemctl enable --now mesos-master

echo "${ZK}/mesos" > /etc/marathon/conf/master
echo "${ZK}/marathon" > /etc/marathon/conf/zk
echo "${MY_IP}" > /etc/marathon/conf/hostname
systemctl enable --now marathon

# mesos-dns only where the image has it: no element installs it yet (issue 13), and starting a
# unit that does not exist failed the master's wait condition.
urls="http://${MY_IP}:5050/master/health http://${MY_IP}:8080/ping"
if systemctl cat mesos-dns.service >/dev/null 2>&1; then
cat > /etc/mesos-dns/config.json <<JSON
{"zk": "${ZK}/mesos", "masters": ["${MY_IP}:5050"], "refreshSeconds": 60, "ttl": 60,
 "domain": "mesos", "port": 53, "resolvers": ["$(awk '/^nameserver/{print $2; exit}' /etc/resolv.conf)"],
 "timeout": 5, "httpon": true, "httpport": 8123, "externalon": true, "listener": "0.0.0.0",
 "SOAMname": "ns1.mesos", "SOARname": "root.ns1.mesos", "IPSources": ["netinfo", "mesos", "host"]}
JSON
systemctl enable --now mesos-dns
urls="$urls http://${MY_IP}:8123/v1/version"
fi

# Ready means answering, not merely started.
for url in $urls; do
    for _ in $(seq 120); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 5; done
    curl -fsS "$url" >/dev/null || { notify FAILURE "no answer from $url"; exit 1; }
done
notify SUCCESS "zookeeper, mesos-master, marathon (and mesos-dns if installed) are up"
