"""A bay's policy history on disk (bayctl.history): records, kept texts, pruning, lookup."""

import json
import os

import pytest

from bayctl import history
from bayctl.errors import BayctlError
from bayctl.policy import parse_policy

HEADER = "apiVersion: bayctl/v1\nkind: GroupPolicy\n"


def text_with(tag):
    return HEADER + f"groups: {{web: {tag}}}\n"


def record(state_dir, tag, action=history.APPLY):
    text = text_with(tag)
    return history.record_applied(str(state_dir), text, parse_policy(text).digest, f"/p/{tag}.yaml", action)


def test_each_apply_is_recorded_with_its_text_time_source_and_who(tmp_path):
    first, second = record(tmp_path, 1, history.CREATE), record(tmp_path, 2)
    assert history.records(str(tmp_path)) == [first, second]
    assert (second.source, second.action) == ("/p/2.yaml", "apply")
    assert "@" in second.who and second.who.split("@")[1]
    with open(history.policy_file(str(tmp_path), second.digest)) as handle:
        assert handle.read() == text_with(2)
    assert oct(os.stat(tmp_path / "history.json").st_mode & 0o777) == "0o600"


def test_only_the_last_records_and_their_texts_are_kept(tmp_path):
    made = [record(tmp_path, tag) for tag in range(1, history.KEEP + 6)]
    kept = history.records(str(tmp_path))
    assert kept == made[-history.KEEP:]
    assert sorted(os.listdir(tmp_path / "policies")) == sorted(f"{r.digest}.yaml" for r in kept)


def test_find_defaults_to_the_newest_other_policy_and_takes_a_unique_prefix(tmp_path):
    one, two, _ = record(tmp_path, 1), record(tmp_path, 2), record(tmp_path, 1)
    found, text = history.find(str(tmp_path), None, current=one.digest)
    assert (found.digest, text) == (two.digest, text_with(2))
    found, _ = history.find(str(tmp_path), one.digest[:8].upper(), current=one.digest)
    assert found.digest == one.digest
    unknown = next(c for c in "0123456789abcdef" if not one.digest.startswith(c) and
                   not two.digest.startswith(c))
    with pytest.raises(BayctlError, match=f"no policy '{unknown}' in this bay's history"):
        history.find(str(tmp_path), unknown, current=None)


def test_an_ambiguous_prefix_is_refused(tmp_path):
    digests = [record(tmp_path, tag).digest for tag in range(1, 18)]  # 17 digests: two share a first digit
    shared = next(d[0] for d in digests if sum(other[0] == d[0] for other in digests) > 1)
    with pytest.raises(BayctlError, match=f"digest '{shared}' is ambiguous"):
        history.find(str(tmp_path), shared, current=None)


def test_nothing_to_roll_back_to_is_said_in_one_line(tmp_path):
    only = record(tmp_path, 1)
    with pytest.raises(BayctlError, match="nothing to roll back to"):
        history.find(str(tmp_path), None, current=only.digest)


def test_held_text_falls_back_to_the_recorded_file_only_while_it_is_unchanged(tmp_path):
    policy_file = tmp_path / "mine.yaml"
    policy_file.write_text(text_with(5))
    digest = parse_policy(text_with(5)).digest
    assert history.held_text(str(tmp_path), digest, str(policy_file)) == text_with(5)
    policy_file.write_text(text_with(6))
    with pytest.raises(BayctlError, match="no longer kept"):
        history.held_text(str(tmp_path), digest, str(policy_file))
    assert history.held_text(str(tmp_path), None, None) is None


def test_a_damaged_history_is_named(tmp_path):
    (tmp_path / "history.json").write_text(json.dumps({"history": [{"digest": 1}]}))
    with pytest.raises(BayctlError, match="history.json: unreadable policy history"):
        history.records(str(tmp_path))
