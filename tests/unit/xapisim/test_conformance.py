"""Walk the datamodel: every implicit message of a sample of classes accepts its declared
arity and rejects one argument more or fewer with xapi's exact error."""
import pytest

from agent.xapisim import datamodel as dm

SAMPLE = ("network", "VM", "VIF", "VBD", "VDI", "PIF", "SR", "host", "pool", "VLAN")
ARITY = "MESSAGE_PARAMETER_COUNT_MISMATCH"


def argument(engine, param):
    target = dm.ref_class(param.type)
    if target is not None:
        return engine.create(target) if target in engine.objects else dm.NULL_REF
    if param.type.endswith(" record"):
        return {}
    if param.type == "int":
        return "1"
    if param.type == "bool":
        return True
    return {"float": 1.0, "datetime": dm.EPOCH}.get(param.type, dm.zero(param.type) or "x")


def implicit_messages(model):
    for name in SAMPLE:
        cls = model.classes[name]
        for message in sorted(cls.messages.values(), key=lambda m: m.name):
            if message.implicit and message.params and message.params[0].name == "session_id":
                yield cls, message


def test_sample_is_large_enough(model):
    assert len(list(implicit_messages(model))) > 500


def test_every_implicit_message_checks_its_arity(model, engine):
    session = engine.call("session.login_with_password", ["root", ""])["Value"]
    checked = 0
    for cls, message in implicit_messages(model):
        method = "%s.%s" % (cls.name, message.name)
        args = [argument(engine, p) for p in message.params[1:]]
        if message.name == "create":
            args = [{f: dm.zero(cls.fields[f].type) for f in message.constructor_required}]
        reply = engine.call(method, [session] + args)
        description = reply.get("ErrorDescription", [])
        assert description[:1] not in ([ARITY], ["MESSAGE_METHOD_UNKNOWN"]), (method, reply)
        declared = len(message.params) - 1
        too_many = engine.call(method, [session] + args + ["extra"])
        assert too_many["ErrorDescription"] == [ARITY, method, str(declared),
                                                str(declared + 1)], method
        if args:
            too_few = engine.call(method, [session] + args[:-1])
            assert too_few["ErrorDescription"] == [ARITY, method, str(declared),
                                                   str(declared - 1)], method
        checked += 1
    assert checked > 500


@pytest.mark.parametrize("count,ok", [(1, False), (2, True), (3, True), (4, True), (5, False)])
def test_login_has_two_required_and_two_optional_parameters(engine, count, ok):
    reply = engine.call("session.login_with_password", ["root", "", "1.0", "t", "x"][:count])
    assert (reply["Status"] == "Success") == ok, reply
    if not ok:
        assert reply["ErrorDescription"][0] == ARITY


def test_class_message_spelling_and_unknown_class(engine):
    session = engine.call("session.login_with_password", ["root", ""])["Value"]
    spelled = engine.call("network_get_all", [session])
    assert spelled == engine.call("network.get_all", [session])
    assert spelled["Status"] == "Success" and len(spelled["Value"]) == 2  # eth0's, HIMN
    assert engine.call("nosuch.get_all", [session])["ErrorDescription"] == [
        "MESSAGE_METHOD_UNKNOWN", "nosuch.get_all"]
