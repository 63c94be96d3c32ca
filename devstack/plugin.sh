#!/bin/bash
# shellcheck shell=bash
#
# devstack plugin for bayctl: policy-isolated Mesos bays on this devstack cloud.
#
#   stack install      install bayctl (and what its builds need) on the controller
#   stack post-config  make bayctl's state directory
#   stack extra        build the node image and upload it to Glance; with
#                      BAYCTL_CREATE_BAY=True create a bay and seed its policy
#   unstack            nothing runs on the controller (bays are Nova servers): no-op
#   clean              delete the bay created here and bayctl's state
#
# devstack sources this file as `plugin.sh <mode> [<phase>]` after `settings`.

# Save trace setting (devstack's plugins convention) and trace from here on.
_XTRACE_BAYCTL=$(set +o | grep xtrace)
set -o xtrace

# Debian/Ubuntu packages, listed once in files/debs/bayctl (devstack reads it too): clang/libbpf
# build the datapath object at install time, diskimage-builder's host tools build the image,
# ssh seeds the slaves.
mapfile -t BAYCTL_PACKAGES < <(grep -v '^#' "$(dirname "${BASH_SOURCE[0]}")/files/debs/bayctl")

# Where post-config exports BAYCTL_STATE_DIR for the stack user's login shells.
BAYCTL_PROFILE=${BAYCTL_PROFILE:-/etc/profile.d/bayctl-devstack.sh}

# Run bayctl as devstack's admin, keeping bays' state where this plugin put it.
function bayctl_cli {
    OS_CLOUD=$BAYCTL_CLOUD BAYCTL_STATE_DIR=$BAYCTL_STATE_DIR BAYCTL_HEAT_ENVIRONMENTS=$BAYCTL_HEAT_ENVIRONMENTS \
        bayctl "$@"
}

function install_bayctl {
    echo_summary "Installing bayctl"
    install_package "${BAYCTL_PACKAGES[@]}"
    setup_develop "$BAYCTL_DIR" "$BAYCTL_EXTRAS"
}

function configure_bayctl {
    echo_summary "Configuring bayctl"
    sudo install -d -o "$STACK_USER" -m 0700 "$BAYCTL_STATE_DIR"
    sudo install -d -o "$STACK_USER" "$BAYCTL_IMAGE_DIR"
    # `bayctl list` (and the rest) as the stack user, in a login shell, sees devstack's bays.
    echo "export BAYCTL_STATE_DIR=$BAYCTL_STATE_DIR" | sudo tee "$BAYCTL_PROFILE" >/dev/null
}

function upload_bayctl_image {
    if [[ "$BAYCTL_BUILD_IMAGE" != "True" ]]; then
        return 0
    fi
    if ! is_service_enabled glance; then
        die $LINENO "bayctl: BAYCTL_BUILD_IMAGE=True needs glance (enable it, or set BAYCTL_BUILD_IMAGE=False)"
    fi
    if [[ -z "$BAYCTL_MESOS_APT_REPO" && -z "$BAYCTL_MESOS_DEB_DIR" ]]; then
        die $LINENO "bayctl: BAYCTL_BUILD_IMAGE=True needs Mesos packages: set BAYCTL_MESOS_APT_REPO and/or BAYCTL_MESOS_DEB_DIR (see elements/mesos/README.rst), or BAYCTL_BUILD_IMAGE=False"
    fi
    echo_summary "Building and uploading the bayctl node image $BAYCTL_IMAGE_NAME"
    local args=(image build --upload --image-name "$BAYCTL_IMAGE_NAME"
        --output "$BAYCTL_IMAGE_DIR/$BAYCTL_IMAGE_NAME.qcow2"
        --log-file "$BAYCTL_IMAGE_DIR/$BAYCTL_IMAGE_NAME.log"
        --cache-dir "$BAYCTL_IMAGE_CACHE_DIR")
    local item
    for item in $BAYCTL_IMAGE_EXTRA_ELEMENTS; do
        args+=(--extra-element "$item")
    done
    for item in $BAYCTL_IMAGE_ELEMENTS_PATH; do
        args+=(--elements-path "$item")
    done
    if [[ "$BAYCTL_IMAGE_COMPRESS" != "True" ]]; then
        args+=(--no-compress)
    fi
    if [[ -n "$BAYCTL_IMAGE_BAYCTL_SOURCE" ]]; then
        args+=(--bayctl-source "$BAYCTL_IMAGE_BAYCTL_SOURCE")
    fi
    if [[ -n "$BAYCTL_MESOS_APT_REPO" ]]; then
        args+=(--mesos-apt-repo "$BAYCTL_MESOS_APT_REPO")
    fi
    if [[ -n "$BAYCTL_MESOS_DEB_DIR" ]]; then
        args+=(--mesos-deb-dir "$BAYCTL_MESOS_DEB_DIR")
    fi
    # Reuses the image (and the Glance upload) when its inputs did not change.
    bayctl_cli "${args[@]}" || die $LINENO "bayctl: building or uploading the node image failed"
}

function create_bayctl_bay {
    if [[ "$BAYCTL_CREATE_BAY" != "True" ]]; then
        return 0
    fi
    if ! is_service_enabled heat && [[ "$BAYCTL_PROVIDER" == "heat" ]]; then
        die $LINENO "bayctl: BAYCTL_CREATE_BAY=True with the heat provider needs heat enabled"
    fi
    echo_summary "Creating bay $BAYCTL_BAY_NAME ($BAYCTL_PROVIDER, $BAYCTL_SLAVES slaves)"
    local args=(create mesosbay "$BAYCTL_BAY_NAME"
        --provider "$BAYCTL_PROVIDER"
        --slaves "$BAYCTL_SLAVES"
        --image "$BAYCTL_IMAGE_NAME"
        --flavor "$BAYCTL_FLAVOR"
        --external-network "$BAYCTL_EXTERNAL_NETWORK"
        --policy "$BAYCTL_POLICY")
    if [[ -n "$BAYCTL_KEYPAIR" ]]; then
        args+=(--keypair "$BAYCTL_KEYPAIR")
    fi
    if [[ -n "$BAYCTL_BAY_SPEC" ]]; then
        args+=(--spec "$BAYCTL_BAY_SPEC")
    fi
    bayctl_cli "${args[@]}" || die $LINENO "bayctl: creating bay $BAYCTL_BAY_NAME failed (see above)"
    bayctl_cli show "$BAYCTL_BAY_NAME"
}

function cleanup_bayctl {
    if [[ "$BAYCTL_CREATE_BAY" == "True" && "$BAYCTL_DELETE_BAY_ON_CLEAN" == "True" ]]; then
        # The cloud may already be gone on clean: a failed delete must not stop clean.sh.
        bayctl_cli delete bay "$BAYCTL_BAY_NAME" || echo "bayctl: could not delete bay $BAYCTL_BAY_NAME"
    fi
    sudo rm -rf "$BAYCTL_STATE_DIR" "$BAYCTL_IMAGE_DIR" "$BAYCTL_PROFILE"
}

if is_service_enabled bayctl; then
    if [[ "$1" == "stack" && "$2" == "install" ]]; then
        install_bayctl
    elif [[ "$1" == "stack" && "$2" == "post-config" ]]; then
        configure_bayctl
    elif [[ "$1" == "stack" && "$2" == "extra" ]]; then
        upload_bayctl_image
        create_bayctl_bay
    fi

    if [[ "$1" == "unstack" ]]; then
        # Bays are Nova servers of the cloud, not processes of the controller: unstack
        # stops nothing of ours; `clean` deletes the bay.
        :
    fi

    if [[ "$1" == "clean" ]]; then
        cleanup_bayctl
    fi
fi

# Restore xtrace
$_XTRACE_BAYCTL
