"""Unwrapping xapi's reply structs in tests."""


def ok(reply):
    assert reply["Status"] == "Success", reply
    return reply["Value"]


def error(reply):
    assert reply["Status"] == "Failure", reply
    return reply["ErrorDescription"]
