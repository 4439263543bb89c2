#!/usr/bin/env python3
"""Fetch the Python dependencies that the RPM vendors, as wheels for Dom0's Python 3.6.

    python3 rpm/vendor.py --pins requirements/oldest.txt --dest DIR ROOT [ROOT...]

Run by rpm/build (with the build machine's python3 and pip; any Python 3 will do) before
rpmbuild, which has no network. Dom0 of XenServer 8 / XCP-ng 8.3 runs CPython 3.6 on glibc
2.17 (EL7) and has no packages for most of these libraries, so the RPM carries them:

- the closure of ROOT... is resolved for CPython 3.6 on x86_64 Linux by reading each wheel's
  Requires-Dist and evaluating its markers for that interpreter. (`pip download
  --python-version 3.6` cannot do this: it evaluates markers for the Python running pip,
  and so misses idna-ssl, asynctest, importlib-metadata... that only 3.6 needs);
- every distribution in the closure must be pinned exactly in the pins file
  (requirements/oldest.txt, the set CI tests on Python 3.6), and each pin must satisfy
  what its dependents ask for: the RPM ships exactly what was tested, nothing newer;
- binary wheels are taken only with cp36m / abi3 / none tags for manylinux2014 (glibc 2.17)
  or older, as published on PyPI, never compiled here;
- a distribution with no wheel at all is built from its sdist here. That is fine for pure
  Python (ovs's optional C extension is left out on purpose: OPTIONAL_EXTENSIONS); a
  compiled result is refused, except python-iptables, whose C helper
  (libxtwrapper, setjmp/longjmp around libxtables) uses no Python C API and is loaded with
  ctypes: it is named for CPython 3.6 (SETUPTOOLS_EXT_SUFFIX) whatever Python builds it.

Writes DIR/*.whl and DIR/vendored.txt (one line per distribution: name==version, the wheel
file and its sha256). rpm/unpack-wheels.py checks the wheels against that list at build time.
"""
import argparse
import email.parser
import glob
import hashlib
import os
import re
import shutil
import subprocess
import sys
import tempfile
import zipfile

try:
    from packaging.markers import Marker  # noqa: F401  (import check)
    from packaging.requirements import Requirement
    from packaging.specifiers import SpecifierSet
except ImportError:  # pip always carries a copy
    from pip._vendor.packaging.requirements import Requirement
    from pip._vendor.packaging.specifiers import SpecifierSet

# The interpreter the wheels are for: Dom0's /usr/bin/python3 (EL7's python3-3.6.8).
TARGET_PYTHON = "3.6.8"
TARGET_ENV = {
    "python_version": "3.6",
    "python_full_version": TARGET_PYTHON,
    "implementation_name": "cpython",
    "implementation_version": TARGET_PYTHON,
    "platform_python_implementation": "CPython",
    "platform_system": "Linux",
    "platform_machine": "x86_64",
    "platform_release": "",
    "platform_version": "",
    "sys_platform": "linux",
    "os_name": "posix",
    "extra": "",
}
# Tags pip may accept for a binary wheel: CPython 3.6 ABI, or ABI-independent; glibc <= 2.17.
WHEEL_TAGS = ["--python-version", "3.6", "--implementation", "cp",
              "--abi", "cp36m", "--abi", "abi3", "--abi", "none"]
for _platform in ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux2010_x86_64",
                  "manylinux_2_12_x86_64", "manylinux1_x86_64", "manylinux_2_5_x86_64", "any"):
    WHEEL_TAGS += ["--platform", _platform]
# Built from an sdist here although the result is platform-specific; see the docstring.
CTYPES_ONLY_EXTENSIONS = {"python-iptables"}
# Sdists whose C extension is an optional speed-up that setup.py skips when it does not
# compile (ovs: a JSON parser against libopenvswitch): built with no C compiler (CC=false),
# so the wheel is pure Python whatever the build machine has installed.
OPTIONAL_EXTENSIONS = {"ovs"}
TARGET_EXT_SUFFIX = ".cpython-36m-x86_64-linux-gnu.so"


def canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def die(message):
    sys.stderr.write("vendor.py: error: %s\n" % message)
    sys.exit(1)


def read_pins(path):
    """{canonical name: version} for every exact pin whose marker holds on Python 3.6."""
    pins = {}
    with open(path) as f:
        for lineno, line in enumerate(f, 1):
            line = line.split(" #", 1)[0].strip()
            if not line or line.startswith(("#", "-")):
                continue
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(TARGET_ENV):
                continue
            specs = list(req.specifier)
            if len(specs) != 1 or specs[0].operator != "==":
                die("%s:%d: %r is not an exact pin (name==version)" % (path, lineno, line))
            pins[canonical(req.name)] = specs[0].version
    return pins


def pip(*args, **kwargs):
    """Run pip quietly; returns (exit code, output)."""
    cmd = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input"] + list(args)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, **kwargs)
    return proc.returncode, proc.stdout


def only_file(directory, pattern):
    found = glob.glob(os.path.join(directory, pattern))
    if len(found) != 1:
        die("expected one %s in %s, found %s" % (pattern, directory, found or "none"))
    return found[0]


def wheel_metadata(path):
    with zipfile.ZipFile(path) as zf:
        names = [n for n in zf.namelist() if re.match(r"[^/]+\.dist-info/METADATA$", n)]
        if len(names) != 1:
            die("%s: no single .dist-info/METADATA" % path)
        return email.parser.Parser().parsestr(zf.read(names[0]).decode("utf-8"))


def is_pure(wheel_path):
    # name-version(-build)?-python-abi-platform.whl
    tags = os.path.basename(wheel_path)[:-4].split("-")[-3:]
    return tags[1] == "none" and tags[2] == "any"


def fetch(name, version, dest, work):
    """Put the wheel of name==version into dest; return its path."""
    spec = "%s==%s" % (name, version)
    tmp = tempfile.mkdtemp(dir=work)
    code, out = pip("download", "--no-deps", "--only-binary=:all:", "--dest", tmp, spec,
                    *WHEEL_TAGS)
    if code == 0:
        wheel = only_file(tmp, "*.whl")
        how = "wheel from the index"
    elif "No matching distribution" not in out and "from versions:" not in out:
        die("pip download %s failed:\n%s" % (spec, out))
    else:
        # No wheel for CPython 3.6 on manylinux2014 or older: build one from the sdist.
        code, out = pip("download", "--no-deps", "--no-binary=:all:", "--dest", tmp, spec)
        if code != 0:
            die("%s has neither a cp36 manylinux2014 wheel nor an sdist:\n%s" % (spec, out))
        sdist = only_file(tmp, "*.tar.gz")
        env = dict(os.environ, SETUPTOOLS_EXT_SUFFIX=TARGET_EXT_SUFFIX)
        if canonical(name) in OPTIONAL_EXTENSIONS:
            env.update(CC="false", LDSHARED="false")
        code, out = pip("wheel", "--no-deps", "--wheel-dir", os.path.join(tmp, "built"),
                        sdist, env=env)
        if code != 0:
            die("building a wheel of %s from its sdist failed:\n%s" % (spec, out))
        wheel = only_file(os.path.join(tmp, "built"), "*.whl")
        if not is_pure(wheel) and canonical(name) not in CTYPES_ONLY_EXTENSIONS:
            die("%s has no cp36 manylinux2014 wheel, and its sdist compiles a Python "
                "extension here (%s), against this machine's Python and glibc rather than "
                "Dom0's: pin a version that has such a wheel" % (spec, os.path.basename(wheel)))
        how = "built here from its sdist"
    target = os.path.join(dest, os.path.basename(wheel))
    shutil.move(wheel, target)
    shutil.rmtree(tmp)
    return target, how


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 16), b""):
            h.update(block)
    return h.hexdigest()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pins", required=True, help="requirements file with exact pins")
    parser.add_argument("--dest", required=True, help="directory for the wheels")
    parser.add_argument("roots", nargs="+", help="runtime dependencies of the agent")
    args = parser.parse_args()

    pins = read_pins(args.pins)
    os.makedirs(args.dest, exist_ok=True)
    work = tempfile.mkdtemp(prefix="xgw-vendor.")
    try:
        found = {}            # canonical name -> (version, wheel path)
        wanted_by = {}        # canonical name -> who asked (for messages)
        queue = [(canonical(r), "the agent") for r in args.roots]
        while queue:
            name, parent = queue.pop(0)
            if name in found:
                continue
            version = pins.get(name)
            if version is None:
                die("%s (needed by %s on Python 3.6) is not pinned in %s: add name==version "
                    "there, so that CI tests what the RPM ships" % (name, parent, args.pins))
            wheel, how = fetch(name, version, args.dest, work)
            found[name] = (version, wheel)
            wanted_by[name] = parent
            meta = wheel_metadata(wheel)
            requires_python = meta.get("Requires-Python")
            if requires_python and not SpecifierSet(requires_python).contains(TARGET_PYTHON):
                die("%s==%s requires Python %s, not %s" % (name, version, requires_python,
                                                           TARGET_PYTHON))
            print("  %-20s %-9s %s" % (name, version, how))
            for line in meta.get_all("Requires-Dist") or []:
                req = Requirement(line)
                if req.marker is not None and not req.marker.evaluate(TARGET_ENV):
                    continue
                dep = canonical(req.name)
                pinned = pins.get(dep)
                if pinned is None:
                    die("%s requires %s (on Python 3.6), which %s does not pin"
                        % (name, line, args.pins))
                if not req.specifier.contains(pinned, prereleases=True):
                    die("%s requires %s, but %s pins %s==%s" % (name, line, args.pins, dep, pinned))
                queue.append((dep, name))
    finally:
        shutil.rmtree(work, ignore_errors=True)

    with open(os.path.join(args.dest, "vendored.txt"), "w") as f:
        f.write("# Python libraries vendored into /usr/lib/xapi-gateway/site-packages, pinned in\n"
                "# requirements/oldest.txt (tested by CI on Python 3.6): name==version, wheel, sha256\n")
        for name in sorted(found):
            version, wheel = found[name]
            f.write("%s==%s %s sha256:%s\n" % (name, version, os.path.basename(wheel),
                                               sha256(wheel)))
    print("vendor.py: %d distributions for CPython 3.6 in %s" % (len(found), args.dest))


if __name__ == "__main__":
    main()
