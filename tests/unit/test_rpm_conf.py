"""The RPM's commented agent.conf documents every option the daemon knows, with its
default: the check rpm/check makes on the installed package, made here on the source tree
so that a new option without its line fails at once, not only in the RPM phase."""
import os
import subprocess
import sys

from agent.core import config

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_agent_conf_documents_every_option_with_its_default(tmp_path):
    reference = tmp_path / "help-config"
    reference.write_text(config.reference() + "\n")  # what --help-config prints
    out = subprocess.run([sys.executable, os.path.join(REPO, "rpm", "conf_check.py"),
                          str(reference), os.path.join(REPO, "rpm", "agent.conf")],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         universal_newlines=True)
    assert out.returncode == 0, out.stdout
    schemas = (config.AGENT_SCHEMA, config.XAPI_SCHEMA, config.API_SCHEMA, config.GATEWAY_SCHEMA)
    assert out.stdout.strip() == "%d options in %d sections" % (
        sum(len(s) for s in schemas), len(schemas))
