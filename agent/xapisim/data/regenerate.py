"""Rebuild datamodel.json, errors.json and relations.json from the xapi project's public
sources.

- ``datamodel.json`` from the datamodel the xapi project publishes for its documentation
  site (``_data/xenapi.json`` of xapi-project/xapi-project.github.io, a list of classes),
  trimmed to the facts the simulator follows (see ``trim_datamodel``).
- ``errors.json`` from xen-api's ``ocaml/idl/datamodel_errors.ml`` (every ``error
  Api_errors.x ["param"; ...] ...`` declaration, in order) and
  ``ocaml/xapi-consts/api_errors.ml`` (``let x = add_error "CODE"``: the wire names).
- ``relations.json`` from xen-api's ``ocaml/idl/datamodel.ml`` (``all_relations``: the
  pairs of fields xapi keeps in step) and ``ocaml/idl/datamodel_common.ml`` (``let _vm =
  "VM"``: the class names).

Usage (README.md beside this file gives the exact commands and the commits verified)::

    python -m agent.xapisim.data.regenerate \\
        --xenapi-json SITE/_data/xenapi.json --xen-api-commit e2ee48d --latest-release 26.17.0 \\
        --xen-api XEN_API_CHECKOUT [--out DIR] [--check]

Standard library only (and the simulator's DATA_DIR), Python 3.6+. Importing this
module does nothing.
"""
import argparse
import json
import os
import re
import sys

from agent.xapisim.datamodel import DATA_DIR

DATAMODEL_SOURCE = (
    "XenAPI datamodel as published by the xapi project (xapi-project.github.io "
    "_data/xenapi.json, built from xen-api {commit}, releases up to xapi {release}); "
    "trimmed to facts: names, types, qualifiers, defaults, parameters, error names, "
    "lifecycle state")
ERRORS_SOURCE = (
    "XenAPI error codes and their parameter names, from xen-api "
    "ocaml/idl/datamodel_errors.ml and ocaml/xapi-consts/api_errors.ml")
RELATIONS_SOURCE = (
    "xen-api ocaml/idl/datamodel.ml all_relations (class names from "
    "ocaml/idl/datamodel_common.ml); each entry pairs a field with the field on the other "
    "class that xapi keeps in step with it")
DATAMODEL_ERRORS_ML = os.path.join("ocaml", "idl", "datamodel_errors.ml")
DATAMODEL_ML = os.path.join("ocaml", "idl", "datamodel.ml")
DATAMODEL_COMMON_ML = os.path.join("ocaml", "idl", "datamodel_common.ml")
API_ERRORS_ML = os.path.join("ocaml", "xapi-consts", "api_errors.ml")

# Fields a constructor record may set: xapi's implicit `create` takes every field that is
# not RO/runtime; those without a default are the ones a caller must give.
CONSTRUCTOR_QUALIFIERS = ("RW", "RO/constructor")


class SourceError(Exception):
    """The input is not shaped as this script expects: nothing is written."""


# --------------------------------------------------------------------------- datamodel
def lifecycle_state(item, where):
    """``{"lifecycle": {"state": "Published_s"}}`` -> ``"published"``."""
    try:
        state = item["lifecycle"]["state"]
    except (KeyError, TypeError):
        raise SourceError("%s has no lifecycle state" % where)
    if not state.endswith("_s"):
        raise SourceError("%s: unknown lifecycle state %r" % (where, state))
    return state[:-2].lower()


def trim_field(field, where):
    out = {
        "name": field["name"],
        "type": field["type"],
        "qualifier": field["qualifier"],
        "state": lifecycle_state(field, where),
    }
    if "default" in field:
        out["default"] = field["default"]
    return out


def trim_message(message, fields, where):
    out = {
        "name": message["name"],
        "params": [{"name": p["name"], "type": p["type"], "required": p["required"]}
                   for p in message["params"]],
        "result": message["result"][0],  # [type] or [type, description]
        "errors": [e["name"] for e in message["errors"]],
        "implicit": message["implicit"],
        "state": lifecycle_state(message, where),
    }
    if message["name"] == "create" and message["implicit"]:
        args = [f for f in fields if f["qualifier"] in CONSTRUCTOR_QUALIFIERS]
        out["constructor_args"] = [f["name"] for f in args]
        out["constructor_required"] = [f["name"] for f in args if "default" not in f]
    return out


def trim_datamodel(classes, commit, release):
    """The published list of classes -> the ``datamodel.json`` document.

    Per class its lifecycle state, its fields (name, type, qualifier, state, default when
    the datamodel has one) and its messages (parameters with name, type and required;
    result type; error names; implicit; state), in the published order. An implicit
    ``create`` also lists its ``constructor_args`` and ``constructor_required``."""
    if not isinstance(classes, list):
        raise SourceError("xenapi.json: expected a list of classes, got %s"
                          % type(classes).__name__)
    out = {}
    for cls in classes:
        where = "a class"
        try:
            name = cls["name"]
            where = "class %s" % name
            fields = [trim_field(f, "%s field %s" % (where, f["name"])) for f in cls["fields"]]
            messages = [trim_message(m, cls["fields"], "%s message %s" % (where, m["name"]))
                        for m in cls["messages"]]
        except (KeyError, TypeError, IndexError) as exc:
            raise SourceError("xenapi.json: %s has no %s" % (where, exc))
        if name in out:
            raise SourceError("xenapi.json: class %s appears twice" % name)
        out[name] = {"fields": fields, "messages": messages,
                     "state": lifecycle_state(cls, where)}
    return {"source": DATAMODEL_SOURCE.format(commit=commit, release=release),
            "classes": out}


def dump_datamodel(document):
    return json.dumps(document, indent=0, sort_keys=True)


# --------------------------------------------------------------------------- OCaml
_TOKEN = re.compile(r"""
    (?P<space>\s+)
  | (?P<comment>\(\*)
  | (?P<string>"(?:[^"\\]|\\.)*")
  | (?P<char>'(?:[^'\\]|\\.[^']*)')
  | (?P<ident>[A-Za-z_][A-Za-z0-9_']*(?:\.[A-Za-z_][A-Za-z0-9_']*)*)
  | (?P<other>.)
""", re.X | re.S)


_COMMENT_PART = re.compile(r'\(\*|\*\)|"(?:[^"\\]|\\.)*"', re.S)


def _skip_comment(text, pos, where):
    """``pos`` is just after an opening ``(*``: the position after its closing ``*)``.
    OCaml comments nest, and a string inside one may hold ``*)``."""
    depth = 1
    while depth:
        match = _COMMENT_PART.search(text, pos)
        if match is None:
            raise SourceError("%s: unterminated comment" % where)
        pos = match.end()
        if match.group() == "(*":
            depth += 1
        elif match.group() == "*)":
            depth -= 1
    return pos


def ocaml_tokens(text, where="OCaml source"):
    """(kind, value) for the identifiers, string literals and symbols of ``text``, without
    comments; a string's value is its contents (escapes left as written)."""
    pos = 0
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        kind = match.lastgroup
        pos = match.end()
        if kind == "comment":
            pos = _skip_comment(text, pos, where)
        elif kind == "string":
            yield "string", match.group()[1:-1]
        elif kind in ("ident", "other", "char"):
            yield kind, match.group()
    yield "eof", ""


def _string_expression(tokens, i, strings):
    """Evaluate ``atom (^ atom)*`` from tokens[i], an atom being a string literal or a name
    bound to a string earlier: (value, index after it), or (None, i) if it is not one."""
    parts = []
    while True:
        kind, value = tokens[i]
        if kind == "string":
            parts.append(value)
        elif kind == "ident" and value in strings:
            parts.append(strings[value])
        else:
            return None, i
        i += 1
        if tokens[i] != ("other", "^"):
            return "".join(parts), i
        i += 1


def api_error_names(text):
    """The top-level ``let name = add_error "CODE"`` bindings of api_errors.ml ->
    {name: CODE}. A code may also be built from string constants bound before it:
    ``let x = add_error $ auth_enable_failed ^ auth_suffix_wrong_credentials``."""
    strings = {}  # every top-level binding whose value is a string (an error code is one)
    names = {}
    tokens = list(ocaml_tokens(text, API_ERRORS_ML))
    for i, (kind, value) in enumerate(tokens):
        if (kind, value) != ("ident", "let") or tokens[i + 1][0] != "ident" \
                or tokens[i + 2] != ("other", "="):
            continue
        name = tokens[i + 1][1]
        j = i + 3
        is_error = tokens[j] == ("ident", "add_error")
        if is_error:
            j += 1
            if tokens[j] == ("other", "$"):
                j += 1
        code, j = _string_expression(tokens, j, strings)
        if code is None or tokens[j] not in (("ident", "let"), ("eof", "")):
            continue  # a function or anything else that is not a plain string binding
        strings[name] = code
        if is_error:
            names[name] = code
    return names


def declared_errors(text):
    """``error Api_errors.x ["p1"; "p2"] ...`` in datamodel_errors.ml -> [(x, [p1, p2])],
    in the order of the file."""
    tokens = list(ocaml_tokens(text, DATAMODEL_ERRORS_ML))
    out = []
    for i, (kind, value) in enumerate(tokens):
        if (kind, value) != ("ident", "error"):
            continue
        kind, target = tokens[i + 1]
        if kind != "ident" or not target.startswith("Api_errors."):
            continue  # the definition of `error` itself, or another use of the word
        where = "%s: error %s" % (DATAMODEL_ERRORS_ML, target)
        if tokens[i + 2] != ("other", "["):
            raise SourceError("%s: no parameter list follows" % where)
        params = []
        j = i + 3
        while tokens[j] != ("other", "]"):
            kind, param = tokens[j]
            if kind != "string":
                raise SourceError("%s: parameter %r is not a string literal" % (where, param))
            params.append(param)
            j += 1
            if tokens[j] == ("other", ";"):
                j += 1
            elif tokens[j] != ("other", "]"):
                raise SourceError("%s: unexpected %r in the parameter list"
                                  % (where, tokens[j][1]))
        out.append((target[len("Api_errors."):], params))
    return out


def build_errors(datamodel_errors_ml, api_errors_ml):
    """The two OCaml files' texts -> the ``errors.json`` document."""
    names = api_error_names(api_errors_ml)
    errors = []
    for ident, params in declared_errors(datamodel_errors_ml):
        if ident not in names:
            raise SourceError("%s declares Api_errors.%s, which %s does not define"
                              % (DATAMODEL_ERRORS_ML, ident, API_ERRORS_ML))
        errors.append({"name": names[ident], "params": params})
    if not errors:
        raise SourceError("%s declares no errors" % DATAMODEL_ERRORS_ML)
    return {"source": ERRORS_SOURCE, "errors": errors}


def dump_errors(document):
    return json.dumps(document, indent=0)


# --------------------------------------------------------------------------- relations
# ((_vm, "resident_on"), (_host, "resident_VMs")) as tokens
_PAIR = ["(", "(", None, ",", None, ")", ",", "(", None, ",", None, ")", ")"]


def class_names(text):
    """datamodel_common.ml's ``let _name = "Class"`` bindings -> {_name: Class}."""
    tokens = list(ocaml_tokens(text, DATAMODEL_COMMON_ML))
    return {tokens[i + 1][1]: tokens[i + 3][1] for i in range(len(tokens) - 4)
            if tokens[i] == ("ident", "let") and tokens[i + 1][0] == "ident"
            and tokens[i + 2] == ("other", "=") and tokens[i + 3][0] == "string"
            and tokens[i + 4] != ("other", "^")}


def build_relations(datamodel_ml, datamodel_common_ml):
    """The two OCaml files' texts -> the ``relations.json`` document: the pairs of
    ``let all_relations = [...]`` in order, commented-out ones left out."""
    names = class_names(datamodel_common_ml)
    tokens = list(ocaml_tokens(datamodel_ml, DATAMODEL_ML))
    try:
        start = next(i for i in range(len(tokens) - 3)
                     if tokens[i:i + 3] == [("ident", "let"), ("ident", "all_relations"),
                                            ("other", "=")])
    except StopIteration:
        raise SourceError("%s has no all_relations" % DATAMODEL_ML)
    relations, i = [], start + 4
    while tokens[i] != ("other", "]"):
        if tokens[i][0] == "eof":
            raise SourceError("%s: all_relations does not end" % DATAMODEL_ML)
        window = tokens[i:i + len(_PAIR)]
        shaped = len(window) == len(_PAIR) and all(
            want is None or token == ("other", want) for want, token in zip(_PAIR, window))
        if not shaped or window[4][0] != "string" or window[10][0] != "string":
            i += 1
            continue
        pair = []
        for cls, field in ((window[2][1], window[4][1]), (window[8][1], window[10][1])):
            if cls not in names:
                raise SourceError("%s names %s, which %s does not bind"
                                  % (DATAMODEL_ML, cls, DATAMODEL_COMMON_ML))
            pair.append([names[cls], field])
        relations.append(pair)
        i += len(_PAIR)
    if not relations:
        raise SourceError("%s: all_relations is empty" % DATAMODEL_ML)
    return {"source": RELATIONS_SOURCE, "relations": relations}


def dump_relations(document):
    return json.dumps(document, indent=0)


# --------------------------------------------------------------------------- command
def _read(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except (IOError, OSError) as exc:
        raise SourceError("cannot read %s: %s" % (path, exc.strerror or exc))


def outputs(args):
    """{file name: new text} for the sources given on the command line."""
    out = {}
    if args.xenapi_json:
        try:
            classes = json.loads(_read(args.xenapi_json))
        except ValueError as exc:
            raise SourceError("%s is not JSON: %s" % (args.xenapi_json, exc))
        out["datamodel.json"] = dump_datamodel(
            trim_datamodel(classes, args.xen_api_commit, args.latest_release))
    if args.xen_api:
        out["errors.json"] = dump_errors(build_errors(
            _read(os.path.join(args.xen_api, DATAMODEL_ERRORS_ML)),
            _read(os.path.join(args.xen_api, API_ERRORS_ML))))
        out["relations.json"] = dump_relations(build_relations(
            _read(os.path.join(args.xen_api, DATAMODEL_ML)),
            _read(os.path.join(args.xen_api, DATAMODEL_COMMON_ML))))
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m agent.xapisim.data.regenerate",
        description="Rebuild datamodel.json, errors.json and relations.json from the xapi "
                    "project's "
                    "public sources (agent/xapisim/data/README.md says which).")
    parser.add_argument("--xenapi-json", metavar="PATH",
                        help="_data/xenapi.json of xapi-project/xapi-project.github.io: "
                             "rebuilds datamodel.json")
    parser.add_argument("--xen-api-commit", metavar="COMMIT",
                        help="the xen-api commit that xenapi.json was built from (the "
                             "site's deploy commit names it); goes into the source key")
    parser.add_argument("--latest-release", metavar="VERSION",
                        help="the newest release in the site's _data/releases.yml; goes "
                             "into the source key")
    parser.add_argument("--xen-api", metavar="DIR",
                        help="a checkout of xapi-project/xen-api: rebuilds errors.json and "
                             "relations.json")
    parser.add_argument("--out", metavar="DIR", default=DATA_DIR,
                        help="where the files go (default: %(default)s)")
    parser.add_argument("--check", action="store_true",
                        help="write nothing; exit 1 if a file in --out differs from what "
                             "the sources give")
    args = parser.parse_args(argv)
    if not (args.xenapi_json or args.xen_api):
        parser.error("give --xenapi-json, --xen-api or both")
    if args.xenapi_json and not (args.xen_api_commit and args.latest_release):
        parser.error("--xenapi-json needs --xen-api-commit and --latest-release")
    try:
        new = outputs(args)
    except SourceError as exc:
        print("regenerate: %s" % exc, file=sys.stderr)
        return 2
    differ = []
    for name, text in sorted(new.items()):
        path = os.path.join(args.out, name)
        try:
            with open(path, encoding="utf-8") as f:
                same = f.read() == text
        except (IOError, OSError):
            same = False
        if args.check:
            print("%s: %s" % (path, "identical" if same else "DIFFERS"))
            if not same:
                differ.append(name)
            continue
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        print("%s: %s" % (path, "unchanged" if same else "written"))
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
