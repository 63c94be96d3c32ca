"""Serve one REAL Nova / Placement / Neutron WSGI API on 127.0.0.1 (run by the real-nova venv's
python, tests/harness/cloudtier/nova_real.py), through the projects' own WSGI entry points:

    python real_serve.py placement PORT CONFIG_DIR   # placement.wsgi.api, OS_PLACEMENT_CONFIG_DIR
    python real_serve.py nova-api  PORT CONFIG_DIR   # nova.wsgi.osapi_compute, OS_NOVA_CONFIG_DIR
    python real_serve.py neutron   PORT CONFIG_DIR   # neutron.wsgi.api, OS_NEUTRON_CONFIG_FILES

The same small threading wsgiref server as serve.py (one test client); argv is reset before the
import, as the entry points parse sys.argv.
"""

import os
import sys
from wsgiref import simple_server

from serve import _QuietHandler, _ThreadingServer


def _placement(config_dir):
    os.environ["OS_PLACEMENT_CONFIG_DIR"] = config_dir
    sys.argv = ["placement-api"]
    from placement.wsgi import api

    return api.application


def _nova_api(config_dir):
    os.environ["OS_NOVA_CONFIG_DIR"] = config_dir
    sys.argv = ["nova-api"]
    from nova.wsgi import osapi_compute

    return osapi_compute.application


def _neutron(config_dir):
    os.environ["OS_NEUTRON_CONFIG_DIR"] = config_dir
    os.environ["OS_NEUTRON_CONFIG_FILES"] = ";".join(
        os.path.join(config_dir, name) for name in ("neutron.conf", "ml2_conf.ini"))
    sys.argv = ["neutron-api"]
    from neutron.wsgi import api

    return api.application


def main():
    service, port, config = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    app = {"placement": _placement, "nova-api": _nova_api, "neutron": _neutron}[service](config)
    server = simple_server.make_server("127.0.0.1", port, app, server_class=_ThreadingServer,
                                       handler_class=_QuietHandler)
    print(f"{service} serving on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
