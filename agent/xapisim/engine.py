"""The simulator's engine: objects, sessions and every implicit message, from the datamodel.

``Engine.call(method, params)`` returns the reply struct xapi sends, ``{"Status":
"Success", "Value": ...}`` or ``{"Status": "Failure", "ErrorDescription": [CODE, ...]}``,
for any transport to encode. Explicit (non-implicit) messages are served by handlers
registered per "class.message"; a message with neither answers MESSAGE_METHOD_UNKNOWN
(honest: it is not simulated) rather than pretending.
"""
import datetime
import logging
import threading
import time
import uuid as uuidlib
import xml.sax.saxutils
import xmlrpc.client
from collections import deque

from agent.xapisim import datamodel as dm

LOGIN_METHODS = ("login_with_password", "slave_local_login_with_password")
ASYNC = "Async."

log = logging.getLogger(__name__)

EVENT_LOG = 10000  # events kept for event.from; an older token gets EVENTS_LOST

class XapiFailure(Exception):
    """A XenAPI error: a code from errors.json and its parameters (as strings)."""

    def __init__(self, code, *params):
        super(XapiFailure, self).__init__(code)
        self.code = code
        self.params = [str(p) for p in params]

    def description(self):
        return [self.code] + self.params


def new_ref():
    return "OpaqueRef:%s" % uuidlib.uuid4()


class Engine(object):
    def __init__(self, model, check_password=None):
        self.model = model
        self.lock = threading.RLock()
        self.objects = {name: {} for name in model.classes}  # class -> {ref: record}
        self.handlers = {}        # "class.message" -> callable(engine, session, *params)
        # messages xapi answers but the datamodel hides: "class.message" -> parameter
        # count without the session (e.g. network.attach(network, host))
        self.hidden = {}
        # tests: "class.message" -> [XapiFailure or None]; each such call takes the first
        # entry and raises it (None lets that call through): rollback tests inject a
        # failure at each step of an operation
        self.fail_next = {}
        # None accepts any credentials (xapi on its Unix socket, as root)
        self.check_password = check_password
        self.handlers["session.logout"] = _logout
        self.handlers["session.local_logout"] = _logout
        self.handlers["event.from"] = _event_from
        self.changed = threading.Condition(self.lock)
        self.events = deque(maxlen=EVENT_LOG)  # (id, class, operation, ref)
        self.event_id = 0
        # class -> the relations in which one of its fields takes part (datamodel data)
        self.relations = {}
        for relation in model.relations:
            self.relations.setdefault(relation.cls, []).append(relation)
        # class -> callable(engine, ref, record) -> that object's allowed_operations,
        # recomputed whenever the object changes (agent/xapisim/lifecycle.py)
        self.allowed = {}
        # class -> [callable(engine, ref, record)]: runs when an object of that class
        # changes, to refresh what depends on it (a VM's power state -> its VIFs' ops)
        self.dependents = {}
        self.handlers["task.create"] = _task_create
        self.handlers["task.cancel"] = _task_cancel
        self.handlers["task.destroy"] = lambda engine, session, task: engine.destroy(
            "task", task) or ""

    # ---- objects -----------------------------------------------------------------------
    def create(self, class_name, **values):
        """A new object of ``class_name``: defaults from the datamodel, then ``values``."""
        cls = self.model.classes[class_name]
        record = {name: _copy(f.default) for name, f in cls.fields.items()}
        if "uuid" in cls.fields:
            record["uuid"] = str(uuidlib.uuid4())
        record.update(values)
        ref = new_ref()
        self.objects[class_name][ref] = record
        self._relate(class_name, ref, record, add=True)
        self.touched(class_name, ref, "add")
        return ref

    def record(self, class_name, ref):
        record = self.objects[class_name].get(ref)
        if record is None:
            raise XapiFailure("HANDLE_INVALID", class_name, ref)
        return record

    def destroy(self, class_name, ref):
        record = self.record(class_name, ref)
        self._relate(class_name, ref, record, add=False)
        del self.objects[class_name][ref]
        self.touched(class_name, ref, "del")

    def set_field(self, class_name, ref, field, value):
        """Set a field, keeping the relations it takes part in consistent."""
        record = self.record(class_name, ref)
        self._relate(class_name, ref, record, add=False, only=field)
        record[field] = value
        self._relate(class_name, ref, record, add=True, only=field)
        self.touched(class_name, ref, "mod")

    def touched(self, class_name, ref, operation):
        """Record an event (what event.from reports) and wake its waiters."""
        if class_name in ("session", "event"):
            return
        record = self.objects[class_name].get(ref)
        if operation != "del" and record is not None:
            rule = self.allowed.get(class_name)
            if rule is not None:
                record["allowed_operations"] = rule(self, ref, record)
            for refresh in self.dependents.get(class_name, ()):
                refresh(self, ref, record)
        with self.lock:
            self.event_id += 1
            self.events.append((self.event_id, class_name, operation, ref))
            self.changed.notify_all()

    def _relate(self, class_name, ref, record, add, only=None):
        """Keep the other side of each relation of ``class_name`` in step with
        ``record`` (xapi's relations, from the datamodel data): a VM's resident_on is
        listed in that host's resident_VMs, a VM_group in VM.groups lists the VM in
        its VMs."""
        for relation in self.relations.get(class_name, ()):
            if only is not None and relation.field != only:
                continue
            value = record.get(relation.field)
            for other_ref in ([value] if relation.one_to_many else list(value or ())):
                other = self.objects[relation.target].get(other_ref)
                if other is None:
                    continue
                many = other[relation.many]
                if add and ref not in many:
                    many.append(ref)
                elif not add and ref in many:
                    many.remove(ref)
                else:
                    continue
                self.touched(relation.target, other_ref, "mod")

    # ---- calls -------------------------------------------------------------------------
    def call(self, method, params, protocol="xmlrpc"):
        """xapi's reply struct for ``method(*params)``, its values encoded for
        ``protocol``: "xmlrpc" (int64 as decimal strings, datetimes as DateTime) or
        "json" (as rpclib writes them: JSON integers, datetimes as strings)."""
        with self.lock:
            try:
                if method.startswith(ASYNC):
                    value = self._call_async(method[len(ASYNC):], list(params))
                else:
                    value = self._call(method, list(params))
                return {"Status": "Success", "Value": encode(value, protocol)}
            except XapiFailure as failure:
                return {"Status": "Failure", "ErrorDescription": failure.description()}
            except Exception as exc:  # noqa: B902 - as xapi: an unexpected error is an answer
                log.exception("%s failed", method)
                return {"Status": "Failure",
                        "ErrorDescription": ["INTERNAL_ERROR", "%s: %s" % (
                            type(exc).__name__, exc)]}

    def _call_async(self, method, params):
        """Async.class.message: checks the call as the synchronous one would, then
        returns a pending task at once and runs the call in the background; the task
        ends with status success (result: the value as XML-RPC writes it) or failure
        (error_info: the error), as xapi's are."""
        found = self._message(method)
        cls, message = found or (None, None)
        # xapi has no Async form of the getters and field setters
        if message is None or not message.params or message.name.startswith("get_") or \
                _accessor(cls, message.name):
            raise XapiFailure("MESSAGE_METHOD_UNKNOWN", ASYNC + method)
        if not params or params[0] not in self.objects["session"]:
            raise XapiFailure("SESSION_INVALID", params[0] if params else "")
        key = "%s.%s" % (cls.name, message.name)
        self._check_arity(key, message, params, with_session=True)
        task = self.new_task(ASYNC + key)

        def run():
            with self.lock:
                try:
                    value = self._call(method, params)
                except XapiFailure as failure:
                    self.finish_task(task, "failure", error=failure.description())
                except Exception as exc:  # a simulator bug: the task says so, not hangs
                    self.finish_task(task, "failure", error=["INTERNAL_ERROR", repr(exc)])
                    raise
                else:
                    self.finish_task(task, "success", result=value)
        thread = threading.Thread(target=run, name="xapisim-task")
        thread.daemon = True
        thread.start()
        return task

    def new_task(self, label, description=""):
        host = next(iter(self.objects["host"]), dm.NULL_REF)
        return self.create("task", name_label=label, name_description=description,
                           status="pending", progress=0.0, created=_now(),
                           resident_on=host, other_config={},
                           allowed_operations=["cancel"])

    def finish_task(self, task, status, result=None, error=()):
        """End a pending task: ``status`` success (``result``, any value), failure
        (``error``, an ErrorDescription) or cancelled."""
        record = self.objects["task"].get(task)
        if record is None or record["status"] != "pending":
            return
        if result is not None and result != "":
            # the value's XML-RPC <value> element, as xapi records it (a string, such
            # as a ref, without a <string> tag)
            value = encode(result, "xmlrpc")
            if isinstance(value, str):
                text = "<value>%s</value>" % xml.sax.saxutils.escape(value)
            else:
                text = xmlrpc.client.dumps((value,))
                text = text[text.index("<value>"):text.rindex("</param>")].strip()
            record["result"] = text
        record.update(status=status, error_info=list(error), progress=1.0,
                      finished=_now(), allowed_operations=[])
        self.touched("task", task, "mod")

    def _message(self, method):
        """(class, message) for a method name (class.message or class_message)."""
        cls, _name, message = self._parse(method)
        return (cls, message) if message is not None else None

    def _parse(self, method):
        """(class or None, message name, message or None) of a method name."""
        class_name, _, message_name = method.partition(".")
        if not message_name:  # xapi also accepts class_message
            class_name, _, message_name = method.partition("_")
        cls = self.model.class_named(class_name)
        return cls, message_name, cls.messages.get(message_name) if cls else None

    def _call(self, method, params):
        cls, message_name, message = self._parse(method)
        if message is None and cls is not None and "%s.%s" % (cls.name, message_name) in \
                self.hidden:
            return self._call_hidden("%s.%s" % (cls.name, message_name), params)
        if message is None:
            raise XapiFailure("MESSAGE_METHOD_UNKNOWN", method)
        key = "%s.%s" % (cls.name, message.name)
        if cls.name == "session" and message.name in LOGIN_METHODS:
            self._check_arity(key, message, params, with_session=False)
            return self._login(*params)
        if not params:
            raise XapiFailure("MESSAGE_PARAMETER_COUNT_MISMATCH", key,
                              len(message.params) - 1, 0)
        session = params[0]
        if session not in self.objects["session"]:
            raise XapiFailure("SESSION_INVALID", session)
        args = params[1:]
        self._check_arity(key, message, params, with_session=True)
        for param, value in zip(message.params[1:], args):
            target = dm.ref_class(param.type)
            if target is not None and target in self.objects and value != dm.NULL_REF:
                if value not in self.objects[target]:
                    raise XapiFailure("HANDLE_INVALID", target, value)
        injected = self.fail_next.get(key)
        if injected:
            failure = injected.pop(0)
            if failure is not None:
                raise failure
        handler = self.handlers.get(key)
        if handler is not None:
            return handler(self, session, *args)
        if message.implicit or _accessor(cls, message.name):
            # xapi hand-writes a few accessors (VM.add_to_other_config checks its keys):
            # served generically, they do what the generated ones do
            return self._implicit(cls, message, args)
        raise XapiFailure("MESSAGE_METHOD_UNKNOWN", method)

    def _call_hidden(self, key, params):
        if not params or params[0] not in self.objects["session"]:
            raise XapiFailure("SESSION_INVALID", params[0] if params else "")
        expected = self.hidden[key]
        if len(params) - 1 != expected:
            raise XapiFailure("MESSAGE_PARAMETER_COUNT_MISMATCH", key, expected,
                              len(params) - 1)
        return self.handlers[key](self, params[0], *params[1:])

    def _check_arity(self, key, message, params, with_session):
        declared = message.params[1:] if with_session else message.params
        given = len(params) - (1 if with_session else 0)
        required = sum(1 for p in declared if p.required)
        if given == len(declared) or (required != len(declared) and required <= given
                                      <= len(declared)):
            return
        expected = len(declared) if required == len(declared) else required
        raise XapiFailure("MESSAGE_PARAMETER_COUNT_MISMATCH", key, expected, given)

    def _login(self, uname, pwd, version="1.1", originator=""):
        if self.check_password is not None and not self.check_password(uname, pwd):
            raise XapiFailure("SESSION_AUTHENTICATION_FAILED", uname,
                              "Authentication failure")
        pool = next(iter(self.objects["pool"]), dm.NULL_REF)
        host = next(iter(self.objects["host"]), dm.NULL_REF)
        return self.create("session", auth_user_name=uname, originator=originator,
                           this_host=host, pool=pool != dm.NULL_REF, is_local_superuser=True)

    # ---- the implicit messages ---------------------------------------------------------
    def _implicit(self, cls, message, args):
        name, store = message.name, self.objects[cls.name]
        if name == "get_all":
            return list(store)
        if name == "get_all_records":
            return {ref: self.wire_record(cls, rec) for ref, rec in store.items()}
        if name == "get_record":
            return self.wire_record(cls, self.record(cls.name, args[0]))
        if name == "get_by_uuid":
            for ref, rec in store.items():
                if rec.get("uuid") == args[0]:
                    return ref
            raise XapiFailure("UUID_INVALID", cls.name, args[0])
        if name == "get_by_name_label":
            return [ref for ref, rec in store.items() if rec.get("name_label") == args[0]]
        if name == "create":
            return self._construct(cls, message, args[0])
        if name == "destroy":
            self.destroy(cls.name, args[0])
            return ""
        for prefix, action in (("get_", self._get), ("set_", self._set),
                               ("add_to_", self._add_to), ("remove_from_", self._remove_from),
                               ("add_", self._add), ("remove_", self._remove)):
            field = cls.fields.get(name[len(prefix):]) if name.startswith(prefix) else None
            if field is not None:
                self.record(cls.name, args[0])
                result = action(cls, field, args[0], *args[1:])
                if prefix not in ("get_", "set_"):  # set_ goes through set_field
                    self.touched(cls.name, args[0], "mod")
                return result
        raise XapiFailure("MESSAGE_METHOD_UNKNOWN", "%s.%s" % (cls.name, name))

    def _get(self, cls, field, ref):
        return _copy(self.objects[cls.name][ref][field.name])

    def _set(self, cls, field, ref, value):
        self.set_field(cls.name, ref, field.name, _from_wire(field.type, value))
        return ""

    def _add_to(self, cls, field, ref, key, value):
        record = self.objects[cls.name][ref]
        if key in record[field.name]:
            raise XapiFailure("MAP_DUPLICATE_KEY", cls.name, field.name, record.get("uuid", ""),
                              key)
        record[field.name][key] = value
        return ""

    def _remove_from(self, cls, field, ref, key):
        self.objects[cls.name][ref][field.name].pop(key, None)
        return ""

    def _add(self, cls, field, ref, value):
        values = self.objects[cls.name][ref][field.name]
        if value not in values:  # through set_field: the field may be in a relation
            self.set_field(cls.name, ref, field.name, values + [value])
        return ""

    def _remove(self, cls, field, ref, value):
        values = self.objects[cls.name][ref][field.name]
        if value in values:
            self.set_field(cls.name, ref, field.name, [v for v in values if v != value])
        return ""

    def check_constructor(self, message, args):
        """FIELD_TYPE_ERROR unless ``args`` is a struct with every required field."""
        if not isinstance(args, dict):
            raise XapiFailure("FIELD_TYPE_ERROR", "args")
        for name in message.constructor_required or ():
            if name not in args:
                raise XapiFailure("FIELD_TYPE_ERROR", name)

    def _construct(self, cls, message, args):
        self.check_constructor(message, args)
        values = {}
        for name in message.constructor_args or ():
            if name in args:
                values[name] = _from_wire(cls.fields[name].type, args[name])
        return self.create(cls.name, **values)

    def wire_record(self, cls, record):
        return {name: _copy(value) for name, value in record.items() if name in cls.fields}


def _accessor(cls, name):
    """Whether ``name`` reads or edits one of ``cls``'s fields (get_x, add_to_x, ...)."""
    for prefix in ("get_", "set_", "add_to_", "remove_from_", "add_", "remove_"):
        if name.startswith(prefix) and name[len(prefix):] in cls.fields:
            return True
    return False


def _event_from(engine, session, classes, token, timeout):
    """event.from: the changes to ``classes`` ("*", "network", "vm/<ref>") after
    ``token``; waits up to ``timeout`` seconds for one. Token "" means: everything now."""
    wanted = [c.lower() for c in classes]

    def matches(class_name, ref):
        name = class_name.lower()
        return "*" in wanted or name in wanted or ("%s/%s" % (name, ref)).lower() in wanted

    try:
        timeout = max(0.0, min(float(timeout), 60.0))
    except (TypeError, ValueError):
        raise XapiFailure("FIELD_TYPE_ERROR", "timeout")
    if token == "":
        events = [(engine.event_id, cls, "add", ref) for cls, objs in engine.objects.items()
                  for ref in objs if cls not in ("session", "event") and matches(cls, ref)]
        return _event_batch(engine, events, engine.event_id)
    try:
        since = int(token)
    except ValueError:
        raise XapiFailure("EVENT_FROM_TOKEN_PARSE_FAILURE", token)
    if engine.events and since < engine.events[0][0] - 1:
        raise XapiFailure("EVENTS_LOST")
    deadline = time.monotonic() + timeout
    while True:
        found = [e for e in engine.events if e[0] > since and matches(e[1], e[3])]
        remaining = deadline - time.monotonic()
        if found or remaining <= 0:
            return _event_batch(engine, found, engine.event_id)
        engine.changed.wait(remaining)  # releases the engine lock meanwhile


def _event_batch(engine, events, last_id):
    out = []
    for event_id, class_name, operation, ref in events:
        event = {"id": event_id, "timestamp": "%.6f" % time.time(),
                 "class": class_name.lower(), "operation": operation, "ref": ref}
        record = engine.objects[class_name].get(ref)
        if operation != "del" and record is not None:
            event["snapshot"] = engine.wire_record(engine.model.classes[class_name], record)
        out.append(event)
    counts = {}
    for event in out:
        counts[event["class"]] = len(engine.objects[_class_named(engine, event["class"])])
    return {"events": out, "valid_ref_counts": counts,
            "token": str(last_id)}


def _class_named(engine, lower):
    return engine.model.class_named(lower).name


def _logout(engine, session):
    engine.destroy("session", session)
    return ""


def encode(value, protocol):
    """A value as ``protocol`` carries it. XML-RPC: int64 as decimal strings (Python's
    xmlrpc cannot send ints above 2^31; xapi sends every int so), datetimes as
    dateTime.iso8601. JSON-RPC (rpclib): integers as JSON integers, datetimes as
    strings in xapi's form (19700101T00:00:00Z). Map keys are strings in both."""
    if isinstance(value, bool) or value is None or isinstance(value, (str, float)):
        return value
    if isinstance(value, int):
        return str(value) if protocol == "xmlrpc" else value
    if isinstance(value, datetime.datetime):
        text = value.strftime("%Y%m%dT%H:%M:%SZ")
        return xmlrpc.client.DateTime(text) if protocol == "xmlrpc" else text
    if isinstance(value, dict):
        return {str(k): encode(v, protocol) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [encode(v, protocol) for v in value]
    return value


def _now():
    return datetime.datetime.utcnow().replace(microsecond=0)


def _task_create(engine, session, label, description):
    return engine.new_task(label, description)


def _task_cancel(engine, session, task):
    record = engine.record("task", task)
    if record["status"] != "pending":
        raise XapiFailure("OPERATION_NOT_ALLOWED", "task %s is %s" % (task, record["status"]))
    engine.finish_task(task, "cancelled", error=["TASK_CANCELLED", task])
    return ""


def _from_wire(type_name, value):
    if type_name == "datetime":
        return _datetime(value)
    if type_name == "int":
        try:
            return int(value)
        except (TypeError, ValueError):
            raise XapiFailure("FIELD_TYPE_ERROR", type_name)
    if type_name == "bool" and not isinstance(value, bool):
        raise XapiFailure("FIELD_TYPE_ERROR", type_name)
    return _copy(value)


def _datetime(value):
    """A datetime from either wire: XML-RPC's DateTime or a string (both ISO 8601
    basic, with or without a Z)."""
    if isinstance(value, datetime.datetime):
        return value
    text = str(value.value if isinstance(value, xmlrpc.client.DateTime) else value)
    for form in ("%Y%m%dT%H:%M:%SZ", "%Y%m%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%SZ"):
        try:
            return datetime.datetime.strptime(text, form)
        except ValueError:
            pass
    raise XapiFailure("FIELD_TYPE_ERROR", "datetime")


def _copy(value):
    if isinstance(value, dict):
        return dict(value)
    if isinstance(value, list):
        return list(value)
    return value
