"""API tokens: a root-only file, one token per line, ``<scope> <token> [label]``.

Scopes: ``read`` (GET) and ``admin`` (everything). Lines starting with ``#`` are comments.
Tokens are at least 32 characters, each on one line only; they are compared in constant
time and never logged (only their label, or their line number, is). The file must belong
to the user the daemon runs as (root) and be readable by nobody else.
"""
import hmac
import os
import stat
from collections import namedtuple

from agent.errors import ConfigError

SCOPES = ("read", "admin")
MIN_LENGTH = 32
Token = namedtuple("Token", "scope secret label")


def load(path):
    """[Token]; ConfigError for a missing, unsafe or malformed file."""
    try:
        info = os.stat(path)
        with open(path, "rb") as f:
            text = f.read().decode("utf-8")
    except (IOError, OSError) as exc:
        raise ConfigError("cannot read the token file %s: %s" % (path, exc.strerror or exc))
    except UnicodeDecodeError:
        raise ConfigError("the token file %s is not UTF-8 text" % path)
    if info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise ConfigError("the token file %s is readable by others (mode %o): make it "
                          "root-only with chmod 600" % (path, stat.S_IMODE(info.st_mode)))
    if info.st_uid != os.geteuid():
        raise ConfigError("the token file %s is owned by uid %d, not by uid %d that runs the "
                          "daemon: anyone who owns it can change the tokens; chown it"
                          % (path, info.st_uid, os.geteuid()))
    tokens = []
    lines = {}  # secret -> the line it was first seen on
    for number, line in enumerate(text.splitlines(), 1):
        words = line.split()
        if not words or words[0].startswith("#"):
            continue
        if len(words) < 2 or words[0] not in SCOPES:
            raise ConfigError("%s line %d: write '<read|admin> <token> [label]'"
                              % (path, number))
        if len(words[1]) < MIN_LENGTH:
            raise ConfigError("%s line %d: the token is shorter than %d characters; make "
                              "one with: od -An -tx1 -N32 /dev/urandom | tr -d ' \\n'"
                              % (path, number, MIN_LENGTH))
        first = lines.setdefault(words[1], number)
        if first != number:
            raise ConfigError("%s lines %d and %d: the same token twice; which scope it has "
                              "would be a guess: keep one line" % (path, first, number))
        tokens.append(Token(words[0], words[1].encode("utf-8"),
                            " ".join(words[2:]) or "line %d" % number))
    return tokens


def match(tokens, presented):
    """The Token whose secret is ``presented`` (bytes or str), or None. Every token is
    compared, in constant time, whatever matches first."""
    if isinstance(presented, str):
        presented = presented.encode("utf-8")
    found = None
    for token in tokens:
        if hmac.compare_digest(token.secret, presented):
            found = token
    return found


def allows(token, needed):
    """Whether ``token``'s scope covers ``needed`` ("read" or "admin")."""
    return token.scope == "admin" or needed == "read"
