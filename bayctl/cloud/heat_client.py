"""python-heatclient on the openstacksdk session, and template loading.

openstacksdk gives us the authenticated session (one token, one connection pool);
python-heatclient gives Heat's own client-side logic: template/environment file
resolution (get_file, nested template types) and nested-depth event paging.
"""

import os

from bayctl.errors import CloudError


def heat(conn):
    """A heatclient v1 Client sharing `conn`'s keystoneauth session (one client per connection)."""
    client = getattr(conn, "_bayctl_heat", None)
    if client is None:
        from heatclient import client as heat_client

        try:
            conn.session.get_endpoint(service_type="orchestration", interface=conn.config.get_interface(),
                                      region_name=conn.config.get_region_name())
        except Exception:
            raise CloudError("this cloud has no orchestration (Heat) endpoint in its catalog") from None
        client = heat_client.Client("1", session=conn.session, service_type="orchestration",
                                    interface=conn.config.get_interface(),
                                    region_name=conn.config.get_region_name())
        conn._bayctl_heat = client
    return client


def load_template(template_path, environment_paths=()):
    """(template, files, environment) as heatclient resolves them: every get_file and file-typed
    resource, in the template and in the environments, is read and sent along."""
    from heatclient.common import template_utils

    if not os.path.isfile(template_path):
        raise CloudError(f"{template_path}: no such Heat template")
    for path in environment_paths:
        if not os.path.isfile(path):
            raise CloudError(f"{path}: no such Heat environment file")
    try:
        files, template = template_utils.get_template_contents(template_file=template_path)
        env_files, environment = template_utils.process_multiple_environments_and_files(
            env_paths=list(environment_paths))
    except Exception as e:  # heatclient raises CommandError/URLError/YAML errors
        raise CloudError(f"{template_path}: {str(e).splitlines()[0]}") from None
    files.update(env_files)
    return template, files, environment
