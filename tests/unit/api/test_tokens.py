"""The token file: what it refuses, and why (a user reads the message)."""
import os

import pytest

from agent.api import tokens
from agent.errors import ConfigError

A, B = "a" * 40, "b" * 40


@pytest.fixture
def token_file(tmp_path):
    path = str(tmp_path / "tokens")

    def write(text, mode=0o600):
        with open(path, "w") as f:
            f.write(text)
        os.chmod(path, mode)
        return path
    return write


def test_a_good_file_gives_its_tokens(token_file):
    found = tokens.load(token_file("# comment\nread %s ci\nadmin %s\n" % (A, B)))
    assert [(t.scope, t.label) for t in found] == [("read", "ci"), ("admin", "line 3")]


def test_the_same_secret_on_two_lines_is_refused(token_file):
    path = token_file("read %s ci\nadmin %s\nadmin %s ops\n" % (A, B, A))
    with pytest.raises(ConfigError) as info:
        tokens.load(path)
    message = str(info.value)
    assert "lines 1 and 3" in message and "same token" in message
    assert A not in message  # never the secret itself


def test_a_file_readable_by_others_is_refused(token_file):
    with pytest.raises(ConfigError, match="readable by others"):
        tokens.load(token_file("admin %s\n" % A, mode=0o644))


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to give the file away")
def test_a_file_owned_by_another_user_is_refused(token_file):
    path = token_file("admin %s\n" % A)
    os.chown(path, 65534, 65534)
    with pytest.raises(ConfigError, match="owned by uid 65534"):
        tokens.load(path)
