"""Topology documents: parsing, validation with field paths, and reading files."""
import copy
import io
import json

import pytest

from agent.service.errors import InvalidInput
from agent.service.vms import Vms
from agent.topology import model
from tests.unit.topology.conftest import LAB, lab_document

BASE = {
    "name": "lab",
    "networks": [
        {"name": "pxe"},
        {"name": "private", "gateway": {"address": "172.16.0.1/24", "forwards": [
            {"proto": "tcp", "port": 8080, "to": "172.16.0.3:80"}]}},
        {"name": "br100", "vlan": {"tag": 100}},
    ],
    "vms": [
        {"name": "Fuel", "nics": ["pxe"], "memory_mib": 2048},
        {"name": "Controller", "nics": ["pxe", "private", "br100"], "disks": [
            {"size_gib": 50}]},
        {"name": "Compute", "nics": ["pxe", "private", "br100"], "himn": True},
    ],
}


def document(change=None):
    doc = copy.deepcopy(BASE)
    if change is not None:
        change(doc)
    return doc


def test_defaults_are_the_service_layers():
    topology = model.parse(document())
    assert topology.name == "lab"
    assert [n.name for n in topology.networks] == ["pxe", "private", "br100"]
    pxe, private, br100 = topology.networks
    assert (pxe.description, pxe.vlan, pxe.gateway) == ("", None, None)
    assert str(private.gateway) == "172.16.0.1/24 nat"
    assert private.gateway.to_service() == {
        "address": "172.16.0.1/24", "nat": True,
        "forwards": [{"proto": "tcp", "port": 8080, "to": "172.16.0.3:80"}]}
    assert br100.vlan.to_service() == {"tag": 100, "pif": "eth0"}
    fuel, controller, compute = topology.vms
    assert fuel == model.VmSpec("Fuel", "Other install media", 2048, 1, (), ("pxe",), None,
                                "dc", False, False, "")
    assert controller.memory_mib == 256 and controller.disks == (model.DiskSpec(50, None),)
    assert compute.himn is True and compute.start is False
    assert topology.network("private") is private and topology.network("nope") is None


def test_a_gateway_without_forwards_asks_no_forwards_support():
    topology = model.parse({"name": "t", "networks": [
        {"name": "n", "gateway": {"address": "10.0.0.1/24", "nat": "no"}}]})
    assert topology.networks[0].gateway.to_service() == {"address": "10.0.0.1/24",
                                                         "nat": False}


@pytest.mark.parametrize("memory,mib", [("512MiB", 512), ("4GiB", 4096), (" 4 GiB ", 4096),
                                        ("2gib", 2048), ("128 MiB", 128)])
def test_memory_in_binary_units(memory, mib):
    doc = document(lambda d: d["vms"][0].pop("memory_mib"))
    doc["vms"][0]["memory"] = memory
    assert model.parse(doc).vms[0].memory_mib == mib


def test_the_blog_lab_example_parses():
    topology = model.load(LAB)
    assert topology.name == "blog-lab"
    assert [n.name for n in topology.networks] == ["pxe", "private", "br100"]
    assert [v.name for v in topology.vms] == ["Fuel", "Controller", "Compute"]
    private = topology.network("private").gateway
    assert str(private) == "172.16.0.1/24 nat"
    assert [str(f) for f in private.forwards] == ["tcp:8080=172.16.0.3:80"]
    fuel, controller, compute = topology.vms
    assert fuel.nics == ("pxe", "Pool-wide network associated with eth0")
    assert (fuel.iso, fuel.boot, fuel.memory_mib, fuel.start) == (
        "ubuntu-22.04-server.iso", "dc", 2048, True)
    for vm in (controller, compute):
        assert vm.nics == ("pxe", "private", "br100")
        assert (vm.boot, vm.memory_mib, vm.vcpus) == ("ncd", 4096, 2)
        assert vm.disks == (model.DiskSpec(50, None),)
    assert (controller.himn, compute.himn) == (False, True)


def _set(path, value):
    """A change setting ``path`` (a list of keys and indexes) to ``value`` (an index one
    past a list's end appends); the value DELETE removes it."""
    def change(doc):
        target = doc
        for key in path[:-1]:
            target = target[key]
        if value is DELETE:
            del target[path[-1]]
        elif isinstance(target, list) and path[-1] == len(target):
            target.append(value)
        else:
            target[path[-1]] = value
    return change


DELETE = object()

BAD = [
    # (change, field, words the message has)
    (_set(["name"], DELETE), "name", "is required"),
    (_set(["name"], "my lab"), "name", "not a valid name"),
    (_set(["nmae"], "x"), "nmae", "did you mean name?"),
    (_set(["networks"], {"name": "pxe"}), "networks", "must be a list"),
    (_set(["networks", 0], "pxe"), "networks[0]", "must be a network"),
    (_set(["networks", 0, "name"], 5), "networks[0].name", "must be a string"),
    (_set(["networks", 2, "name"], "pxe"), "networks[2].name", "also networks[0]"),
    (_set(["networks", 0, "gatway"], {}), "networks[0].gatway", "did you mean gateway?"),
    (_set(["networks", 0, "description"], 5), "networks[0].description", "must be text"),
    (_set(["networks", 2, "vlan"], {"tag": 4095}), "networks[2].vlan.tag", "outside 0 to 4094"),
    (_set(["networks", 2, "vlan"], {"tag": "100"}), "networks[2].vlan.tag", "not a whole"),
    (_set(["networks", 2, "vlan"], {"tag": 1, "pif": ""}), "networks[2].vlan.pif", "eth0"),
    (_set(["networks", 2, "vlan"], {"tag": 1, "if": "eth0"}), "networks[2].vlan.if",
     "did you mean pif?"),
    (_set(["networks", 1, "gateway", "address"], "172.16.0.0/24"),
     "networks[1].gateway.address", "network address"),
    (_set(["networks", 1, "gateway", "address"], "172.16.0.1"),
     "networks[1].gateway.address", "needs a prefix"),
    (_set(["networks", 1, "gateway", "nat"], "maybe"), "networks[1].gateway.nat",
     "is not a boolean"),
    (_set(["networks", 0, "gateway"], {"address": "172.16.0.2/16"}),
     "networks[1].gateway.address", "overlaps gateway pxe"),
    (_set(["networks", 1, "gateway", "forwards", 0, "proto"], "icmp"),
     "networks[1].gateway.forwards[0].proto", "tcp or udp"),
    (_set(["networks", 1, "gateway", "forwards", 0, "port"], 0),
     "networks[1].gateway.forwards[0].port", "0 is out of range"),
    (_set(["networks", 1, "gateway", "forwards", 0, "port"], 22),
     "networks[1].gateway.forwards[0].port", "SSH"),
    (_set(["networks", 1, "gateway", "forwards", 0, "to"], "172.16.0.3:http"),
     "networks[1].gateway.forwards[0].to", "'http' is not a port"),
    (_set(["networks", 1, "gateway", "forwards", 0, "to"], "10.0.0.3:80"),
     "networks[1].gateway.forwards[0].to", "outside the gateway's subnet"),
    (_set(["networks", 1, "gateway", "forwards", 0, "to"], "172.16.0.1:80"),
     "networks[1].gateway.forwards[0].to", "the gateway's own address"),
    (_set(["networks", 1, "gateway", "forwards", 0, "to"], "172.16.0.3:70000"),
     "networks[1].gateway.forwards[0].to", "70000 is out of range"),
    (_set(["networks", 1, "gateway", "forwards", 0, "dest"], "x"),
     "networks[1].gateway.forwards[0].dest", "unknown key"),
    (_set(["networks", 1, "gateway", "forwards", 1], {"proto": "tcp", "port": 8080,
                                                      "to": "172.16.0.4:80"}),
     "networks[1].gateway.forwards[1].port", "forwarded twice"),
    (_set(["networks", 0, "gateway"], {"address": "10.0.0.1/24", "forwards": [
        {"proto": "tcp", "port": 8080, "to": "10.0.0.2:80"}]}),
     "networks[1].gateway.forwards[0].port", "already forwarded by gateway pxe"),
    (_set(["vms"], {"name": "x"}), "vms", "must be a list"),
    (_set(["vms", 1, "name"], "Fuel"), "vms[1].name", "also vms[0]"),
    (_set(["vms", 0, "nics"], DELETE), "vms[0].nics", "nics: []"),
    (_set(["vms", 0, "nics"], "pxe"), "vms[0].nics", "must be a list"),
    (_set(["vms", 2, "nics", 1], ""), "vms[2].nics[1]", "network's name"),
    (_set(["vms", 2, "nics", 1], ["private"]), "vms[2].nics[1]", "network's name"),
    (_set(["vms", 0, "memory_mib"], 64), "vms[0].memory_mib", "outside 128 to 1048576"),
    (_set(["vms", 0, "memory_mib"], "2048"), "vms[0].memory_mib", "not a whole number"),
    (_set(["vms", 0, "memory"], "4GiB"), "vms[0].memory", "both given"),
    (_set(["vms", 1, "memory"], "4GB"), "vms[1].memory", "ambiguous"),
    (_set(["vms", 1, "memory"], 4096), "vms[1].memory", "not a size"),
    (_set(["vms", 1, "memory"], "64MiB"), "vms[1].memory", "outside 128"),
    (_set(["vms", 1, "memmory_mib"], 4096), "vms[1].memmory_mib", "did you mean memory_mib?"),
    (_set(["vms", 1, "vcpus"], 0), "vms[1].vcpus", "outside 1 to 64"),
    (_set(["vms", 1, "vcpus"], True), "vms[1].vcpus", "not a whole number"),
    (_set(["vms", 1, "boot"], "xz"), "vms[1].boot", "e.g. ncd"),
    (_set(["vms", 1, "boot"], "nn"), "vms[1].boot", "at most once"),
    (_set(["vms", 1, "himn"], "yes"), "vms[1].himn", "true or false"),
    (_set(["vms", 1, "start"], 1), "vms[1].start", "true or false"),
    (_set(["vms", 1, "template"], ""), "vms[1].template", "Other install media"),
    (_set(["vms", 1, "iso"], 5), "vms[1].iso", "ISO"),
    (_set(["vms", 1, "disks"], "50"), "vms[1].disks", "must be a list"),
    (_set(["vms", 1, "disks"], [{"size_gib": 1}] * 16), "vms[1].disks", "at most 15"),
    (_set(["vms", 1, "disks", 0, "size_gib"], 0), "vms[1].disks[0].size_gib",
     "outside 1 to 2040"),
    (_set(["vms", 1, "disks", 0, "size_gib"], 1.5), "vms[1].disks[0].size_gib",
     "not a whole"),
    (_set(["vms", 1, "disks", 0, "srr"], "x"), "vms[1].disks[0].srr", "did you mean sr?"),
    (_set(["vms", 1, "disks", 0], 50), "vms[1].disks[0]", "must be a disk"),
    (_set(["vms", 2, "nics"], ["pxe"] * 10), "vms[2].nics", "device 9"),
]


@pytest.mark.parametrize("change,field,words", BAD, ids=[b[1] + ":" + b[2] for b in BAD])
def test_bad_documents_name_the_field(change, field, words):
    with pytest.raises(InvalidInput) as info:
        model.parse(document(change))
    assert info.value.details["field"] == field
    assert info.value.message.startswith(field + ": ")
    assert words in info.value.message
    assert "; " in info.value.message  # the problem, then what to do


@pytest.mark.parametrize("doc", [None, [], "lab", 5])
def test_a_document_must_be_a_mapping(doc):
    with pytest.raises(InvalidInput) as info:
        model.parse(doc)
    assert info.value.details["field"] == "topology"


def test_empty_lists_are_fine():
    assert model.parse({"name": "empty"}) == model.Topology("empty", (), ())
    assert model.parse({"name": "e", "networks": None, "vms": []}).vms == ()


# ---- the same limits as the service layer -------------------------------------------------
LIMITS = [("memory_mib", 127), ("memory_mib", 128), ("memory_mib", 1024 * 1024),
          ("memory_mib", 1024 * 1024 + 1), ("vcpus", 0), ("vcpus", 1), ("vcpus", 64),
          ("vcpus", 65), ("boot", "ncd"), ("boot", "cdnx"), ("boot", "dd"), ("boot", "n"),
          ("disks", [{"size_gib": 2040}]), ("disks", [{"size_gib": 2041}]),
          ("disks", [{"size_gib": 1}] * 15), ("disks", [{"size_gib": 1}] * 16)]


@pytest.mark.parametrize("key,value", LIMITS, ids=["%s=%s" % (k, str(v)[:20])
                                                   for k, v in LIMITS])
def test_model_and_vms_create_accept_the_same_values(xenapi, key, value):
    try:
        model.parse({"name": "t", "vms": [{"name": "v", "nics": [], key: value}]})
        model_accepts = True
    except InvalidInput:
        model_accepts = False
    try:
        Vms(xenapi).create("v", **{key: value})
        service_accepts = True
    except InvalidInput:
        service_accepts = False
    assert model_accepts == service_accepts


# ---- files --------------------------------------------------------------------------------
def write(tmp_path, name, text, encoding="utf-8"):
    path = tmp_path / name
    with io.open(str(path), "w", encoding=encoding) as f:
        f.write(text)
    return str(path)


def test_yaml_and_json_give_the_same_topology(tmp_path):
    doc = lab_document(forwards=True)
    from_yaml = model.load(LAB)
    assert model.load(write(tmp_path, "lab.json", json.dumps(doc))) == from_yaml
    # no telling extension: JSON when it starts with "{", YAML otherwise
    assert model.load(write(tmp_path, "lab.topology", json.dumps(doc, indent=1))) == from_yaml
    with open(LAB) as f:
        assert model.load(write(tmp_path, "lab.txt", f.read())) == from_yaml
    # YAML's own {key: value} form is not JSON
    assert model.load(write(tmp_path, "flow", "{name: lab, vms: []}")).name == "lab"
    with pytest.raises(InvalidInput) as info:
        model.load(write(tmp_path, "broken", '{"name": "lab",,}'))
    assert "not valid JSON" in info.value.message


def test_malformed_yaml_gives_its_line(tmp_path):
    path = write(tmp_path, "bad.yaml", "name: lab\nnetworks:\n  - name: pxe\n"
                                       "    description: [unclosed\n")
    with pytest.raises(InvalidInput) as info:
        model.load(path)
    assert info.value.details["file"] == path and info.value.details["line"] == 5
    assert "bad.yaml line 5, column 1: not valid YAML" in info.value.message


def test_malformed_json_gives_its_line(tmp_path):
    path = write(tmp_path, "bad.json", '{\n "name": "lab",\n "vms": [}\n}\n')
    with pytest.raises(InvalidInput) as info:
        model.load(path)
    assert info.value.details["line"] == 3
    assert "bad.json line 3, column 10: not valid JSON" in info.value.message


def test_a_key_given_twice_is_an_error(tmp_path):
    path = write(tmp_path, "twice.yaml", "name: lab\nvms:\n  - name: a\n    nics: []\n"
                                         "    memory_mib: 512\n    memory_mib: 1024\n")
    with pytest.raises(InvalidInput) as info:
        model.load(path)
    assert "line 6: key 'memory_mib' appears twice" in info.value.message
    path = write(tmp_path, "twice.json", '{"name": "a", "name": "b"}')
    with pytest.raises(InvalidInput) as info:
        model.load(path)
    assert "key 'name' appears twice" in info.value.message


def test_validation_errors_from_a_file_name_it(tmp_path):
    path = write(tmp_path, "lab.yaml", "name: lab\nvms:\n  - name: a\n    nics: [pxe]\n"
                                       "    vcpu: 2\n")
    with pytest.raises(InvalidInput) as info:
        model.load(path)
    assert info.value.details["field"] == "vms[0].vcpu"
    assert info.value.details["file"] == path
    assert info.value.message.startswith(path + ": vms[0].vcpu: unknown key")
    assert "did you mean vcpus?" in info.value.message


@pytest.mark.parametrize("name,text,words", [
    ("empty.yaml", "# nothing\n", "is empty"),
    ("list.yaml", "- a\n- b\n", "must be a topology"),
    ("latin1.yaml", u"name: caf\u00e9\n", "not UTF-8"),
])
def test_unusable_files(tmp_path, name, text, words):
    path = write(tmp_path, name, text, encoding="latin-1" if "latin" in name else "utf-8")
    with pytest.raises(InvalidInput) as info:
        model.load(path)
    assert words in info.value.message


def test_a_missing_file(tmp_path):
    with pytest.raises(InvalidInput) as info:
        model.load(str(tmp_path / "nope.yaml"))
    assert info.value.details["field"] == "file"
    assert "cannot read the topology file" in info.value.message
