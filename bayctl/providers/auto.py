"""`--provider auto`: magnum where the cloud's Magnum accepts Mesos, else heat."""

import logging

from bayctl.errors import CloudError

LOG = logging.getLogger(__name__)


def choose_provider(conn, request=None, **_options):
    """"magnum" or "heat" for this cloud (and this bay: Magnum's answer depends on the image)."""
    from bayctl.providers.magnum import MagnumProvider

    try:
        magnum = MagnumProvider(conn)
    except CloudError:
        LOG.info("no Magnum in this cloud's catalog: using the heat provider")
        return "heat"
    if request is None:
        # Without a bay to ask about, only an existing Mesos template proves Mesos support.
        return "magnum" if magnum.has_mesos_template() else "heat"
    if magnum.accepts_mesos(request):
        return "magnum"
    LOG.info("this cloud's Magnum does not accept Mesos: using the heat provider")
    return "heat"
