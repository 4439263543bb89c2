"""agent/xapisim/data/regenerate.py on small hand-written sources shaped like the real ones
(the published _data/xenapi.json, xen-api's datamodel_errors.ml and api_errors.ml): what
it keeps, how it reads OCaml, and that the simulator loads what it writes. No network and
no fetched file: README.md beside the script says how the shipped files were checked."""
import json
import os

import pytest

from agent.xapisim import datamodel as dm
from agent.xapisim.data import regenerate


def lifecycle(state, text="a description"):
    return {"state": state, "transitions": [
        {"transition": "published", "release": "rio", "description": text}]}


def param(name, type_, required=True):
    return {"type": type_, "name": name, "doc": "what it is", "required": required}


SESSION = param("session_id", "session ref")

# One class as the xapi project publishes it: a runtime field, a writable one with a
# default, a constructor field without one; an implicit create, an implicit getter and an
# explicit message with an error.
WIDGET = {
    "name": "widget",
    "description": "A widget",
    "tag": "",
    "enums": [],
    "lifecycle": lifecycle("Published_s"),
    "fields": [
        {"name": "uuid", "description": "Unique identifier", "type": "string",
         "qualifier": "RO/runtime", "tag": "", "lifecycle": lifecycle("Published_s")},
        {"name": "name_label", "description": "a name", "type": "string", "qualifier": "RW",
         "default": "", "tag": "", "lifecycle": lifecycle("Published_s")},
        {"name": "size", "description": "how big", "type": "int",
         "qualifier": "RO/constructor", "tag": "", "lifecycle": lifecycle("Prototyped_s")},
    ],
    "messages": [
        {"name": "create", "description": "Create a new widget instance",
         "result": ["widget ref", "reference to the newly created object"],
         "params": [SESSION, param("args", "widget record")],
         "errors": [], "roles": ["pool-admin"], "tag": "",
         "lifecycle": lifecycle("Published_s"), "implicit": True},
        {"name": "get_name_label", "description": "Get the name_label field",
         "result": ["string", "value of the field"],
         "params": [SESSION, param("self", "widget ref")],
         "errors": [], "roles": ["read-only"], "tag": "",
         "lifecycle": lifecycle("Published_s"), "implicit": True},
        {"name": "spin", "description": "Spin it",
         "result": ["void"],
         "params": [SESSION, param("self", "widget ref"), param("speed", "int", False)],
         "errors": [{"name": "WIDGET_TOO_FAST", "doc": "Slow down."}],
         "roles": ["pool-admin"], "tag": "",
         "lifecycle": lifecycle("Deprecated_s"), "implicit": False},
    ],
}

WIDGET_TRIMMED = {
    "state": "published",
    "fields": [
        {"name": "uuid", "type": "string", "qualifier": "RO/runtime", "state": "published"},
        {"name": "name_label", "type": "string", "qualifier": "RW", "state": "published",
         "default": ""},
        {"name": "size", "type": "int", "qualifier": "RO/constructor", "state": "prototyped"},
    ],
    "messages": [
        {"name": "create",
         "params": [{"name": "session_id", "type": "session ref", "required": True},
                    {"name": "args", "type": "widget record", "required": True}],
         "result": "widget ref", "errors": [], "implicit": True, "state": "published",
         "constructor_args": ["name_label", "size"], "constructor_required": ["size"]},
        {"name": "get_name_label",
         "params": [{"name": "session_id", "type": "session ref", "required": True},
                    {"name": "self", "type": "widget ref", "required": True}],
         "result": "string", "errors": [], "implicit": True, "state": "published"},
        {"name": "spin",
         "params": [{"name": "session_id", "type": "session ref", "required": True},
                    {"name": "self", "type": "widget ref", "required": True},
                    {"name": "speed", "type": "int", "required": False}],
         "result": "void", "errors": ["WIDGET_TOO_FAST"], "implicit": False,
         "state": "deprecated"},
    ],
}

API_ERRORS_ML = '''
exception Server_error of string * string list

let errors = ref []

let add_error error =
  errors := error :: !errors ;
  error

let widget_too_fast = add_error "WIDGET_TOO_FAST"

let widget_gone =
  add_error "WIDGET_GONE" (* a comment: let fake = add_error "FAKE" *)

let auth_suffix_wrong = "_WRONG_CREDENTIALS"

let auth_enable_failed = add_error "AUTH_ENABLE_FAILED"

let pool_prefix = "POOL_"

let pool_auth_enable_failed = add_error $ pool_prefix ^ auth_enable_failed

let pool_auth_enable_failed_wrong_creds =
  add_error $ pool_auth_enable_failed ^ auth_suffix_wrong
'''

DATAMODEL_ERRORS_ML = '''
let error name params ?(doc = "") () =
  Hashtbl.add errors name {err_name= name; err_params= params; err_doc= doc}

let _ =
  (* Widgets (* nested *) error Api_errors.widget_gone ["not"; "this"] *)
  error Api_errors.widget_too_fast ["speed"]
    ~doc:"Slow down: the error [\\"speed\\"] says how fast; (* not a comment *)" () ;
  error Api_errors.widget_gone [] ~doc:"Gone." () ;
  error Api_errors.pool_auth_enable_failed_wrong_creds
    ["host"; "message"]
    ~doc:
      "The pool could not enable external authentication: wrong \\
       credentials."
    ()
'''


def test_a_class_keeps_its_facts_and_drops_the_prose():
    document = regenerate.trim_datamodel([WIDGET], "abc1234", "26.17.0")
    assert document["classes"] == {"widget": WIDGET_TRIMMED}
    assert document["source"] == regenerate.DATAMODEL_SOURCE.format(
        commit="abc1234", release="26.17.0")
    assert "built from xen-api abc1234, releases up to xapi 26.17.0" in document["source"]


def test_the_json_text_is_sorted_indented_and_without_a_final_newline():
    text = regenerate.dump_datamodel(regenerate.trim_datamodel([WIDGET], "c", "r"))
    assert text.startswith('{\n"classes": {\n"widget": {\n"fields": [\n{\n"name": "uuid",')
    assert text.endswith('"\n}')


@pytest.mark.parametrize("broken, reason", [
    ({"classes": []}, "expected a list of classes"),
    ([dict(WIDGET, lifecycle={"state": "Published"})], "unknown lifecycle state"),
    ([{k: v for k, v in WIDGET.items() if k != "fields"}], "class widget has no 'fields'"),
    ([{"fields": []}], "a class has no 'name'"),
    ([WIDGET, WIDGET], "class widget appears twice"),
])
def test_a_source_of_another_shape_is_refused(broken, reason):
    with pytest.raises(regenerate.SourceError, match=reason):
        regenerate.trim_datamodel(broken, "c", "r")


def test_error_codes_are_read_as_xapi_computes_them():
    assert regenerate.api_error_names(API_ERRORS_ML) == {
        "widget_too_fast": "WIDGET_TOO_FAST",
        "widget_gone": "WIDGET_GONE",
        "auth_enable_failed": "AUTH_ENABLE_FAILED",
        "pool_auth_enable_failed": "POOL_AUTH_ENABLE_FAILED",
        # Not the identifier in capitals: the string xapi sends.
        "pool_auth_enable_failed_wrong_creds": "POOL_AUTH_ENABLE_FAILED_WRONG_CREDENTIALS",
    }


def test_errors_are_listed_in_declaration_order_with_their_parameters():
    document = regenerate.build_errors(DATAMODEL_ERRORS_ML, API_ERRORS_ML)
    assert document == {"source": regenerate.ERRORS_SOURCE, "errors": [
        {"name": "WIDGET_TOO_FAST", "params": ["speed"]},
        {"name": "WIDGET_GONE", "params": []},
        {"name": "POOL_AUTH_ENABLE_FAILED_WRONG_CREDENTIALS", "params": ["host", "message"]},
    ]}
    assert regenerate.dump_errors(document).startswith(
        '{\n"source": "XenAPI error codes and their parameter names')


@pytest.mark.parametrize("declaration, reason", [
    ('error Api_errors.widget_unknown [] ()', "which .* does not define"),
    ('error Api_errors.widget_gone [param] ()', "parameter 'param' is not a string"),
    ('error Api_errors.widget_gone ["a" "b"] ()', "unexpected 'b'"),
    ('error Api_errors.widget_gone ()', "no parameter list follows"),
    ('(* error Api_errors.widget_gone [] ()', "unterminated comment"),
    ('let error name params () = ()', "declares no errors"),
])
def test_an_errors_file_of_another_shape_is_refused(declaration, reason):
    with pytest.raises(regenerate.SourceError, match=reason):
        regenerate.build_errors(declaration, API_ERRORS_ML)


# datamodel.ml and datamodel_common.ml as xen-api writes them: class-name bindings, and
# all_relations with a commented-out pair and a pair split over lines
DATAMODEL_COMMON_ML = """
let _self = "self"
let _vm = "VM"
(** the host class *)
let _host = "host"
let _vm_group = "VM_group"
let _api = "api" ^ "_x"
"""
DATAMODEL_ML = """
let other_list = [((_vm, "x"), (_host, "y"))]
let all_relations =
  [ (* snapshots *)
    ((_vm, "resident_on"), (_host, "resident_VMs"))
  ; (*  (_vm, "parent"), (_host, "children"); *)
    ( (_vm, "groups")
    , (_vm_group, "VMs")
    )
  ]
let later = [((_host, "a"), (_vm, "b"))]
"""


def test_relations_are_read_in_order_without_the_commented_ones():
    document = regenerate.build_relations(DATAMODEL_ML, DATAMODEL_COMMON_ML)
    assert document["relations"] == [[["VM", "resident_on"], ["host", "resident_VMs"]],
                                     [["VM", "groups"], ["VM_group", "VMs"]]]
    assert "all_relations" in document["source"]


@pytest.mark.parametrize("datamodel_ml,reason", [
    ("let x = 1", "has no all_relations"),
    ("let all_relations = []", "all_relations is empty"),
    ('let all_relations = [((_nothing, "a"), (_vm, "b"))]', "which"),
    ('let all_relations = [((_vm, "a"), (_host, "b"))', "does not end"),
])
def test_a_relations_source_of_another_shape_is_refused(datamodel_ml, reason):
    with pytest.raises(regenerate.SourceError) as info:
        regenerate.build_relations(datamodel_ml, DATAMODEL_COMMON_ML)
    assert reason in str(info.value)


@pytest.fixture
def sources(tmp_path):
    site = tmp_path / "xenapi.json"
    site.write_text(json.dumps([WIDGET]))
    xen_api = tmp_path / "xen-api"
    for path, text in ((regenerate.DATAMODEL_ERRORS_ML, DATAMODEL_ERRORS_ML),
                       (regenerate.API_ERRORS_ML, API_ERRORS_ML),
                       (regenerate.DATAMODEL_ML, DATAMODEL_ML),
                       (regenerate.DATAMODEL_COMMON_ML, DATAMODEL_COMMON_ML)):
        (xen_api / os.path.dirname(path)).mkdir(parents=True, exist_ok=True)
        (xen_api / path).write_text(text)
    out = tmp_path / "out"
    out.mkdir()
    return ["--xenapi-json", str(site), "--xen-api-commit", "abc1234",
            "--latest-release", "26.17.0", "--xen-api", str(xen_api), "--out", str(out)], out


def test_the_simulator_loads_what_the_command_writes_and_check_sees_a_change(sources, capsys):
    argv, out = sources
    assert regenerate.main(argv + ["--check"]) == 1  # nothing there yet
    assert not os.listdir(str(out))
    assert regenerate.main(argv) == 0
    assert sorted(os.listdir(str(out))) == ["datamodel.json", "errors.json", "relations.json"]

    model = dm.Datamodel.load(str(out))
    create = model.classes["widget"].messages["create"]
    assert (create.constructor_args, create.constructor_required) == (["name_label", "size"],
                                                                      ["size"])
    assert model.classes["widget"].fields["name_label"].default == ""
    assert model.errors["POOL_AUTH_ENABLE_FAILED_WRONG_CREDENTIALS"] == ["host", "message"]

    capsys.readouterr()
    assert regenerate.main(argv + ["--check"]) == 0
    assert capsys.readouterr().out.count(": identical\n") == 3
    (out / "errors.json").write_text("{}")
    assert regenerate.main(argv + ["--check"]) == 1
    assert "errors.json: DIFFERS" in capsys.readouterr().out
    assert (out / "errors.json").read_text() == "{}"  # --check writes nothing


def test_a_bad_source_writes_nothing(sources, capsys):
    argv, out = sources
    (out / "datamodel.json").write_text("kept")
    bad = out.parent / "xen-api" / regenerate.DATAMODEL_ERRORS_ML
    bad.write_text('error Api_errors.nowhere [] ()')
    assert regenerate.main(argv) == 2
    assert "does not define" in capsys.readouterr().err
    assert sorted(os.listdir(str(out))) == ["datamodel.json"]
    assert (out / "datamodel.json").read_text() == "kept"


def test_xenapi_json_needs_the_commit_it_was_built_from(sources, capsys):
    argv, _ = sources
    with pytest.raises(SystemExit) as exit_:
        regenerate.main(argv[:2])
    assert exit_.value.code == 2
    assert "--xen-api-commit and --latest-release" in capsys.readouterr().err


def test_the_shipped_codes_are_those_xapi_sends(model):
    # api_errors.ml builds this one as pool_auth_enable_failed ^
    # auth_suffix_no_support_encrypt_type; its identifier says NO_SUPP.
    assert model.errors["POOL_AUTH_ENABLE_FAILED_NO_SUPPORT_ENCRYPT_TYPE"] == ["host", "message"]
    assert "POOL_AUTH_ENABLE_FAILED_NO_SUPP_ENCRYPT_TYPE" not in model.errors
