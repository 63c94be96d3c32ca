"""The Nova keypair of a cloud bay that was given none: the bay's own key, named after it.

`bayctl create mesosbay NAME --provider heat|magnum` without --keypair uploads the public
half of the bay's SSH key (the spec's ssh_key, else the key bayctl makes in the bay's state
folder) as keypair `bayctl-NAME`, records that it made it (state.extra["created_keypair"])
and deletes it with the bay. A keypair of that name holding another key is not taken over.
"""

from bayctl.errors import CloudError

STATE_KEY = "created_keypair"


def keypair_name(bay_name: str) -> str:
    return f"bayctl-{bay_name}"


def _same_key(a: str, b: str) -> bool:
    return (a or "").split()[:2] == (b or "").split()[:2]  # type and key, not the comment


def ensure_keypair(conn, name: str, public_key: str) -> None:
    """Nova keypair `name` holding `public_key`, made if missing (idempotent: create resumes)."""
    existing = conn.compute.find_keypair(name)
    if existing is not None:
        if not _same_key(existing.public_key, public_key):
            raise CloudError(f"keypair {name} exists with another public key: delete it, or pass "
                             f"--keypair (bay.yaml `keypair`) to use a keypair of your own")
        return
    conn.compute.create_keypair(name=name, public_key=public_key)


def delete_keypair(conn, name: str) -> None:
    conn.compute.delete_keypair(name, ignore_missing=True)
