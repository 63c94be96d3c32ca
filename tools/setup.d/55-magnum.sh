# REAL Magnum 10.0.0 (api + conductor; the last release that creates Mesos clusters) for the
# magnum_real tests: its own Python 3.8 virtualenv with Ussuri's pins under /var/cache/bayctl-ci
# (a few minutes once, then reused); it uses the cloud tier's MariaDB (and RabbitMQ if the tier
# has one). Python 3.8 comes from pyenv: where there is none, the rest of the set-up goes on
# and the magnum_real tests say what is missing.
POST_INSTALL+=("python3 tests/harness/cloudtier/magnum_venv.py || echo 'tools/setup.d/55-magnum.sh: no Magnum venv (see above)' >&2")
