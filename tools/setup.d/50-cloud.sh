# The cloud side: openstacksdk & clients for bayctl itself ("cloud" extra), and the REAL
# keystone + glance + heat test tier: MariaDB from Debian for heat's database, the services
# from PyPI in their own virtualenv under /var/cache/bayctl-ci (reused while up to date).
APT_PACKAGES+=(mariadb-server qemu-utils)
PIP_EXTRAS+=(cloud)
POST_INSTALL+=("python3 tests/cloudtier/venv.py")
