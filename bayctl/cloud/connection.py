"""One way to reach a cloud: openstacksdk's `openstack.connect`, configured the usual ways.

Where the settings come from, as for every OpenStack client: clouds.yaml (`--os-cloud` /
`OS_CLOUD`), `OS_*` environment variables, and the `--os-*` command-line options that
openstacksdk's own `openstack.config` registers on an argparse parser. TLS certificates are
verified unless the user's cloud config says `verify: false` or `--insecure` is given.
No password or token is ever logged (see secrets_filter).
"""

import argparse
import logging
import os
import sys

from bayctl.cloud import secrets_filter
from bayctl.errors import CloudError

LOG = logging.getLogger(__name__)


def add_cloud_arguments(parser, argv=None):
    """Register openstacksdk's `--os-*` options (and `--os-cloud`) on an argparse parser."""
    import openstack.config

    config = openstack.config.OpenStackConfig()
    before = {action.dest for action in parser._actions}
    # The pre-parse of argv finds --os-cloud/--os-auth-type so that the auth plugin's own
    # options (--os-password, --os-token, ...) get registered too.
    config.register_argparse_arguments(parser, sys.argv[1:] if argv is None else argv)
    # Remember which options are the cloud's: the command's own (--image, --external-network,
    # ...) must not reach openstacksdk, which reads e.g. `external_network` as config.
    parser.set_defaults(_cloud_dests=sorted({a.dest for a in parser._actions} - before))
    return parser


def _cloud_options(options):
    dests = getattr(options, "_cloud_dests", None)
    if dests is None:
        return options
    return argparse.Namespace(**{d: getattr(options, d) for d in dests if hasattr(options, d)})


def has_cloud_config(options=None):
    """Whether a cloud is configured at all (decides `--provider auto` -> local)."""
    if options is not None and (getattr(options, "cloud", None) or getattr(options, "os_auth_url", None)):
        return True
    if os.environ.get("OS_CLOUD") or os.environ.get("OS_AUTH_URL"):
        return True
    return False


def _protect_logs(cloud_region):
    secrets_filter.install()
    auth = cloud_region.config.get("auth", {})
    for key in ("password", "token", "application_credential_secret", "passcode"):
        secrets_filter.register_secret(auth.get(key))
    if logging.getLogger().isEnabledFor(logging.DEBUG):
        # The app keeps keystoneauth at WARNING; with --debug the filter now guards it.
        logging.getLogger("keystoneauth").setLevel(logging.DEBUG)


def connect(options=None, cloud=None, authenticate=True, **kwargs):
    """An authenticated openstacksdk Connection.

    `options`: an argparse Namespace from a parser set up by add_cloud_arguments;
    `cloud`: a clouds.yaml entry name; `kwargs`: explicit settings (auth_url=..., ...).
    Raises CloudError (one line, no secrets) when the cloud cannot be reached or refuses.
    """
    import keystoneauth1.exceptions as ksa_exc
    import openstack
    import openstack.config
    import openstack.exceptions as sdk_exc

    try:
        if options is not None:
            region = openstack.config.OpenStackConfig().get_one(argparse=_cloud_options(options), **kwargs)
        else:
            region = openstack.config.OpenStackConfig().get_one(cloud=cloud, **kwargs)
    except (sdk_exc.ConfigException, ksa_exc.ClientException, KeyError) as e:
        raise CloudError(f"cloud configuration: {e}") from None
    _protect_logs(region)
    if region.config.get("verify") is False:
        LOG.warning("TLS certificate verification is OFF for this cloud (verify: false / --insecure)")
    conn = openstack.connection.Connection(config=region)
    if authenticate:
        try:
            token = conn.session.get_token()
        except ksa_exc.Unauthorized:
            raise CloudError(f"cloud {region.name or region.config['auth'].get('auth_url')}: the credentials "
                             "were refused (check username, password and project)") from None
        except ksa_exc.ConnectFailure as e:
            raise CloudError(f"cannot reach the identity service: {_short(e)}") from None
        except (ksa_exc.ClientException, sdk_exc.SDKException) as e:
            raise CloudError(f"authentication failed: {_short(e)}") from None
        secrets_filter.register_secret(token)
    return conn


def _short(error):
    return str(error).splitlines()[0][:300]
