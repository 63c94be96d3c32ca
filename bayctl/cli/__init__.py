"""The `bayctl` command: argument parsing and output formatting only.

Each command module holds the cliff commands of one noun; each command calls one
library function and formats its result.
"""
