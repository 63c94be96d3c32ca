# The virtualenv os-collect-config, os-apply-config, os-refresh-config and
# dib-run-parts are installed into (their commands are linked into /usr/local/bin).
export DIB_HEAT_AGENT_VENV=${DIB_HEAT_AGENT_VENV:-/opt/heat-agent}
# What is installed from PyPI into it, pinned (their dependencies come along).
export DIB_HEAT_AGENT_PACKAGES=${DIB_HEAT_AGENT_PACKAGES:-"os-collect-config==14.1.0 os-apply-config==14.1.0 os-refresh-config==14.1.0 dib-utils==0.0.11"}
# The heat-agents release whose heat-config and heat-config-script hooks are installed.
export DIB_HEAT_AGENTS_VERSION=${DIB_HEAT_AGENTS_VERSION:-13.0.0}
# The image's python3 (major.minor): the wheels are downloaded on the build host for it.
export DIB_HEAT_AGENT_PYTHON_VERSION=${DIB_HEAT_AGENT_PYTHON_VERSION:-3.11}
