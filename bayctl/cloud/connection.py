"""One way to reach a cloud: openstacksdk's `openstack.connect`, configured the usual ways.

Where the settings come from, as for every OpenStack client: clouds.yaml (`--os-cloud` /
`OS_CLOUD`), `OS_*` environment variables, and the `--os-*` command-line options that
openstacksdk's own `openstack.config` registers on an argparse parser. TLS certificates are
verified unless the user's cloud config says `verify: false` or `--insecure` is given.
No password or token is ever logged (see secrets_filter).
"""

import argparse
import contextlib
import logging
import os
import sys

from bayctl.cloud import secrets_filter
from bayctl.errors import CloudError

LOG = logging.getLogger(__name__)


# What bayctl takes of the options openstacksdk registers: the --os-* set (auth plugin,
# region, interface, TLS files) and --insecure, as the openstack client does. Left out:
# keystoneauth's session --timeout (create's own --timeout is the create's), --collect-timing,
# --tls-* and the legacy unprefixed spellings.
_TAKEN_PREFIXES = ("--os-", "--insecure")


def add_cloud_arguments(parser, argv=None):
    """Register openstacksdk's `--os-*` options (and `--os-cloud`) on an argparse parser.

    Every option defaults to None: a value comes from this command line or not at all, and
    openstacksdk itself reads OS_* and clouds.yaml underneath (so OS_* variables never
    override a clouds.yaml entry named on the command line). Options the parser already has
    (a command's own) are left to the command."""
    scratch = _openstack_options(list(sys.argv[1:] if argv is None else argv))
    group = _options_group(parser)
    taken = set(parser._option_string_actions)
    dests = set(parser.get_default("_cloud_dests") or ())
    for action in scratch._actions:
        strings = set(action.option_strings)
        if not any(s.startswith(_TAKEN_PREFIXES) for s in strings) or strings & taken:
            continue
        action.default = None
        group._add_action(action)
        dests.add(action.dest)
    # Remember which options are the cloud's: the command's own (--image, --external-network,
    # ...) must not reach openstacksdk, which reads e.g. `external_network` as config.
    parser.set_defaults(_cloud_dests=sorted(dests))
    return parser


def _openstack_options(argv):
    """A scratch parser holding openstacksdk's options for this command line."""
    import openstack.config
    import openstack.exceptions as sdk_exc

    # openstacksdk pre-parses argv for --os-cloud/--os-auth-type so that the auth plugin's own
    # options (--os-password, --os-token, ...) get registered too; the pre-parse loads the
    # named cloud. A cloud that cannot be loaded is connect()'s to report (one line, when a
    # command needs the cloud): register the default plugin's options meanwhile.
    for attempt in (argv, []):
        scratch = argparse.ArgumentParser(add_help=False)
        try:
            openstack.config.OpenStackConfig().register_argparse_arguments(scratch, attempt)
            return scratch
        except sdk_exc.ConfigException as err:
            error = err
    raise CloudError(f"cloud configuration: {error}")


def _options_group(parser):
    for group in parser._action_groups:
        if group.title == OPTIONS_TITLE:
            return group
    return parser.add_argument_group(OPTIONS_TITLE, OPTIONS_DESCRIPTION)


OPTIONS_TITLE = "OpenStack options"
OPTIONS_DESCRIPTION = ("as for every OpenStack client: --os-cloud names a clouds.yaml entry; OS_* "
                       "variables and clouds.yaml fill in what the command line does not say")

# The --os-* options given to this command (bayctl.cli sets them), for the library calls that
# reach a cloud without a parser of their own: create, delete, verify, policy apply.
_active_options = None


@contextlib.contextmanager
def using_options(options):
    """Within the block, connect() without explicit settings uses these --os-* options."""
    global _active_options
    saved, _active_options = _active_options, options
    try:
        yield
    finally:
        _active_options = saved


def active_options():
    return _active_options


def _cloud_options(options):
    dests = getattr(options, "_cloud_dests", None)
    if dests is None:
        return options
    return argparse.Namespace(**{d: getattr(options, d) for d in dests if hasattr(options, d)})


def has_cloud_config(options=None):
    """Whether a cloud is configured at all (decides `--provider auto` -> local)."""
    options = active_options() if options is None else options
    if options is not None and (getattr(options, "os_cloud", None) or getattr(options, "os_auth_url", None)):
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

    `options`: an argparse Namespace from a parser set up by add_cloud_arguments (default:
    the command's, see using_options); `cloud`: a clouds.yaml entry name, used when the
    options name none; `kwargs`: explicit settings (auth_url=..., ...).
    Raises CloudError (one line, no secrets) when the cloud cannot be reached or refuses.
    """
    import keystoneauth1.exceptions as ksa_exc
    import openstack
    import openstack.config
    import openstack.exceptions as sdk_exc

    if options is None and not kwargs:
        options = _active_options
    try:
        if options is not None:
            args = _cloud_options(options)
            if cloud and not getattr(args, "os_cloud", None):
                args = argparse.Namespace(**vars(args), os_cloud=cloud)  # the command line wins
            region = openstack.config.OpenStackConfig().get_one(argparse=args, **kwargs)
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
