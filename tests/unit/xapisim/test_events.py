"""event.from: what a watcher of networks sees, over the real SDK."""
import threading
import time

import XenAPI


def test_event_from_sees_other_config_changes_within_its_timeout(served):
    _engine, http_url, _unix = served
    watcher = XenAPI.Session(http_url)
    watcher.xenapi.login_with_password("root", "", "1.0", "watcher")
    writer = XenAPI.Session(http_url)
    writer.xenapi.login_with_password("root", "", "1.0", "writer")

    first = watcher.xenapi.event_from(["network"], "", 0.0)
    assert {e["class"] for e in first["events"]} == {"network"}
    assert all(e["operation"] == "add" and "snapshot" in e for e in first["events"])
    token = first["token"]

    net = writer.xenapi.network.create({"name_label": "private", "other_config": {}})

    def change_later():
        time.sleep(0.3)
        writer.xenapi.network.add_to_other_config(net, "xapi-gateway.address", "172.16.1.1/24")
    batch = watcher.xenapi.event_from(["network"], token, 5.0)
    assert [(e["operation"], e["ref"]) for e in batch["events"]] == [("add", net)]
    writer_thread = threading.Thread(target=change_later)
    writer_thread.start()
    started = time.monotonic()
    batch = watcher.xenapi.event_from(["network"], batch["token"], 5.0)
    waited = time.monotonic() - started
    writer_thread.join()
    assert 0.2 < waited < 4.0  # it blocked until the change, then woke at once
    event = batch["events"][-1]
    assert (event["operation"], event["ref"]) == ("mod", net)
    assert event["snapshot"]["other_config"] == {"xapi-gateway.address": "172.16.1.1/24"}

    writer.xenapi.network.destroy(net)
    batch = watcher.xenapi.event_from(["network"], batch["token"], 5.0)
    assert batch["events"][-1]["operation"] == "del"
    assert "snapshot" not in batch["events"][-1]


def test_event_from_filters_by_class_and_object_and_times_out(engine):
    session = engine.call("session.login_with_password", ["root", ""])["Value"]
    token = engine.call("event.from", [session, ["*"], "", 0.0])["Value"]["token"]
    vm = engine.create("VM", name_label="a")
    engine.create("VM", name_label="b")
    only_a = engine.call("event.from", [session, ["vm/%s" % vm], token, 0.0])["Value"]
    assert [e["ref"] for e in only_a["events"]] == [vm]
    started = time.monotonic()
    empty = engine.call("event.from", [session, ["network"], only_a["token"], 0.2])["Value"]
    assert empty["events"] == [] and time.monotonic() - started >= 0.19
    bad = engine.call("event.from", [session, ["*"], "garbage", 0.0])
    assert bad["ErrorDescription"] == ["EVENT_FROM_TOKEN_PARSE_FAILURE", "garbage"]
