#!/bin/bash
# Master of a bayctl Mesos bay (run once by cloud-init as user data).
# ZooKeeper, Mesos master, Marathon (and mesos-dns where a Mesos source had it) are installed
# in the image by the `mesos` diskimage-builder element, with bayctl-node-configure; this
# runs it, starts the services it names, waits until each answers and tells Heat (wait
# condition) that the master is ready -- or why it is not.
set -eu -o pipefail

notify() {  # notify STATUS REASON [DATA]: DATA is what the master states (its ZooKeeper)
    $WAIT_NOTIFY --data-binary "{\"status\": \"$1\", \"reason\": \"$2\", \"data\": \"${3:-}\"}" || true
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
# Every probe has a deadline: a daemon that takes the connection while it starts may never
# answer on it, and a probe without one waits for good (seen: ZooKeeper under TCG).
for url in $URLS; do
    for _ in $(seq 120); do curl -fsS --max-time 10 "$url" >/dev/null 2>&1 && break; sleep 5; done
    curl -fsS --max-time 10 "$url" >/dev/null || { notify FAILURE "no answer from $url"; exit 1; }
done
# ZooKeeper: where the image has Debian's (its jar; a stand-in has none), it must answer, and
# the master then states it in its signal (host:port, as the slaves reach it): bayctl
# distributes the bay's policy through it (`auto`), and seeds over SSH where none is stated.
ZOOKEEPER=""
case " $SERVICES " in *" zookeeper.service "*)
    if [ -r /usr/share/java/zookeeper.jar ]; then
        zk_answers() {  # srvr: the one four-letter word ZooKeeper allows by default
            # shellcheck disable=SC2016
            timeout 10 bash -c 'exec 3<>"/dev/tcp/$1/2181" && printf srvr >&3 && grep -q "^Mode: " <&3' \
                zk-probe "${MY_IP}"
        }
        for _ in $(seq 120); do zk_answers 2>/dev/null && break; sleep 5; done
        zk_answers 2>/dev/null || { notify FAILURE "no answer from ZooKeeper on ${MY_IP}:2181"; exit 1; }
        ZOOKEEPER="${MY_IP}:2181"
    fi
    ;;
esac
notify SUCCESS "up: $SERVICES" "$ZOOKEEPER"
