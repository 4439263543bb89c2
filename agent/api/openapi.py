"""The OpenAPI 3 document of the HTTP API, and the validator that enforces it.

This document is the source of truth: request bodies and query parameters are validated
against it before any handler runs (the tests also check every response against it), it
is served at ``/v1/openapi.json``, and the API reference in the README points to it.
The validator understands the subset of JSON Schema used here: type (with nullable),
properties, required, additionalProperties false, enum, pattern, minimum/maximum,
minLength/maxLength, items, maxItems and $ref.
"""
import re

import agent

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$"


def _ref(name):
    return {"$ref": "#/components/schemas/%s" % name}


def _obj(properties, required=(), description=None, nullable=False):
    schema = {"type": "object", "properties": properties, "additionalProperties": False}
    if required:
        schema["required"] = list(required)
    if description:
        schema["description"] = description
    if nullable:
        schema["nullable"] = True
    return schema


def _int(low, high, description=None):
    schema = {"type": "integer", "minimum": low, "maximum": high}
    if description:
        schema["description"] = description
    return schema


_STR = {"type": "string"}
_BOOL = {"type": "boolean"}
_NAME = {"type": "string", "pattern": NAME_PATTERN,
         "description": "1-64 letters, digits, '.', '_' or '-', starting with a letter or digit"}

_LINK_STATE = {"type": "string", "description": "accepted (valid: the reconciler makes "
               "it), invalid (a bad value), refused (it cannot be made beside the other "
               "links or on this host), or what the reconciler's OVS writer reports"}

SCHEMAS = {
    "Error": _obj({"error": _obj({
        "code": {"type": "string", "enum": [
            "invalid_input", "unauthorized", "forbidden", "not_found", "conflict",
            "payload_too_large", "unsupported_media_type", "method_not_allowed",
            "xapi_error", "xapi_unavailable", "xapi_timeout", "busy", "timeout",
            "kernel_error", "kernel_busy", "xtables_lock_timeout", "state_error",
            "config_invalid", "gateway_invalid", "agent_error", "internal_error"]},
        "message": _STR,
        "details": {"type": "object"}}, required=("code", "message", "details"))},
        required=("error",), description="The one error body of every failing request"),
    # Values are checked by agent.core.model, as for the config file, xe and topology
    # files (same sets, same sentences); the schema says the JSON types and sizes.
    "Forward": _obj({
        "proto": {"type": "string", "maxLength": 8, "description": "tcp or udp (any case)"},
        "port": {"type": "integer",
                 "description": "port on the host's own addresses, 1 to 65535; not tcp 22, "
                                "80 or 443 (Dom0's own)"},
        "to": {"type": "string", "maxLength": 21,
               "description": "ADDRESS[:PORT] of a host of the gateway's subnet (PORT "
                              "default: port)"}},
        required=("proto", "port", "to"),
        description="A port forward (DNAT) from the host to a VM on the private network"),
    "GatewaySpec": _obj({
        "address": {"type": "string", "maxLength": 18,
                    "description": "gateway address with prefix, e.g. 172.16.0.1/24"},
        "nat": _BOOL,
        "public": {"type": "boolean", "description": "allow a subnet outside the private "
                   "(RFC 1918) and shared (RFC 6598) ranges (default false)"},
        "forwards": {"type": "array", "maxItems": 256, "items": _ref("Forward")},
        "inbound": {"type": "array", "maxItems": 64, "items": {
            "type": "string", "minLength": 1, "maxLength": 18},
            "description": "outside networks (CIDR, or 'any') allowed to open connections "
                           "into the subnet, routed and not NATed"},
        "host": {"type": "string",  # its length and characters: core.model.parse_host
                 "description": "in a pool: the host (uuid or name_label) that serves the "
                                "gateway while it is live and enabled (default: the "
                                "placement rule chooses)"}},
        required=("address",)),
    "VlanSpec": _obj({"tag": _int(0, 4094), "pif": {"type": "string", "minLength": 1,
                                                    "maxLength": 15}}, required=("tag",)),
    # The tag's range and the parent's relation to the other networks: agent.core.model
    # and agent.core.links, as for xe and topology files.
    "LinkSpec": _obj({
        "parent": {"type": "string", "minLength": 1, "maxLength": 255,
                   "description": "the parent private network's uuid or name"},
        "tag": {"type": "integer", "description": "VLAN tag, 1 to 4094: frames from this "
                "network enter the parent as VLAN tag"}},
        required=("parent", "tag"),
        description="Declare the network a VLAN of another private network (an OVS "
                    "patch-port pair, the tag on the parent's side)"),
    "NetworkCreate": _obj({
        "name": _NAME, "description": {"type": "string", "maxLength": 1024},
        "vlan": _ref("VlanSpec"),
        "gateway": _ref("GatewaySpec"),
        "link": _ref("LinkSpec"),
        # their values: core.model.parse_span / parse_vni, the same for every entry point
        "span": {"type": "string", "description": "host (default: a private network on "
                 "one host) or pool (across the pool's hosts: MTU 1450, a VXLAN tunnel on "
                 "every host, the daemons make the tunnel ports)"},
        "vni": {"type": "integer", "description": "span pool: the VXLAN network identifier, "
                "1 to 16777215, unique in the pool (default: the lowest free one)"},
        "transport": {"type": "string", "maxLength": 15, "description": "span pool: the PIF "
                      "device that carries the tunnels on every host (default: each host's "
                      "management PIF)"}}, required=("name",)),
    "Network": _obj({
        "uuid": _STR, "name": _STR, "description": _STR, "bridge": _STR,
        "vlan": {"type": "integer", "nullable": True},
        "gateway": _obj({"address": _STR, "nat": _BOOL, "public": _BOOL,
                         "forwards": {"type": "array", "items": _ref("Forward")},
                         "inbound": {"type": "array", "items": _STR},
                         "host": {"type": "string", "nullable": True}},
                        nullable=True),
        "link": _obj({"parent": {"type": "string", "nullable": True},
                      "parent_name": {"type": "string", "nullable": True},
                      "tag": {"type": "integer", "nullable": True},
                      "state": _LINK_STATE,
                      "reason": {"type": "string", "nullable": True}}, nullable=True,
                     description="the network as a VLAN of another (null: no link)"),
        "himn": _BOOL,
        "vms": {"type": "array", "items": _STR},
        "topology": {"type": "string", "nullable": True},
        "span": {"type": "string", "enum": ["host", "pool"]},
        "vni": {"type": "integer", "nullable": True},
        "tunnels": _ref("Tunnels")},
        required=("uuid", "name", "bridge", "gateway", "vms", "span", "vni", "tunnels")),
    "Tunnels": _obj({
        "vni": {"type": "integer", "nullable": True},
        "state": {"type": "string", "enum": ["ready", "partial", "idle", "invalid"]},
        "center": {"type": "string", "nullable": True},
        "center_name": {"type": "string", "nullable": True},
        "reason": _STR,
        "ports": {"type": "array", "items": _obj({
            "host": _STR, "host_name": _STR, "ports": {"type": "integer"}})},
        "problems": {"type": "array", "items": _obj({
            "host": _STR, "host_name": {"type": "string", "nullable": True},
            "problem": _STR})},
        "warnings": {"type": "array", "items": _obj({
            "host": _STR, "host_name": {"type": "string", "nullable": True},
            "warning": _STR})}},
        nullable=True, description="A network that spans the pool: its VXLAN tunnels, a "
        "star around the center host (agent.core.tunnels), the ports each host should "
        "have, and the hosts left out with why"),
    "DiskSpec": _obj({"size_gib": _int(1, 2040), "sr": {
        "type": "string", "minLength": 1, "description": "SR name or uuid (default: the "
        "pool's default SR)"}}, required=("size_gib",)),
    "VmCreate": _obj({
        "name": _NAME,
        "template": {"type": "string", "minLength": 1},
        "memory_mib": _int(128, 1024 * 1024),
        "vcpus": _int(1, 64),
        "disks": {"type": "array", "maxItems": 15, "items": _ref("DiskSpec")},
        "nics": {"type": "array", "maxItems": 7, "items": {"type": "string", "minLength": 1},
                 "description": "network names or uuids: device 0, 1, 2... in this order"},
        "iso": {"type": "string", "minLength": 1, "nullable": True},
        "boot": {"type": "string", "pattern": "^[cdn]{1,3}$",
                 "description": "boot order: c disk, d CD, n network (e.g. ncd)"},
        "himn": _BOOL, "start": _BOOL,
        "host": {"type": "string", "minLength": 1, "description": "the pool host (uuid or "
                 "name) it starts on (VM.start_on), also its affinity"},
        "sr_check": {"type": "string", "enum": ["warn", "refuse", "off"]}},
        required=("name",)),
    "Vm": _obj({
        "uuid": _STR, "name": _STR, "power_state": _STR,
        "memory_mib": {"type": "integer"}, "vcpus": {"type": "integer"}, "boot": _STR,
        "nics": {"type": "array", "items": _obj({
            "device": {"type": "integer"}, "network": _STR, "network_uuid": _STR,
            "mac": _STR, "himn": _BOOL, "attached": _BOOL})},
        "disks": {"type": "array", "items": _obj({
            "device": {"type": "integer"}, "size_gib": {"type": "integer"}, "sr": _STR,
            "vdi_uuid": _STR})},
        "iso": {"type": "string", "nullable": True}, "himn": _BOOL,
        "topology": {"type": "string", "nullable": True},
        "warnings": {"type": "array", "items": _STR}},
        required=("uuid", "name", "power_state", "nics", "disks")),
    "VmDeleted": _obj({"uuid": _STR, "disks_destroyed": {"type": "array", "items": _STR},
                       "disks_kept": {"type": "array", "items": _STR}},
                      required=("uuid", "disks_destroyed", "disks_kept")),
    "Shutdown": _obj({"force": _BOOL}),
    "Topology": {"type": "object", "required": ["name"], "description":
                 "A declarative topology (examples/blog-lab.yaml as JSON): name, networks, "
                 "vms. Its fields are validated by agent/topology/model.py, which names "
                 "the offending path (e.g. vms[2].nics[1])"},
    "TopologyPlan": _obj({
        "topology": _STR, "summary": _STR, "changes": _BOOL,
        "actions": {"type": "array", "items": _ref("TopologyAction")}},
        required=("topology", "summary", "changes", "actions")),
    "TopologyAction": _obj({
        "kind": {"type": "string", "enum": ["create", "update", "start", "delete", "noop",
                                            "drift", "conflict"]},
        "object": {"type": "string", "enum": ["network", "vm"]}, "name": _STR,
        "detail": _STR, "status": _STR}, required=("kind", "object", "name", "detail")),
    "TopologyResult": _obj({
        "topology": _STR, "summary": _STR, "changed": {"type": "integer"},
        "warnings": {"type": "array", "items": _STR},
        "steps": {"type": "array", "items": _ref("TopologyAction")}},
        required=("topology", "steps", "changed")),
    "GatewayStatus": {"type": "object", "required": ["name", "bridge", "state"],
                      "properties": {
                          "name": _STR, "bridge": _STR,
                          "state": {"type": "string", "enum": [
                              "applied", "absent", "down", "pending", "refused", "invalid",
                              "error", "elsewhere", "unserved"]},
                          "host": {"type": "string", "nullable": True, "description":
                                   "in a pool: the uuid of the host that serves the gateway "
                                   "(null: placement not in force, or no single host)"},
                          "host_name": {"type": "string", "nullable": True},
                          "placement": {"type": "string", "nullable": True, "description":
                                        "why that host serves it (agent.core.placement)"},
                          "address": {"type": "string", "nullable": True},
                          "nat": {"type": "boolean", "nullable": True},
                          "inbound": {"type": "array", "items": _STR, "description":
                                      "sources allowed to connect in (CIDRs or 'any')"},
                          "routes": {"type": "array", "items": _obj({
                              "source": _STR,
                              "via": {"type": "string", "nullable": True, "description":
                                      "the host's address on the way to the source"},
                              "commands": _obj({"linux": _STR, "macos": _STR,
                                                "windows": _STR})}),
                              "description": "the route a machine of each inbound source "
                                             "adds to reach the subnet through the host"},
                          "reason": {"type": "string", "nullable": True},
                          "error": {"type": "string", "nullable": True},
                          "source": {"type": "string", "nullable": True},
                          "since": {"type": "number"}}},
    "LinkStatus": _obj({
        "network": _STR, "name": _STR, "bridge": _STR,
        "parent": {"type": "string", "nullable": True,
                   "description": "the parent's uuid (the text given when it names no "
                                  "network; null when the value cannot be read)"},
        "parent_name": {"type": "string", "nullable": True},
        "tag": {"type": "integer", "nullable": True}, "state": _LINK_STATE,
        "reason": {"type": "string", "nullable": True}, "since": {"type": "number"}},
        required=("network", "name", "bridge", "parent", "tag", "state", "reason")),
    "Health": _obj({
        "status": {"type": "string", "enum": ["ok", "degraded"]},
        "version": _STR,
        "xapi": _obj({"configured": _BOOL, "connected": _BOOL,
                      "stalled": dict(_BOOL, description="the API's last XAPI call went "
                                      "unanswered within [xapi] timeout (reason says "
                                      "since when)"),
                      "reason": {"type": "string", "nullable": True}}),
        "gateways": {"type": "object"},
        "problems": {"type": "array", "items": _STR}}, required=("status", "version", "xapi")),
    "Doctor": _obj({"ok": _BOOL, "checks": {"type": "array", "items": _obj({
        "name": _STR, "status": {"type": "string", "enum": ["ok", "warn", "fail"]},
        "detail": _STR})}}, required=("ok", "checks")),
}


def _error(description):
    return {"description": description, "content": {"application/json": {
        "schema": _ref("Error")}}}


def _json(schema, description="OK"):
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _json_or_stream(schema):
    response = _json(schema)
    response["description"] = "OK; with Accept: application/x-ndjson, progress lines first"
    response["content"]["application/x-ndjson"] = {"schema": {"type": "string"}}
    return response


def _op(summary, scope, responses, body=None, params=(), op_id=None):
    op = {"summary": summary, "operationId": op_id, "x-scope": scope, "responses": {}}
    if scope is not None:
        op["security"] = [{"bearer": []}]
        op["responses"]["401"] = _error("no valid token")
        if scope == "admin":
            op["responses"]["403"] = _error("the token is read-only")
    op["responses"].update(responses)
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {
            "schema": body}}}
        op["responses"]["400"] = _error("malformed or invalid input; details.field names it")
        op["responses"]["413"] = _error("the body is too large")
        op["responses"]["415"] = _error("the body is not JSON")
    if params:
        op["parameters"] = list(params)
        if any(p["in"] == "query" for p in params):
            op["responses"]["400"] = _error("a query parameter is invalid")
    op["responses"]["default"] = _error("an unexpected error (a bug; the daemon's log has "
                                        "the details), or a transport-level refusal")
    return op


_STREAM = {"description": "With Accept: application/x-ndjson: one line per step, "
                      "{\"progress\": sentence}, then {\"status\": N, \"result\": ...} "
                      "or {\"status\": N, \"error\": ...} with the status the plain "
                      "request would have had",
           "content": {"application/x-ndjson": {"schema": {"type": "string"}}}}
_PRUNE = {"name": "prune", "in": "query", "required": False,
          "schema": {"type": "string", "enum": ["true", "false"]},
          "description": "also delete what carries the topology's mark but left the file"}
_SR_CHECK = {"name": "sr_check", "in": "query", "required": False,
             "schema": {"type": "string", "enum": ["warn", "refuse", "off"]}}
_KEY = {"name": "key", "in": "path", "required": True, "schema": {"type": "string"},
        "description": "the uuid or the name"}
_FORCE = {"name": "force", "in": "query", "required": False,
          "schema": {"type": "string", "enum": ["true", "false"]}}
_XAPI = {"502": _error("XAPI refused a step; what the request created was undone"),
         "503": _error("XAPI is unreachable or did not answer in time (xapi_timeout), or "
                       "another change to the pool held it too long (busy)")}


_IF_NONE_MATCH = {"name": "If-None-Match", "in": "header", "required": False,
                  "schema": {"type": "string"},
                  "description": "the ETag of an earlier answer: 304 without a body while "
                                 "the answer is still the same"}


def _conditional(schema, description="OK"):
    """The responses of a GET that answers with an ETag and honours If-None-Match."""
    ok = _json(schema, description)
    ok["headers"] = {"ETag": {"schema": {"type": "string"}, "description":
                              "strong validator of this body; it changes exactly when the "
                              "body does"}}
    return {"200": ok, "304": {"description": "Not Modified: If-None-Match named the "
                                              "current ETag (no body)",
                               "headers": ok["headers"]}}


def _with(responses, *extra):
    out = dict(responses)
    for item in extra:
        out.update(item)
    return out


PATHS = {
    "/v1/health": {"get": _op("Liveness, version and XAPI connectivity", None,
                              _conditional(_ref("Health")), params=[_IF_NONE_MATCH],
                              op_id="health")},
    "/v1/openapi.json": {"get": _op("This document", None, {"200": _json({"type": "object"})},
                                    op_id="openapi")},
    "/metrics": {"get": _op("Prometheus metrics (text format)", "read", {
        "200": {"description": "OK", "content": {"text/plain": {"schema": _STR}}}},
        op_id="metrics")},
    "/v1/doctor": {"get": _op("Preflight checks of this host", "read", _with(
        {"200": _json(_ref("Doctor"))}, {"503": _error("XAPI is unreachable")}),
        op_id="doctor")},
    "/v1/gateways": {"get": _op("Live state of every gateway", "read", _conditional(
        {"type": "array", "items": _ref("GatewayStatus")}), params=[_IF_NONE_MATCH],
        op_id="gateways")},
    "/v1/gateways/{name}": {"get": _op("Live state of one gateway", "read", {
        "200": _json(_ref("GatewayStatus")), "404": _error("no such gateway")},
        params=[{"name": "name", "in": "path", "required": True,
                 "schema": {"type": "string"}}], op_id="gateway")},
    "/v1/networks": {
        "get": _op("List networks", "read", _with(
            {"200": _json({"type": "array", "items": _ref("Network")})},
            {"503": _XAPI["503"]}), op_id="listNetworks"),
        "post": _op("Create a private or VLAN network, optionally with a gateway", "admin",
                    _with({"201": _json(_ref("Network"), "Created"),
                           "404": _error("no such PIF, or no such link parent"),
                           "409": _error("name taken, subnet overlap, or a link that "
                                         "cannot be made (tag taken, parent with a PIF)")},
                          _XAPI),
                    body=_ref("NetworkCreate"), op_id="createNetwork")},
    "/v1/networks/{key}": {
        "get": _op("One network", "read", _with({"200": _json(_ref("Network")),
                                                 "404": _error("no such network"),
                                                 "409": _error("the name is ambiguous")},
                                                {"503": _XAPI["503"]}),
                   params=[_KEY], op_id="getNetwork"),
        "delete": _op("Delete a network (its gateway first); refused while VMs use it",
                      "admin", _with({"204": {"description": "Deleted"},
                                      "404": _error("no such network"),
                                      "409": _error("in use by VMs (named in details.vms)")},
                                     _XAPI), params=[_KEY], op_id="deleteNetwork")},
    "/v1/networks/{key}/gateway": {
        "put": _op("Set or replace the network's gateway", "admin", _with(
            {"200": _json(_ref("Network")), "404": _error("no such network"),
             "409": _error("subnet overlap or port taken")}, _XAPI),
            body=_ref("GatewaySpec"), params=[_KEY], op_id="setGateway"),
        "delete": _op("Remove the network's gateway", "admin", _with(
            {"200": _json(_ref("Network")), "404": _error("no such network"),
             "409": _error("the name is ambiguous")}, _XAPI),
            params=[_KEY], op_id="removeGateway")},
    "/v1/networks/{key}/link": {
        "put": _op("Declare the network a VLAN of another private network, or change it",
                   "admin", _with({"200": _json(_ref("Network")),
                                   "404": _error("no such network, or no such parent"),
                                   "409": _error("the parent's tag is taken, a cycle or a "
                                                 "chain of links, a network with a PIF")},
                                  _XAPI),
                   body=_ref("LinkSpec"), params=[_KEY], op_id="setLink"),
        "delete": _op("Drop the network's link", "admin", _with(
            {"200": _json(_ref("Network")), "404": _error("no such network"),
             "409": _error("the name is ambiguous")}, _XAPI),
            params=[_KEY], op_id="removeLink")},
    "/v1/links": {"get": _op("Live state of every VLAN link between networks", "read", {
        "200": _json({"type": "array", "items": _ref("LinkStatus")})}, op_id="links")},
    "/v1/vms": {
        "get": _op("List VMs", "read", _with(
            {"200": _json({"type": "array", "items": _ref("Vm")})}, {"503": _XAPI["503"]}),
            op_id="listVms"),
        "post": _op("Create a VM: template, memory, vCPUs, disks, NICs in order, ISO, boot "
                    "order, HIMN, start; all or nothing", "admin",
                    _with({"201": _json(_ref("Vm"), "Created"),
                           "200": _STREAM,
                           "404": _error("no such network, SR, ISO or template"),
                           "409": _error("name taken, or the SR check refused")}, _XAPI),
                    body=_ref("VmCreate"), op_id="createVm")},
    "/v1/vms/{key}": {
        "get": _op("One VM", "read", _with({"200": _json(_ref("Vm")),
                                            "404": _error("no such VM"),
                                            "409": _error("the name is ambiguous")},
                                           {"503": _XAPI["503"]}),
                   params=[_KEY], op_id="getVm"),
        "delete": _op("Destroy a VM with its disks (force=true powers it off first)",
                      "admin", _with({"200": _json(_ref("VmDeleted")),
                                      "404": _error("no such VM"),
                                      "409": _error("the VM runs")}, _XAPI),
                      params=[_KEY, _FORCE], op_id="deleteVm")},
    "/v1/vms/{key}/start": {"post": _op("Start a VM", "admin", _with(
        {"200": _json(_ref("Vm")), "404": _error("no such VM"),
         "409": _error("the VM is paused or suspended")}, _XAPI),
        params=[_KEY], op_id="startVm")},
    "/v1/vms/{key}/shutdown": {"post": _op("Shut a VM down (force: power off)", "admin",
                                           _with({"200": _json(_ref("Vm")),
                                                  "404": _error("no such VM"),
                                                  "409": _error("the name is ambiguous")},
                                                 _XAPI),
                                           body=_ref("Shutdown"), params=[_KEY],
                                           op_id="shutdownVm")},
    "/v1/vms/{key}/himn": {"post": _op(
        "Attach the host internal management network as the XenCenter plug-in does",
        "admin", _with({"200": _json(_ref("Vm")), "404": _error("no such VM"),
                        "409": _error("the VM has the HIMN already")}, _XAPI),
        params=[_KEY], op_id="attachHimn")},
    "/v1/topology/plan": {"post": _op(
        "What applying this topology would change (nothing is changed)", "read", _with(
            {"200": _json(_ref("TopologyPlan"))}, {"503": _XAPI["503"]}),
        body=_ref("Topology"), params=[_PRUNE], op_id="planTopology")},
    "/v1/topology/apply": {"post": _op(
        "Make the host match the topology, step by step; refused before any change on a "
        "conflict", "admin", _with({"200": _json_or_stream(_ref("TopologyResult")),
                                    "404": _error("a network, SR, ISO or template the "
                                                  "topology names does not exist"),
                                    "409": _error("a conflict (an unmarked object of the "
                                                  "same name, an overlap), or a step "
                                                  "failed")}, _XAPI),
        body=_ref("Topology"), params=[_PRUNE, _SR_CHECK], op_id="applyTopology")},
    "/v1/topology/destroy": {"post": _op(
        "Remove what the topology made (what carries its mark), and nothing else", "admin",
        _with({"200": _json_or_stream(_ref("TopologyResult")),
               "409": _error("a marked network is used by a VM the topology does not "
                             "manage")}, _XAPI),
        body=_ref("Topology"), op_id="destroyTopology")},
    "/v1/diagram": {"get": _op("The host's networks and VMs as Mermaid or Graphviz text",
                               "read", _with({"200": {"description": "OK", "content": {
                                   "text/plain": {"schema": _STR}}}},
                                   {"503": _XAPI["503"]}),
                               params=[{"name": "format", "in": "query", "required": False,
                                        "schema": {"type": "string",
                                                   "enum": ["mermaid", "dot"]}},
                                       {"name": "topology", "in": "query", "required": False,
                                        "schema": {"type": "string"}}],
                               op_id="diagram")},
}


def document():
    return {
        "openapi": "3.0.3",
        "info": {"title": "xapi-gateway", "version": agent.__version__,
                 "description": "Networks with NAT gateways and VMs on a XenServer / XCP-ng "
                                "host. On the Unix socket no token is needed (root only); on "
                                "TCP a bearer token with scope read or admin is."},
        "paths": PATHS,
        "components": {"schemas": SCHEMAS, "securitySchemes": {
            "bearer": {"type": "http", "scheme": "bearer"}}},
    }


# ---- validation ------------------------------------------------------------------------
class Invalid(Exception):
    def __init__(self, field, message):
        super(Invalid, self).__init__(message)
        self.field = field


# what XML 1.0 (XAPI's XML-RPC) cannot carry: C0 controls but tab/newline/return,
# surrogates (unpaired, once decoded from JSON), U+FFFE/U+FFFF
_NOT_XML = re.compile(u"[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool}


def validate(schema, value, field="body"):
    """Raise Invalid(field, sentence) where ``value`` breaks ``schema``."""
    if "$ref" in schema:
        schema = SCHEMAS[schema["$ref"].rsplit("/", 1)[1]]
    if value is None:
        if schema.get("nullable"):
            return
        raise Invalid(field, "%s must not be null" % field)
    kind = schema.get("type")
    if kind == "integer":
        if isinstance(value, bool) or not isinstance(value, int):
            raise Invalid(field, "%s must be a whole number" % field)
    elif kind == "number":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise Invalid(field, "%s must be a number" % field)
    elif kind is not None and not isinstance(value, _TYPES[kind]):
        raise Invalid(field, "%s must be %s %s" % (field, "an" if kind[0] in "aeio" else "a",
                                                   kind))
    if "enum" in schema and value not in schema["enum"]:
        raise Invalid(field, "%s must be one of %s" % (field, ", ".join(
            str(e) for e in schema["enum"])))
    if kind == "string":
        if _NOT_XML.search(value):
            raise Invalid(field, "%s contains control characters or unpaired surrogates, "
                                 "which XAPI cannot store" % field)
        if len(value) < schema.get("minLength", 0):
            raise Invalid(field, "%s must not be empty" % field)
        if len(value) > schema.get("maxLength", len(value)):
            raise Invalid(field, "%s is longer than %d characters" % (
                field, schema["maxLength"]))
        if "pattern" in schema and not re.match(schema["pattern"], value):
            raise Invalid(field, "%s %r is not valid%s" % (
                field, value, ": " + schema["description"] if "description" in schema
                else ""))
    if kind in ("integer", "number"):
        if value < schema.get("minimum", value) or value > schema.get("maximum", value):
            raise Invalid(field, "%s must be from %s to %s" % (
                field, schema.get("minimum"), schema.get("maximum")))
    if kind == "array":
        if len(value) > schema.get("maxItems", len(value)):
            raise Invalid(field, "%s has more than %d items" % (field, schema["maxItems"]))
        for i, item in enumerate(value):
            validate(schema.get("items", {}), item, "%s[%d]" % (field, i))
    if kind == "object":
        props = schema.get("properties", {})
        prefix = "" if field == "body" else field + "."
        if schema.get("additionalProperties") is False:  # first: a typo explains more
            unknown = sorted(set(value) - set(props))
            if unknown:
                raise Invalid(prefix + unknown[0], "unknown field %s%s (known: %s)" % (
                    prefix, unknown[0], ", ".join(sorted(props))))
        for name in schema.get("required", ()):
            if name not in value:
                raise Invalid(prefix + name, "%s%s is required" % (prefix, name))
        for name, sub in props.items():
            if name in value:
                validate(sub, value[name], prefix + name)
