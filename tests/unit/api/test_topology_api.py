"""The blog's lab (examples/blog-lab.yaml) through the API and xgw: plan, apply, apply
again (no change), destroy (the simulator as it was), conflicts, the diagram."""
import json
import os

from agent.api.client import Client
from tests.unit.api.conftest import Http

EXAMPLE = os.path.join(os.path.dirname(__file__), "..", "..", "..", "examples",
                       "blog-lab.yaml")


def inventory(engine):
    """Everything a topology could touch, as comparable data."""
    return {cls: sorted((rec.get("name_label", ""), repr(sorted(
        (k, v) for k, v in rec.get("other_config", {}).items())))
        for rec in engine.objects[cls].values())
        for cls in ("network", "VM", "VIF", "VBD", "VDI", "PIF", "VLAN")}


def test_the_blog_lab_applies_once_then_changes_nothing_and_destroys_cleanly(xgw, engine):
    before = inventory(engine)
    code, out, _ = xgw("plan", EXAMPLE)
    assert code == 0 and "to create" in out.splitlines()[0]
    assert "+ network private" in out and "+ vm Compute" in out
    code, out, err = xgw("apply", EXAMPLE)
    assert code == 0, err
    assert "[1/" in err and "topology blog-lab applied" in err  # progress as it happens
    names = sorted(r["name_label"] for r in engine.objects["VM"].values()
                   if not r["is_a_template"] and not r["is_control_domain"])
    assert names == ["Compute", "Controller", "Fuel"]
    code, out, _ = xgw("plan", "--json", EXAMPLE)
    plan = json.loads(out)
    assert code == 0 and plan["changes"] is False, plan
    snapshot = inventory(engine)
    code, out, _ = xgw("apply", "--json", EXAMPLE)
    assert code == 0 and json.loads(out)["changed"] == 0
    assert inventory(engine) == snapshot
    code, out, err = xgw("diagram")
    assert code == 0 and out.startswith("graph LR") and "Compute" in out and "private" in out
    code, out, err = xgw("destroy", EXAMPLE)
    assert code == 0, err
    assert inventory(engine) == before


def test_a_foreign_object_of_the_same_name_is_a_conflict(xgw, engine, unix):
    unix("POST", "/v1/networks", {"name": "pxe"})  # made by hand, not by the topology
    before = inventory(engine)
    code, out, _ = xgw("plan", EXAMPLE)
    assert code == 5 and "! network pxe" in out
    code, _, err = xgw("apply", EXAMPLE)
    assert code == 5 and "nothing was changed" in err
    assert inventory(engine) == before


def test_a_bad_file_is_refused_locally_with_its_path(xgw, tmp_path):
    bad = tmp_path / "lab.yaml"
    bad.write_text("name: lab\nvms:\n  - name: a\n    nics: [pxe]\n    memroy_mib: 4\n")
    code, _, err = xgw("apply", str(bad))
    assert code == 2 and "vms[0].memroy_mib" in err


def test_the_api_validates_topologies_itself(api):
    http = Http(Client(socket_path=api.socket))
    status, data = http("POST", "/v1/topology/plan", {"name": "lab", "vms": [
        {"name": "a", "nics": ["nope"], "vcpus": 0}]})
    assert status == 400 and data["error"]["details"]["field"].startswith("vms[0]")
    status, data = http("POST", "/v1/topology/plan", {"networks": []})
    assert status == 400 and data["error"]["details"]["field"] == "name"
    status, text = http("GET", "/v1/diagram?format=dot")
    assert status == 200 and text.startswith("graph xapi_gateway {")
    assert http("GET", "/v1/diagram?format=png")[0] == 400
