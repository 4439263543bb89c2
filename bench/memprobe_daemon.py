"""Run xapi-gateway-agent with a memory probe, for bench/memory.py.

    python bench/memprobe_daemon.py DUMP.json [--trace N] -c CONFIG

On SIGUSR1 the daemon (its main thread, between two of its steps) writes DUMP.json: the
imported modules, its ``/proc/self/status`` memory lines, the objects the collector sees
counted by type (frozen ones included), the deep size of the daemon's long-lived
structures (the reconciler's fields, the adapters' mirrors, the sources, the API's
caches), and with ``--trace N`` (tracemalloc from the first line, N frames) the live
allocations grouped by file and by line. Tracing costs memory and time of its own: read
the RSS of a run without it. Bench-only.
"""
import gc
import json
import os
import runpy
import signal
import sys
import types

_SKIP = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType,
         types.MethodType, types.CodeType, types.FrameType)


def deep_size(obj, seen):
    """Bytes of ``obj`` and what it alone reaches (objects already in ``seen`` count
    once; classes, modules, functions and code are not followed)."""
    size = 0
    stack = [obj]
    while stack:
        o = stack.pop()
        if id(o) in seen or isinstance(o, _SKIP):
            continue
        seen.add(id(o))
        try:
            size += sys.getsizeof(o)
        except TypeError:
            continue
        if isinstance(o, dict):
            stack.extend(o.keys())
            stack.extend(o.values())
        elif isinstance(o, (list, tuple, set, frozenset)):
            stack.extend(o)
        else:
            d = getattr(o, "__dict__", None)
            if isinstance(d, dict):
                stack.append(d)
            for klass in type(o).__mro__:
                for slot in klass.__dict__.get("__slots__", ()):
                    if slot not in ("__dict__", "__weakref__") and hasattr(o, slot):
                        stack.append(getattr(o, slot))
    return size


def _find(name):
    for o in gc.get_objects():
        if type(o).__name__ == name and type(o).__module__.startswith(("agent.", "__main__")):
            return o
    return None


def structures():
    """{what: bytes} of the daemon's long-lived structures, each counted once, in order."""
    daemon = _find("Daemon")
    if daemon is None:
        return {}
    seen = set()
    # the modules' own dictionaries (constants, tables) are not the gateways': mark them
    for m in list(sys.modules.values()):
        seen.add(id(getattr(m, "__dict__", None)))
    out = {}
    rec = daemon.reconciler
    # the parts of the kept plans, first (what they share is counted here, once)
    parts = {"_last_plan": ("key", "tables", "plan"), "_network": ("key", "network")}
    for attr, names in sorted(parts.items()):
        value = getattr(rec, attr, None)
        if isinstance(value, tuple) and len(value) == len(names):
            for name, part in zip(names, value):
                fields = getattr(part, "_fields", None)
                if fields:
                    for field in fields:
                        out["reconciler.%s.%s.%s" % (attr, name, field)] = deep_size(
                            getattr(part, field), seen)
                out["reconciler.%s.%s" % (attr, name)] = deep_size(part, seen)
    for attr in sorted(vars(rec)):
        if attr in ("source", "view", "netlink", "iptables", "sysctl", "lock", "statefile",
                    "announce", "ovs", "published"):
            continue
        out["reconciler.%s" % attr] = deep_size(getattr(rec, attr), seen)
    out["reconciler.published"] = deep_size(rec.published, seen)
    for attr in sorted(vars(rec.iptables)):
        out["iptables.%s" % attr] = deep_size(getattr(rec.iptables, attr), seen)
    out["netlink view"] = deep_size(rec.view, seen)
    out["netlink adapter"] = deep_size(rec.netlink, seen)
    out["sources (placed, merged, static)"] = deep_size(daemon.placed, seen)
    out["configuration"] = deep_size(daemon.config, seen)
    rendered = _find("Api")
    if rendered is not None:
        out["api (Api: its memos)"] = deep_size(rendered, seen)
    out["daemon (the rest)"] = deep_size(daemon, seen)
    return out


def by_type(limit=25):
    counts = {}
    for o in gc.get_objects():
        name = type(o).__name__
        n, size = counts.get(name, (0, 0))
        counts[name] = (n + 1, size + sys.getsizeof(o))
    return sorted(([k, n, s] for k, (n, s) in counts.items()), key=lambda x: -x[2])[:limit]


def allocators():
    """pymalloc's own statistics (sys._debugmallocstats, which writes to fd 2) and glibc's
    malloc_info (every arena: in use, free, mmapped), as text."""
    import ctypes
    import tempfile
    out = {}
    with tempfile.TemporaryFile() as tmp:
        saved = os.dup(2)
        try:
            sys.stderr.flush()
            os.dup2(tmp.fileno(), 2)
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        tmp.seek(0)
        text = tmp.read().decode("utf-8", "replace")
    out["pymalloc"] = text[text.find("# arenas allocated total"):]
    try:
        libc = ctypes.CDLL(None)
        libc.open_memstream.restype = ctypes.c_void_p
        buf, size = ctypes.c_char_p(), ctypes.c_size_t()
        stream = libc.open_memstream(ctypes.byref(buf), ctypes.byref(size))
        libc.malloc_info(0, ctypes.c_void_p(stream))
        libc.fclose(ctypes.c_void_p(stream))
        out["malloc_info"] = buf.value.decode()
    except (OSError, AttributeError) as exc:
        out["malloc_info"] = "unavailable: %s" % exc
    return out


def dump(path, trace):
    with open("/proc/self/status") as f:
        status = {k: v.strip() for k, v in (line.split(":", 1) for line in f)
                  if k.startswith(("Vm", "Rss"))}
    frozen = getattr(gc, "get_freeze_count", lambda: 0)()
    if frozen:
        getattr(gc, "unfreeze")()   # let get_objects see them (Python 3.7+, as freeze)
    data = {"status": status, "modules": sorted(sys.modules), "frozen": frozen,
            "gc_objects": len(gc.get_objects()), "by_type": by_type(),
            "structures": structures(), "allocators": allocators(),
            "threads": sorted(os.listdir("/proc/self/task"))}
    if trace:
        import tracemalloc
        snap = tracemalloc.take_snapshot().filter_traces(
            (tracemalloc.Filter(False, tracemalloc.__file__),))
        data["traced"] = tracemalloc.get_traced_memory()
        data["by_file"] = [[str(s.traceback), s.size, s.count]
                           for s in snap.statistics("filename")[:40]]
        data["by_line"] = [[str(s.traceback), s.size, s.count]
                           for s in snap.statistics("lineno")[:60]]
    # what glibc keeps of memory freed in the middle of its heaps: malloc_trim(0) gives
    # those pages back (timed: a daemon that called it would pay this)
    import ctypes
    import time
    t0 = time.monotonic()
    ctypes.CDLL(None).malloc_trim(0)
    data["malloc_trim_s"] = time.monotonic() - t0
    with open("/proc/self/status") as f:
        data["status_after_trim"] = {k: v.strip() for k, v in (line.split(":", 1) for line in f)
                                     if k.startswith(("VmRSS", "RssAnon"))}
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(data, f, indent=1)
    os.rename(tmp, path)


def main():
    out = sys.argv[1]
    rest = sys.argv[2:]
    trace = 0
    if rest[:1] == ["--trace"]:
        trace = int(rest[1])
        rest = rest[2:]
        import tracemalloc
        tracemalloc.start(trace)
    signal.signal(signal.SIGUSR1, lambda *_: dump(out, trace))
    sys.argv = ["xapi-gateway-agent"] + rest
    runpy.run_module("agent.daemon.main", run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
