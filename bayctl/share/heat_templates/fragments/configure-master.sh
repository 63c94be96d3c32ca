#!/bin/bash
# Master of a bayctl Mesos bay (run once by cloud-init as user data).
# ZooKeeper, Mesos master, Marathon (and mesos-dns where a Mesos source had it) are installed
# in the image by the `mesos` diskimage-builder element, with bayctl-node-configure; this
# runs it, starts the services it names, waits until each answers and tells Heat (wait
# condition) that the master is ready -- or why it is not.
set -eu -o pipefail

notify() {  # notify STATUS REASON
    $WAIT_NOTIFY --data-binary "{\"status\": \"$1\", \"reason\": \"$2\"}" || true
}
trap 'notify FAILURE "configure-master failed at line $LINENO"' ERR

MY_IP=$(ip -4 -o route get 1.1.1.1 | sed -n 's/.* src \([0-9.]*\).*/\1/p')

# Routes to every slave's container subnet (host-gw), so the master reaches containers.
mkdir -p /etc/default
printf 'BAYCTL_CONTAINER_CIDR=%s\nBAYCTL_PRIVATE_CIDR=%s\n' "$CONTAINER_CIDR" "$FIXED_NETWORK_CIDR" \
    > /etc/default/bayctl-hostgw  # bayctl-hostgw.service re-applies them at every boot
bayctl node hostgw --container-cidr "$CONTAINER_CIDR" --private-cidr "$FIXED_NETWORK_CIDR" --no-cni \
    -f value >/dev/null

# The node's configuration is the image's (bayctl-node-configure, mesos element): it writes the
# flags, the role, and names the role's services -- mesos-dns only where the image has it.
bayctl-node-configure master "${MY_IP}" "$CLUSTER_NAME"
SERVICES=$(bayctl-node-configure services master)
# shellcheck disable=SC2086
systemctl enable --now $SERVICES

# Ready means answering, not merely started.
URLS="http://${MY_IP}:5050/master/health http://${MY_IP}:8080/ping"
case " $SERVICES " in *" mesos-dns.service "*) URLS="$URLS http://${MY_IP}:8123/v1/version" ;; esac
for url in $URLS; do
    for _ in $(seq 120); do curl -fsS "$url" >/dev/null 2>&1 && break; sleep 5; done
    curl -fsS "$url" >/dev/null || { notify FAILURE "no answer from $url"; exit 1; }
done
notify SUCCESS "up: $SERVICES"
