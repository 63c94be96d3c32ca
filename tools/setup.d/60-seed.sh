# Seeding: real OpenSSH sshd/ssh for the seed tests and bench (the tests start their own
# sshd processes; Debian's service is not used), curl for the agent-over-HTTP remote mode,
# shellcheck for the devstack plugin's lint test.
APT_PACKAGES+=(openssh-server openssh-client curl shellcheck)
# (asyncssh is a base dependency of bayctl)
