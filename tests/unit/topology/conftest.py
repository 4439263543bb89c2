"""Fixtures of the topology tests: the blog's lab document (the XenAPI session on the
served simulator is tests/unit/conftest.py's ``xenapi``)."""
import copy
import os

import pytest

from agent.topology import model

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))
LAB = os.path.join(ROOT, "examples", "blog-lab.yaml")


def lab_document(forwards=False):
    """examples/blog-lab.yaml as a document; without the gateway's forwards unless
    ``forwards`` (they need the service layer's forwards support)."""
    with open(LAB) as f:
        document = model.loads(f.read(), source=LAB, fmt="yaml")
    if not forwards:
        for network in document["networks"]:
            (network.get("gateway") or {}).pop("forwards", None)
    return copy.deepcopy(document)


@pytest.fixture
def lab():
    """The blog's lab (without forwards) as a Topology."""
    return model.parse(lab_document())
