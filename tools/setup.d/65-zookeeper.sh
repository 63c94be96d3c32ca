# Policy distribution: a real ZooKeeper (Debian's `zookeeper` package, its jars and a JRE).
# bayctl starts its own servers with a private zoo.cfg, port and data dir (the local bay's
# master, the tests, bench/scale.py); Debian's service (zookeeperd) is not installed or used.
APT_PACKAGES+=(zookeeper default-jre-headless)
# (kazoo, the client of bayctl and its agents, is a base dependency of bayctl)
