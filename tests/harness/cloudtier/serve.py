"""Serve one OpenStack service on 127.0.0.1 (run by the tier's virtualenv python, not bayctl's).

    python serve.py keystone PORT CONFIG_DIR
    python serve.py glance   PORT CONFIG_DIR
    python serve.py heat     PORT CONFIG_FILE     # heat-api AND heat-engine in this one process
    python serve.py heat-api PORT CONFIG_FILE     # heat-api only (the engine runs apart, RabbitMQ)
    python serve.py heat-api-cfn PORT CONFIG_FILE # heat-api-cfn (CloudFormation-compatible API)
    python serve.py heat PORT CONFIG_FILE CFN_PORT  # ... and heat-api-cfn beside them (no broker)

Why not the projects' own launchers (shared/PLATFORM.md): keystone and heat's WSGI apps parse
`sys.argv`, so a server that passes its own flags breaks them (argv is reset here before the
import); standalone `glance-api` is refused; and heat 27 has no heat-all: with the tier's
RabbitMQ the engine runs apart (heat.cmd.engine) and this serves heat-api alone; without it the
engine and the API share oslo.messaging's in-process `fake://` transport in one process.
A small threading wsgiref server is plenty for one test client.
"""

import os
import socketserver
import sys
from wsgiref import simple_server


class _QuietHandler(simple_server.WSGIRequestHandler):
    def log_message(self, fmt, *args):  # one line per request on stderr is enough for the log file
        sys.stderr.write("{} {}\n".format(self.command, self.path.split("?")[0]))

    def address_string(self):
        return self.client_address[0]


class _ThreadingServer(socketserver.ThreadingMixIn, simple_server.WSGIServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 64


def _keystone(config_dir):
    os.environ["OS_KEYSTONE_CONFIG_DIR"] = config_dir
    sys.argv = ["keystone"]
    from keystone.wsgi import api

    return api.application


def _glance(config_dir):
    os.environ["OS_GLANCE_CONFIG_DIR"] = config_dir
    sys.argv = ["glance-api"]
    from glance.wsgi import api

    return api.application


def _heat(config_file):
    sys.argv = ["heat-engine", "--config-file", config_file]
    from heat.cmd import engine as engine_cmd  # selects oslo.service's threading backend
    from heat.common import config, messaging
    from heat.engine import service as engine_service
    from heat.engine import template
    from heat.rpc import api as rpc_api
    from oslo_config import cfg
    from oslo_log import log as logging

    conf = cfg.CONF
    logging.register_options(conf)
    conf(project="heat", prog="heat-engine")
    logging.setup(conf, "heat")
    messaging.setup()  # one TRANSPORT for the engine's server and the API's client
    config.startup_sanity_check()
    template._get_template_extension_manager()
    # The engine service is started in-process (its launcher would fork workers, and
    # fake:// only reaches within one process).
    engine = engine_service.EngineService(conf.host, rpc_api.ENGINE_TOPIC)
    engine.start()
    del engine_cmd
    config.set_config_defaults()
    return config.load_paste_app("heat-api")


def _heat_api(config_file):
    """heat-api alone, through heat's own WSGI entry point (heat.wsgi.api): the engine is
    `heat.cmd.engine` in its own process, reached over the tier's RabbitMQ."""
    sys.argv = ["heat-api", "--config-file", config_file]
    from heat.api.openstack import wsgi

    return wsgi.init_application()


def _heat_api_cfn(config_file):
    """heat-api-cfn through heat's own WSGI entry point (heat.wsgi.cfn): the metadata and
    signal API that os-collect-config and heat-config-notify on a server call (POLL_SERVER_CFN)."""
    sys.argv = ["heat-api-cfn", "--config-file", config_file]
    from heat.api.cfn import wsgi

    return wsgi.init_application()


def _serve_in_thread(app, port):
    import threading

    server = simple_server.make_server("127.0.0.1", port, app, server_class=_ThreadingServer,
                                       handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()


def main():
    service, port, config = sys.argv[1], int(sys.argv[2]), sys.argv[3]
    app = {"keystone": _keystone, "glance": _glance, "heat": _heat, "heat-api": _heat_api,
           "heat-api-cfn": _heat_api_cfn}[service](config)
    if service == "heat" and len(sys.argv) > 4:  # fake:// reaches only this process: cfn here too
        from heat.common import config as heat_config

        _serve_in_thread(heat_config.load_paste_app("heat-api-cfn"), int(sys.argv[4]))
    server = simple_server.make_server("127.0.0.1", port, app, server_class=_ThreadingServer,
                                       handler_class=_QuietHandler)
    print(f"{service} serving on 127.0.0.1:{port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
