"""Run a command whose journal is a test's socket: journal_ns.py FD NETNS COMMAND...

Started (as root) under ``unshare -m --propagation private``: in that private mount
namespace it mounts a tmpfs over /run/systemd, so the mountpoint and the socket exist only
there and nothing is created or changed in the host's /run; binds the unbound AF_UNIX
datagram socket it inherited as FD (the test keeps its other end, and reads it) at
/run/systemd/journal/socket, where libsystemd's sd_journal_sendv sends; and execs
``ip netns exec NETNS COMMAND...``, which keeps these mounts (it remounts /sys only), in
the same process, so the test's Popen is the command's own process.
"""
import os
import socket
import subprocess
import sys
import tempfile

JOURNAL_DIR = "/run/systemd/journal"


def mount(*args):
    # -n: no utab, so mount(8) does not create /run/mount in the host's /run either
    subprocess.check_call(("mount", "-n") + args)


def private_run_systemd():
    if os.path.isdir("/run/systemd"):
        mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "xgwt-journal", "/run/systemd")
        return
    # Not booted with systemd: no /run/systemd to mount over, and the host's /run must
    # not get one. A tmpfs over the whole /run instead, with the named network namespaces
    # (ip netns exec needs /run/netns/NAME) moved into it.
    keep = tempfile.mkdtemp(prefix="xgwt-netns-")
    mount("--rbind", "/run/netns", keep)
    mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "xgwt-run", "/run")
    os.makedirs("/run/netns")
    os.makedirs("/run/systemd")
    mount("--move", keep, "/run/netns")
    os.rmdir(keep)


def main(argv):
    fd, netns, command = int(argv[1]), argv[2], argv[3:]
    if os.readlink("/proc/self/ns/mnt") == os.readlink("/proc/%d/ns/mnt" % os.getppid()):
        sys.exit("journal_ns.py: not in a private mount namespace (run it under unshare -m)")
    private_run_systemd()
    os.makedirs(JOURNAL_DIR)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM, 0, fd)
    sock.bind(os.path.join(JOURNAL_DIR, "socket"))
    sock.close()  # the test's descriptor stays open: the socket lives on, bound here
    os.execvp("ip", ["ip", "netns", "exec", netns] + command)


if __name__ == "__main__":
    main(sys.argv)
