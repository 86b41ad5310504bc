#!/usr/bin/env python3
# SPDX-License-Identifier: Apache-2.0
"""Runs one command inside a fresh cgroup with a memory and/or CPU limit, then reports.

    cgroup_run.py [--memory SIZE] [--cpus N] [--report FILE] [--layout auto|v1|v2] -- CMD [ARGS...]

SIZE is bytes or a number with K/M/G (binary: 64M = 64 MiB). N may be fractional (a quota of
N * 100 ms per 100 ms period). The layout is the machine's: cgroup v1 (a directory under the
controller's own hierarchy, /sys/fs/cgroup/memory/..., /sys/fs/cgroup/cpu/...) when the
controller is mounted there, else cgroup v2 (a directory under the unified hierarchy's root,
the controllers enabled in its cgroup.subtree_control). Needs root.

The command's stdin, stdout and stderr are this script's; it joins the cgroup(s) before exec.
While it runs, the cgroup's thread count is sampled every 10 ms. The script exits with the
command's status (128 + N when a signal N ended it) and writes a JSON report (to FILE, or to
stderr when no --report is given):

    {"layout": "v1", "memory_limit": 67108864, "cpus": 1.0, "cgroups": ["/sys/fs/cgroup/memory/..."],
     "exit": 0, "signal": null,
     "peak": 66060288,       # v1 memory.max_usage_in_bytes, v2 memory.peak (page cache included)
     "failcnt": 1234,        # v1 memory.failcnt, v2 memory.events "max": times the limit was hit
     "oom_kills": 0,         # v1 memory.oom_control / v2 memory.events "oom_kill"
     "max_threads": 3}       # most threads seen in the cgroup at once (v1 tasks, v2 cgroup.threads)

The cgroups are removed afterwards (after killing anything left in them), also on SIGINT/SIGTERM.
"""

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time

PERIOD_US = 100000


def parse_size(text):
    units = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30}
    t = text.strip().upper().removesuffix("IB").removesuffix("B")
    suffix = t[-1] if t and t[-1] in "KMG" else ""
    number = t[: len(t) - len(suffix)]
    return int(float(number) * units[suffix])


def mounts():
    """(mount point, fstype, super options) of every cgroup mount."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            dash = fields.index("-")
            fstype, superopts = fields[dash + 1], fields[dash + 3] if len(fields) > dash + 3 else ""
            if fstype in ("cgroup", "cgroup2"):
                point = fields[4].encode().decode("unicode_escape")
                out.append((point, fstype, superopts.split(",")))
    return out


def v1_mount(controller):
    for point, fstype, opts in mounts():
        if fstype == "cgroup" and controller in opts:
            return point
    return None


def v2_mount():
    for point, fstype, _ in mounts():
        if fstype == "cgroup2":
            return point
    return None


def write(path, value):
    with open(path, "w") as f:
        f.write(str(value))


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read()
    except OSError:
        return default


def keyed(text):
    out = {}
    for line in (text or "").splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].lstrip("-").isdigit():
            out[parts[0]] = int(parts[1])
    return out


class Cgroups:
    """The cgroup directories made for one run, per controller."""

    def __init__(self, layout, memory, cpus):
        self.layout = layout
        self.dirs = []            # every directory created (removed at the end)
        self.memory_dir = None    # where the memory files are
        self.cpu_dir = None
        name = "cdi-test-%d-%d" % (os.getpid(), int(time.time() * 1000) % 100000)
        if layout == "v1":
            if memory is not None:
                base = v1_mount("memory")
                self.memory_dir = self._mkdir(os.path.join(base, name))
                write(os.path.join(self.memory_dir, "memory.limit_in_bytes"), memory)
                if os.path.exists(os.path.join(self.memory_dir, "memory.memsw.limit_in_bytes")):
                    write(os.path.join(self.memory_dir, "memory.memsw.limit_in_bytes"), memory)
            if cpus is not None:
                base = v1_mount("cpu")
                self.cpu_dir = self._mkdir(os.path.join(base, name))
                write(os.path.join(self.cpu_dir, "cpu.cfs_period_us"), PERIOD_US)
                write(os.path.join(self.cpu_dir, "cpu.cfs_quota_us"), int(cpus * PERIOD_US))
        else:
            root = v2_mount()
            want = [c for c, v in (("memory", memory), ("cpu", cpus)) if v is not None]
            available = (read(os.path.join(root, "cgroup.controllers"), "") or "").split()
            missing = [c for c in want if c not in available]
            if missing:
                raise SystemExit("cgroup_run: the v2 hierarchy at %s has no %s controller" % (root, ", ".join(missing)))
            if want:
                write(os.path.join(root, "cgroup.subtree_control"), " ".join("+" + c for c in want))
            d = self._mkdir(os.path.join(root, name))
            if memory is not None:
                self.memory_dir = d
                write(os.path.join(d, "memory.max"), memory)
                if os.path.exists(os.path.join(d, "memory.swap.max")):
                    write(os.path.join(d, "memory.swap.max"), 0)
            if cpus is not None:
                self.cpu_dir = d
                write(os.path.join(d, "cpu.max"), "%d %d" % (int(cpus * PERIOD_US), PERIOD_US))

    def _mkdir(self, path):
        os.mkdir(path)
        self.dirs.append(path)
        return path

    def any_dir(self):
        return self.memory_dir or self.cpu_dir

    def join(self):
        """In the child before exec: moves this process into every cgroup."""
        pid = str(os.getpid())
        for d in self.dirs:
            write(os.path.join(d, "cgroup.procs"), pid)

    def threads(self):
        d = self.any_dir()
        text = read(os.path.join(d, "tasks" if self.layout == "v1" else "cgroup.threads"), "")
        return len(text.split())

    def procs(self):
        return [int(p) for p in (read(os.path.join(self.any_dir(), "cgroup.procs"), "") or "").split()]

    def memory_report(self):
        d = self.memory_dir
        if d is None:
            return {"peak": None, "failcnt": None, "oom_kills": None}
        if self.layout == "v1":
            oom = keyed(read(os.path.join(d, "memory.oom_control")))
            return {
                "peak": int(read(os.path.join(d, "memory.max_usage_in_bytes"), "0")),
                "failcnt": int(read(os.path.join(d, "memory.failcnt"), "0")),
                "oom_kills": oom.get("oom_kill", 0),
            }
        events = keyed(read(os.path.join(d, "memory.events")))
        peak = read(os.path.join(d, "memory.peak"))
        return {
            "peak": int(peak) if peak else None,
            "failcnt": events.get("max", 0),
            "oom_kills": events.get("oom_kill", 0),
        }

    def remove(self):
        for d in reversed(self.dirs):
            for _ in range(200):
                pids = [int(p) for p in (read(os.path.join(d, "cgroup.procs"), "") or "").split()]
                for p in pids:
                    try:
                        os.kill(p, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                try:
                    os.rmdir(d)
                    break
                except OSError:
                    time.sleep(0.02)


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--memory", type=parse_size)
    ap.add_argument("--cpus", type=float)
    ap.add_argument("--report")
    ap.add_argument("--layout", choices=["auto", "v1", "v2"], default="auto")
    ap.add_argument("command", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.command[1:] if a.command[:1] == ["--"] else a.command
    if not cmd:
        ap.error("no command")
    if a.memory is None and a.cpus is None:
        ap.error("give --memory and/or --cpus")
    layout = a.layout
    if layout == "auto":
        needed = [c for c, v in (("memory", a.memory), ("cpu", a.cpus)) if v is not None]
        layout = "v1" if all(v1_mount(c) for c in needed) else "v2"
    if layout == "v2" and not v2_mount():
        raise SystemExit("cgroup_run: no cgroup2 mount and no v1 hierarchy for the controllers")

    def on_signal(signum, _frame):
        raise KeyboardInterrupt(signum)

    signal.signal(signal.SIGTERM, on_signal)
    cg = Cgroups(layout, a.memory, a.cpus)
    report = {"layout": layout, "memory_limit": a.memory, "cpus": a.cpus, "cgroups": cg.dirs}
    rc = 1
    try:
        child = subprocess.Popen(cmd, preexec_fn=cg.join)
        max_threads = 0
        done = threading.Event()

        def sample():
            nonlocal max_threads
            while not done.is_set():
                max_threads = max(max_threads, cg.threads())
                done.wait(0.01)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        status = child.wait()
        done.set()
        sampler.join()
        report["exit"] = status if status >= 0 else None
        report["signal"] = -status if status < 0 else None
        report.update(cg.memory_report())
        report["max_threads"] = max_threads
        rc = status if status >= 0 else 128 - status
    except KeyboardInterrupt:
        rc = 130
        report["interrupted"] = True
    finally:
        cg.remove()
        text = json.dumps(report)
        if a.report:
            with open(a.report, "w") as f:
                f.write(text + "\n")
        else:
            print(text, file=sys.stderr)
    return rc


if __name__ == "__main__":
    sys.exit(main())
