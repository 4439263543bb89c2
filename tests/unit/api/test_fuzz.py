"""Property-based fuzzing of the API against its OpenAPI document (schemathesis), with a
fixed budget and seed: no 5xx, every status documented, every body matching its schema.

schemathesis needs Python 3.8+; CI's newest-dependencies run has it (requirements/
newest.txt), and there this test fails rather than skips if it is missing. The Python
3.6 run (oldest pins) cannot install it and skips."""
import os
import subprocess
import sys

import pytest

from tests.unit.api.conftest import ADMIN

EXAMPLES = int(os.environ.get("XGW_FUZZ_EXAMPLES", "25"))
SEED = 20261123


def st_binary():
    path = os.path.join(os.path.dirname(sys.executable), "st")
    if not os.path.exists(path):
        if sys.version_info < (3, 8):
            pytest.skip("schemathesis needs Python 3.8+; the newest-dependencies run fuzzes")
        raise AssertionError("schemathesis is missing from %s: tests/run installs it from "
                             "requirements/newest.txt" % os.path.dirname(sys.executable))
    return path


def test_fuzz_the_api_against_its_document(api, engine, tmp_path):
    st = st_binary()
    session = engine.call("session.login_with_password", ["root", ""])["Value"]
    for name in ("pxe", "private"):  # something to find, delete and conflict with
        engine.call("network.create", [session, {"name_label": name, "other_config": {}}])
    report = tmp_path / "junit.xml"
    result = subprocess.run(
        [st, "run", api.url + "/v1/openapi.json", "--tls-verify", api.cafile,
         "-H", "Authorization: Bearer %s" % ADMIN,
         "--checks", "not_a_server_error,status_code_conformance,content_type_conformance,"
                     "response_schema_conformance",
         "--max-examples", str(EXAMPLES), "--seed", str(SEED), "--workers", "1",
         "--phases", "examples,coverage,fuzzing", "--request-timeout", "30",
         "--report", "junit", "--report-junit-path", str(report)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True,
        timeout=900, cwd=str(tmp_path),  # st keeps its cache in the working directory
        env=dict(os.environ, NO_COLOR="1", SCHEMATHESIS_TELEMETRY="false"))
    tail = "\n".join(result.stdout.splitlines()[-60:])
    assert result.returncode == 0, tail
    assert "passed" in result.stdout.lower(), tail
