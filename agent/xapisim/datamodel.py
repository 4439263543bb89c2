"""The XenAPI datamodel as data: classes, fields, messages and errors.

Loaded from the xapi project's published datamodel (``datamodel.json``, ``errors.json``,
package data in ``agent/xapisim/data``: see its README.md for their provenance). Nothing here is written per class: the simulator's
implicit messages (getters, setters, constructors...) are all derived from this data.
"""
import datetime
import json
import os
from collections import namedtuple

Field = namedtuple("Field", "name type qualifier default")
# A field whose value xapi keeps in step with another class's field: ``many`` is the
# "A ref set" on ``target`` that lists the objects whose ``field`` points at it
# (one-to-many), or, when ``field`` is itself a set, its mirror (many-to-many).
Relation = namedtuple("Relation", "cls field target many one_to_many")
Param = namedtuple("Param", "name type required")
Message = namedtuple("Message", "name params result implicit errors constructor_args "
                                "constructor_required")

EPOCH = datetime.datetime(1970, 1, 1)
NULL_REF = "OpaqueRef:NULL"
DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")


class XapiClass(object):
    def __init__(self, name, fields, messages):
        self.name = name
        self.fields = fields        # name -> Field
        self.messages = messages    # name -> Message


class Datamodel(object):
    def __init__(self, classes, errors, relations=()):
        self.classes = classes      # name -> XapiClass
        self.errors = errors        # code -> [parameter names]
        self._by_lower = {name.lower(): name for name in classes}
        self.relations = self._relations(relations)

    def _relations(self, pairs):
        """The pairs of xen-api's relations list that the published classes carry, as
        Relations; a pair whose field types do not make a relation between published
        fields (xapi-internal fields, role.subroles paired with itself) is left out."""
        out = []
        for (cls, field), (target, many) in pairs:
            one = self.classes.get(cls) and self.classes[cls].fields.get(field)
            other = self.classes.get(target) and self.classes[target].fields.get(many)
            if not one or not other or (cls, field) == (target, many):
                continue
            if one.type == "%s ref" % target and other.type == "%s ref set" % cls:
                out.append(Relation(cls, field, target, many, True))
            elif one.type == "%s ref set" % target and other.type == "%s ref set" % cls:
                out.append(Relation(cls, field, target, many, False))
                out.append(Relation(target, many, cls, field, False))
        return out

    @classmethod
    def load(cls, directory=None):
        directory = directory or default_directory()
        with open(os.path.join(directory, "datamodel.json")) as f:
            data = json.load(f)
        with open(os.path.join(directory, "errors.json")) as f:
            errors = json.load(f)["errors"]
        relations = os.path.join(directory, "relations.json")
        if not os.path.exists(relations):  # a datamodel copy of its own may lack it
            relations = os.path.join(DATA_DIR, "relations.json")
        with open(relations) as f:
            relations = json.load(f)["relations"]
        classes = {}
        for name, raw in data["classes"].items():
            fields = {f["name"]: Field(f["name"], f["type"], f["qualifier"],
                                       parse_default(f["type"], f.get("default")))
                      for f in raw["fields"]}
            messages = {}
            for m in raw["messages"]:
                messages[m["name"]] = Message(
                    name=m["name"], result=m.get("result"),
                    params=[Param(p["name"], p["type"], p.get("required", True))
                            for p in m["params"]],
                    implicit=bool(m.get("implicit")), errors=m.get("errors", []),
                    constructor_args=m.get("constructor_args"),
                    constructor_required=m.get("constructor_required"))
            classes[name] = XapiClass(name, fields, messages)
        return cls(classes, {e["name"]: e["params"] for e in errors}, relations)

    def class_named(self, name):
        """The class for a method-name prefix (xapi matches class names case-insensitively:
        ``vm.get_all`` and ``VM.get_all`` both work)."""
        real = self._by_lower.get(name.lower())
        return self.classes.get(real) if real else None


def default_directory():
    """Where the datamodel files are: $XGW_XAPI_DATAMODEL, else the copy shipped in this
    package (``agent/xapisim/data``)."""
    return os.environ.get("XGW_XAPI_DATAMODEL") or DATA_DIR


def ref_class(type_name):
    """'VM ref' -> 'VM'; anything else -> None."""
    return type_name[:-4] if type_name.endswith(" ref") else None


def zero(type_name):
    """The value of a field of ``type_name`` that nobody set."""
    if type_name.endswith(" ref"):
        return NULL_REF
    if type_name.endswith(" set"):
        return []
    if type_name.endswith(" map") or type_name == "map":
        return {}
    return {"string": "", "bool": False, "int": 0, "float": 0.0, "datetime": EPOCH}.get(
        type_name, "")


def parse_default(type_name, text):
    """The datamodel writes defaults as OCaml-ish text ('""', '{}', 'true', '0.', 'Null')."""
    if text is None:
        return zero(type_name)
    if type_name.endswith(" ref"):
        return NULL_REF
    if type_name.endswith(" set") or type_name.endswith(" map") or type_name == "map":
        return [] if type_name.endswith(" set") else {}
    if type_name == "string":
        return text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    if type_name == "bool":
        return text == "true"
    if type_name == "int":
        return int(text)
    if type_name == "float":
        return float(text)
    if type_name == "datetime":
        return EPOCH
    return text  # enums: the value's name
