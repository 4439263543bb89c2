"""README.md stays true: its references are checked against the code they describe."""
import argparse
import os
import re

from agent import cli
from agent.api import openapi
from agent.core import config
from agent.daemon import main as daemon_main

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
with open(os.path.join(REPO, "README.md")) as f:
    README = f.read()


def test_the_two_commands_exist_and_ci_runs_them():
    assert "    sudo demo/run " in README and "    sudo tests/run " in README
    for script in ("demo/run", "tests/run"):
        path = os.path.join(REPO, script)
        assert os.access(path, os.X_OK), "%s is not executable" % script
    with open(os.path.join(REPO, ".ci", "run")) as f:
        ci = f.read()
    assert "bash tests/run -ra" in ci and "bash tests/run --oldest" in ci
    assert '"$dir/xapi-gateway/demo/run" --non-interactive' in ci  # a clone, alone
    assert "bash .ci/install-check" in ci  # the wheel, away from any checkout


def test_the_api_table_lists_exactly_the_documented_operations_with_their_scope():
    rows = set(re.findall(r"^\| `(GET|POST|PUT|DELETE)` \| `([^`]+)` \| (\w+) \|", README,
                          re.M))
    documented = set()
    for path, operations in openapi.document()["paths"].items():
        for method, op in operations.items():
            documented.add((method.upper(), path, op["x-scope"] or "none"))
    assert rows == documented, ("missing from README: %s; not in the API: %s"
                                % (sorted(documented - rows), sorted(rows - documented)))


def test_the_configuration_table_has_every_option():
    schemas = {"agent": config.AGENT_SCHEMA, "xapi": config.XAPI_SCHEMA,
               "api": config.API_SCHEMA, "gateway:NAME": config.GATEWAY_SCHEMA}
    missing = []
    for section, schema in schemas.items():
        rows = re.findall(r"^\| %s \| (.*)$" % re.escape(section), README, re.M)
        for key in schema:
            if not any("`%s`" % key in row.split(" | ")[0] for row in rows):
                missing.append("[%s] %s" % (section, key))
    assert not missing, "options missing from README's configuration table: %s" % missing


def _subcommands(parser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return action.choices
    return {}


def test_the_cli_reference_names_every_command_and_subcommand():
    missing = []
    for name, sub in _subcommands(cli.build_parser()).items():
        if not re.search(r"\bxgw %s\b" % re.escape(name), README):
            missing.append("xgw %s" % name)
        for action in _subcommands(sub):
            if not re.search(r"\b%s\b" % re.escape(action),
                             README[README.index("xgw %s" % name):]):
                missing.append("xgw %s %s" % (name, action))
    reference = README[README.index("## CLI reference"):README.index("## HTTP API reference")]
    for action in daemon_main.build_parser()._actions:
        for flag in action.option_strings:
            if flag.startswith("--") and flag != "--help" and flag not in reference:
                missing.append("xapi-gateway-agent %s" % flag)
    assert not missing, "missing from README's CLI reference: %s" % missing
