"""Peak memory of a command, split into what it allocated and what it mapped from files.

`ru_maxrss` (what bench_scale.py reports) counts every resident page, including the pages of
memory-mapped files a process has read: page cache the kernel can drop, shared with any other
reader. The n-gram's memory budget bounds what the process allocates, so this samples
/proc/PID/status every 0.2 s and prints the peaks of VmRSS, RssAnon (allocated) and RssFile
(mapped files), in MB, as one JSON line.

    python benchmarks/rss_watch.py rnngen eval CHECKPOINT --ngram-memory 1G --json -q
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

FIELDS = ("VmRSS", "RssAnon", "RssFile")


def main() -> None:
    process = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)
    peak = dict.fromkeys(FIELDS, 0)
    start = time.time()
    while process.poll() is None:
        try:
            with open(f"/proc/{process.pid}/status") as status:
                for line in status:
                    key, _, value = line.partition(":")
                    if key in peak:
                        peak[key] = max(peak[key], int(value.split()[0]) // 1024)
        except OSError:  # the process ended between poll() and open()
            pass
        time.sleep(0.2)
    seconds = round(time.time() - start, 1)
    print(json.dumps({"command": sys.argv[1:], "exit": process.returncode, "seconds": seconds,
                      "peak_mb": peak}))  # fmt: skip


if __name__ == "__main__":
    main()
