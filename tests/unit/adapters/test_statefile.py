"""agent.adapters.statefile: the record of added addresses, with the link each went on."""
import ipaddress
import json
import os

from agent.adapters import statefile as S
from agent.core.planner import Owned

ADDRESS = ipaddress.IPv4Interface("172.16.1.1/24")


def test_owned_addresses_keep_their_link_index(tmp_path):
    state = S.StateFile(str(tmp_path))
    state.save({"xapi1": Owned(ADDRESS, 7), "xapi2": Owned(ADDRESS, None)}, False)
    assert state.load() == ({"xapi1": Owned(ADDRESS, 7), "xapi2": Owned(ADDRESS, None)},
                            False)
    with open(os.path.join(str(tmp_path), "state.json")) as f:
        data = json.load(f)
    assert data["owned"] == {"xapi1": "172.16.1.1/24", "xapi2": "172.16.1.1/24"}
    assert data["links"] == {"xapi1": 7}


def test_indexes_of_another_boot_or_namespace_are_not_trusted(tmp_path):
    """After a reboot index 7 is some other link: the record goes back to names."""
    path = os.path.join(str(tmp_path), "state.json")
    with open(path, "w") as f:
        json.dump({"version": 1, "owned": {"xapi1": "172.16.1.1/24"}, "links": {"xapi1": 7},
                   "links_of": "another-boot 4:1234", "ip_forward_was": None}, f)
    assert S.StateFile(str(tmp_path)).load() == ({"xapi1": Owned(ADDRESS, None)}, None)


def test_a_file_without_indexes_still_loads(tmp_path):
    path = os.path.join(str(tmp_path), "state.json")
    with open(path, "w") as f:
        json.dump({"version": 1, "owned": {"xapi1": "172.16.1.1/24"}, "ip_forward_was": True}, f)
    assert S.StateFile(str(tmp_path)).load() == ({"xapi1": Owned(ADDRESS, None)}, True)


def test_a_document_written_as_it_is_encoded_is_the_same_file(tmp_path):
    """status.json goes out chunk by chunk (never whole in memory); readers see the same
    text as before, and a failure half way leaves the old file."""
    path = os.path.join(str(tmp_path), "status.json")
    data = {"gateways": [{"name": "gw%d" % i, "state": "applied"} for i in range(50)]}
    S.write_atomic(path, json.JSONEncoder(indent=1).iterencode(data), durable=False)
    with open(path) as f:
        assert f.read() == json.dumps(data, indent=1)

    def broken():
        yield "{"
        raise ValueError("the encoder failed")
    try:
        S.write_atomic(path, broken(), durable=False)
    except ValueError:
        pass
    with open(path) as f:
        assert json.load(f) == data
    assert os.listdir(str(tmp_path)) == ["status.json"]
