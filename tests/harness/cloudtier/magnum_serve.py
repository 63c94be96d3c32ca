"""magnum-api AND magnum-conductor in ONE process over oslo.messaging's in-process fake://.

    <magnum venv>/bin/python magnum_serve.py MAGNUM_CONF

Used while the tier has no message broker of its own (heat's api and engine share fake:// the
same way, in serve.py); with the tier's RabbitMQ, magnum_tier.py runs Magnum's own two
services instead. fake:// only reaches within one process, so both halves share magnum's one
RPC transport: the conductor's service is started in-process (oslo.service's ServiceLauncher,
no fork), then the API serves with werkzeug as magnum-api does; eventlet (monkey-patched by
`magnum.cmd`) lets the conductor's greenthreads run while the API waits on a socket or an RPC
reply. The steps are those of magnum/cmd/conductor.py and magnum/cmd/api.py (Magnum 10.0.0).
"""

import sys


def main():
    import magnum.cmd  # noqa: F401  first: eventlet.monkey_patch(), as in every magnum command

    conf_file = sys.argv[1]
    sys.argv = ["magnum-conductor", "--config-file", conf_file]
    import magnum.conf
    from magnum.api import app as api_app
    from magnum.common import rpc_service, short_id
    from magnum.common import service as magnum_service
    from magnum.conductor.handlers import (
        ca_conductor,
        cluster_conductor,
        conductor_listener,
        federation_conductor,
        indirection_api,
        nodegroup_conductor,
    )
    from oslo_service import service
    from werkzeug import serving

    conf = magnum.conf.CONF
    magnum_service.prepare_service(sys.argv)  # also sets up magnum.common.rpc's one TRANSPORT

    endpoints = [indirection_api.Handler(), cluster_conductor.Handler(), conductor_listener.Handler(),
                 ca_conductor.Handler(), federation_conductor.Handler(), nodegroup_conductor.Handler()]
    server = rpc_service.Service.create(conf.conductor.topic, short_id.generate_id(), endpoints,
                                        binary="magnum-conductor")
    service.launch(conf, server, workers=1)  # in this process: a ServiceLauncher
    server.create_periodic_tasks()
    server.start()  # as magnum/cmd/conductor.py does after launch()

    # magnum-api sends its object writes through the conductor (indirection_api); in one process
    # that class-wide setting would route the conductor's own writes over RPC too, so both
    # halves write to the database directly here, as magnum-conductor does.
    app = api_app.load_app()
    serving.run_simple(conf.api.host, conf.api.port, app, threaded=True)


if __name__ == "__main__":
    main()
