"""The claim rules: who serves a wired network's gateway, and which write each host makes."""
import pytest

from agent.core import claims as C

ME, OTHER = "aaaa", "bbbb"


def fit(host):
    return ""


def dead(host):
    return "is unreachable (no heartbeat)"


@pytest.mark.parametrize("here,raw,unfit,action,write", [
    (True, ME + ":3", fit, C.SERVE, None),
    (True, "", fit, C.CLAIM_IT, ("", ME + ":1")),
    (True, "garbage", fit, C.CLAIM_IT, ("garbage", ME + ":1")),
    (True, OTHER + ":x", fit, C.CLAIM_IT, (OTHER + ":x", ME + ":1")),
    (True, OTHER + ":3", dead, C.TAKE, (OTHER + ":3", ME + ":4")),
    (True, OTHER + ":3", fit, C.WAIT, None),
    (True, ":4", fit, C.CLAIM_IT, (":4", ME + ":5")),          # released
    (False, ME + ":3", fit, C.RELEASE, (ME + ":3", ":4")),
    (False, ME + ":3", dead, C.RELEASE, (ME + ":3", ":4")),
    (False, ":4", fit, C.STANDBY, None),
    (False, OTHER + ":3", dead, C.STANDBY, None),   # only the placed host replaces
    (False, "", fit, C.STANDBY, None),
])
def test_verdicts(here, raw, unfit, action, write):
    v = C.verdict(here, raw, ME, unfit)
    assert (v.action, v.write) == (action, write)
    assert v.serves == (action == C.SERVE)


def test_a_host_serves_only_with_its_own_claim():
    for raw in ("", OTHER + ":1", "x", ":2"):
        for unfit in (fit, dead):
            assert not C.verdict(True, raw, ME, unfit).serves


def test_the_reason_names_the_holder_and_why():
    assert C.verdict(True, OTHER + ":3", ME, dead).reason == \
        "taking over from bbbb, which is unreachable (no heartbeat)"
    assert C.verdict(True, OTHER + ":3", ME, fit).reason == "waiting for bbbb to hand over"


def test_parse_and_text():
    assert C.parse("a-b-c:12") == C.Claim("a-b-c", 12)
    assert C.parse("a-b-c:12").text() == "a-b-c:12"
    assert C.parse(":3") == C.Claim("", 3)   # released
    for bad in ("", None, "nocolon", "a:", "a:-1"):
        assert C.parse(bad) is None
    assert C.of_network({"other_config": {C.CLAIM: "x:1"}}) == "x:1"
    assert C.of_network({}) == ""


def test_the_claim_key_makes_no_gateway():
    from agent.core import desired
    assert not C.CLAIM.startswith(desired.PREFIX)
    gateways, invalid = desired.gateways_from_networks(
        {"r": {"uuid": "u", "name_label": "n", "bridge": "xapi1",
               "other_config": {C.CLAIM: ME + ":1"}}})
    assert gateways == {} and invalid == {}


@pytest.mark.parametrize("known,seen,kept", [
    ("", "a:1", "a:1"),
    ("a:1", "b:2", "b:2"),
    ("a:1", "", "a:1"),          # the moment between a takeover's remove and add
    ("b:2", "a:1", "a:1"),       # written back through the API: everyone follows it
    ("a:1", ":2", ":2"),         # released
    ("a:1", "junk", "a:1"),
    ("junk", "a:1", "a:1"),
    ("", "", ""),
])
def test_a_missing_claim_does_not_replace_a_known_one(known, seen, kept):
    assert C.newer(known, seen) == kept
