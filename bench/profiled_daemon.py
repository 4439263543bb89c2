"""Run xapi-gateway-agent under cProfile, every thread of it, for bench/profile_daemon.py.

    python bench/profiled_daemon.py OUT.prof -c CONFIG

The daemon's rounds run in a worker thread (a ThreadPoolExecutor), which a plain
``python -m cProfile`` does not see: here each thread gets its own profiler on its first
event, and all of them are merged into OUT.prof (pstats format) when the daemon exits
(SIGTERM: it exits 0). Bench-only.
"""
import cProfile
import pstats
import runpy
import sys
import threading

_profiles = []
_lock = threading.Lock()


def _start_in_thread(frame, event, arg):
    sys.setprofile(None)
    profile = cProfile.Profile()
    with _lock:
        _profiles.append(profile)
    profile.enable()


def main():
    out = sys.argv[1]
    sys.argv = ["xapi-gateway-agent"] + sys.argv[2:]
    threading.setprofile(_start_in_thread)
    main_profile = cProfile.Profile()
    _profiles.append(main_profile)
    main_profile.enable()
    try:
        runpy.run_module("agent.daemon.main", run_name="__main__", alter_sys=True)
    finally:
        main_profile.disable()
        with _lock:
            profiles = list(_profiles)
        for p in profiles:
            p.create_stats()
        stats = pstats.Stats(profiles[0])
        for p in profiles[1:]:
            if p.stats:
                stats.add(p)
        stats.dump_stats(out)


if __name__ == "__main__":
    main()
