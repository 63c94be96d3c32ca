# The cloud side: openstacksdk & clients for bayctl itself ("cloud" extra), and the REAL
# keystone + glance + heat test tier: MariaDB from Debian for heat's database, RabbitMQ from
# Debian for heat-api <-> heat-engine (the tier runs its own private broker on its own ports:
# tests/harness/cloudtier/rabbitmq.py), the services from PyPI in their own virtualenv under
# /var/cache/bayctl-ci (reused while up to date).
APT_PACKAGES+=(mariadb-server qemu-utils rabbitmq-server)
# (openstacksdk and the Heat and Magnum clients are base dependencies of bayctl)
POST_INSTALL+=("python3 tests/harness/cloudtier/venv.py")
# apt starts Debian's system-wide rabbitmq-server (and epmd on 4369) unless policy-rc.d forbids
# it; the tier never uses that one: stop it if it runs (a no-op where no init system runs it).
POST_INSTALL+=("sh -c 'if command -v invoke-rc.d >/dev/null && [ -x /etc/init.d/rabbitmq-server ]; then invoke-rc.d rabbitmq-server stop >/dev/null 2>&1 || true; fi'")
