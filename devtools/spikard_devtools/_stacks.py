"""Where the CPU goes, from the stacks ``py-spy record --native --format raw`` samples.

Each line of py-spy's raw output is one stack, root first, frames joined by ``;``,
then a count: ``work (/app/app.py:15);busy (/app/app.py:9) 12``. A frame is
``name (file:line)`` for Python and for native code with line tables, and
``name (library.so)`` or ``0x7f.. (library.so)`` for native code without.

A sample is charged to one side: the first frame from the leaf up that says whose
work it is. The app's own Python code (files in its folder); the spikard runtime (its
Rust crates, and tokio, hyper and the standard library when they run under them; its
Python package); the interpreter and asyncio (CPython's own native code, asyncio,
runpy); libraries (any other Python code, and other extension modules); and the
kernel (a leaf that is a system call other than a wait). A leaf that waits
(``epoll_wait``, a futex, a sleep) is idle, not CPU: py-spy samples waiting threads
too when it unwinds native stacks, so they are counted apart.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path


def bare(name: str) -> str:
    """A C function's name without a compiler's clone suffix (``.constprop.0``) or
    glibc's alias prefixes: ``__GI___libc_write``, ``__libc_recv`` and ``__send`` are
    ``write``, ``recv`` and ``send``."""
    name = re.sub(r"(?:\.(?:constprop|isra|part|cold|lto_priv)\.\d+)+$", "", name)
    return re.sub(r"^(?:__GI_|__libc_|_)+", "", name)


SIDES = ("app", "runtime", "interpreter", "libraries", "kernel")
SIDE_TITLES = {
    "app": "the app's own Python code",
    "runtime": "spikard runtime (Rust, and its Python glue)",
    "interpreter": "Python interpreter and asyncio",
    "libraries": "libraries (other Python code and extensions)",
    "kernel": "kernel (system calls)",
}
# Leaves where a thread waits rather than runs.
WAITS = frozenset(
    bare(name)
    for name in {
        "epoll_wait",
        "epoll_pwait",
        "epoll_pwait2",
        "poll",
        "ppoll",
        "select",
        "pselect",
        "pselect6",
        "__futex_abstimed_wait_common",
        "__futex_abstimed_wait_common64",
        "futex_wait",
        "__lll_lock_wait",
        "__lll_lock_wait_private",
        "pthread_cond_wait",
        "pthread_cond_timedwait",
        "sem_wait",
        "sem_timedwait",
        "do_futex_wait",
        "nanosleep",
        "clock_nanosleep",
        "__clock_nanosleep",
        "pause",
        "sigtimedwait",
        "sigwaitinfo",
        "wait4",
        "waitpid",
        "sem_clockwait",
        "__new_sem_wait_slow",
        # CPython's own waits, where py-spy's unwinding of them stops: for the GIL,
        # a lock, a queue, a sleep, a selector.
        "take_gil",
        "PyCOND_WAIT",
        "PyCOND_TIMEDWAIT",
        "PyThread_acquire_lock_timed",
        "acquire_timed",
        "lock_PyThread_acquire_lock",
        "rlock_acquire",
        "_queue_SimpleQueue_get_impl",
        "time_sleep",
        "pysleep",
        "select_select_impl",
        "select_poll_poll_impl",
        "select_epoll_poll_impl",
    }
)
# Leaves in the C library that enter the kernel.
SYSTEM_CALLS = frozenset(
    bare(name)
    for name in {
        "recv",
        "recvfrom",
        "recvmsg",
        "send",
        "sendto",
        "sendmsg",
        "read",
        "readv",
        "write",
        "writev",
        "close",
        "accept",
        "accept4",
        "shutdown",
        "epoll_ctl",
        "getsockopt",
        "setsockopt",
        "getsockname",
        "getpeername",
        "socket",
        "open",
        "openat",
        "fstat",
        "stat",
        "madvise",
        "mmap",
        "munmap",
        "mprotect",
        "brk",
        "sbrk",
        "sched_yield",
        "syscall",
        "getrandom",
        "futex",
        "eventfd_write",
        "pthread_cond_signal",
        "pthread_cond_broadcast",
        "__lll_lock_wake",
        "kill",
        "tgkill",
    }
)
# Our Rust crates, as their source paths and symbols show.
RUNTIME_RUST = re.compile(r"/runtime/(?:http|python)/src/|spikard_http::|_spikard::")
FRAME = re.compile(r"^(?P<name>.*) \((?P<where>[^()]*)\)$")


@dataclass(frozen=True)
class Frame:
    name: str
    where: str  # file:line, or a shared library

    @cached_property
    def file(self) -> str:
        return re.sub(r":\d+$", "", self.where)

    @property
    def is_python(self) -> bool:
        return self.file.endswith(".py") or self.file.startswith("<frozen")

    @property
    def is_rust(self) -> bool:
        return self.file.endswith(".rs")

    @property
    def readable_name(self) -> str:
        """The name as shown: a Rust v0 symbol made readable, others as they are."""
        return self.name if self.is_python else _readable(self.name)

    @property
    def bare_name(self) -> str:
        return bare(_strip_generics(self.name))

    def short(self) -> str:
        """The function and its file, without the line: what self time is summed by."""
        name = self.name if self.is_python else _readable(_strip_generics(self.name))
        return f"{name} ({short_path(self.file)})"


def parse_frame(text: str) -> Frame:
    match = FRAME.match(text)
    if match is None:
        return Frame(text, "")
    return Frame(match["name"], match["where"])


def _strip_generics(name: str) -> str:
    out, depth = [], 0
    for char in name:
        if char == "<":
            depth += 1
        elif char == ">" and depth:
            depth -= 1
        elif depth == 0:
            out.append(char)
    stripped = "".join(out).strip()
    return stripped or name


def _readable(name: str) -> str:
    """A Rust v0-mangled symbol (``_RNv...``, left so by py-spy) as its last two
    path segments (``IsMinusOne::is_minus_one``); any other name as it is."""
    if not name.startswith("_R"):
        return name
    segments, index = [], 0
    while index < len(name):
        digits = re.match(r"\d+", name[index:])
        if digits is None:
            index += 1
            continue
        length, start = int(digits.group()), index + len(digits.group())
        word = name[start : start + length]
        if length and len(word) == length and re.fullmatch(r"(?!_\d)[A-Za-z_][A-Za-z0-9_]*", word):
            segments.append(word)
            index = start + length
        else:
            index = start
    return "::".join(segments[-2:]) if segments else name


def short_path(where: str) -> str:
    """A frame's file without the prefixes every frame of its kind shares."""
    where = re.sub(r"^.*/registry/src/[^/]+/", "", where)  # crates.io sources: tokio-1.54.1/src/...
    where = re.sub(r"^/rustc/[0-9a-f]+/library/", "rust/", where)
    where = re.sub(r"^.*/(Python-3[^/]*/)", r"\1", where)  # CPython's own sources
    where = re.sub(r"^/.*/(lib[^/]+\.so[.\d]*)$", r"\1", where)  # a shared library
    where = re.sub(r"^.*/site-packages/", "", where)
    where = re.sub(r"^.*/lib/python3\.\d+/", "", where)
    return re.sub(r"^.*/(runtime/(?:http|python)/src/)", r"\1", where)


@dataclass
class Classifier:
    """Says whose work a frame is: ``app_folder`` holds the app's own modules,
    ``runtime_folder`` spikard's package (wherever it is installed from)."""

    app_folder: Path
    runtime_folder: Path | None = None
    # Each frame is seen in many stacks; its side (which may resolve its file on disk)
    # is worked out once.
    _known: dict[Frame, str | None] = field(default_factory=dict, repr=False)

    def side(self, frame: Frame) -> str | None:
        if frame not in self._known:
            self._known[frame] = self._side(frame)
        return self._known[frame]

    def _side(self, frame: Frame) -> str | None:
        if frame.is_python:
            return self._python_side(frame.file)
        if RUNTIME_RUST.search(frame.where) or RUNTIME_RUST.search(frame.name):
            return "runtime"
        library = frame.file
        if "libpython" in library or re.search(r"/bin/python[\d.]*$", library):
            return "interpreter"
        if self._inside(library, self.runtime_folder):
            return "runtime"
        if library.endswith(".so") or ".so." in library:
            return "libraries" if "site-packages" in library or "dist-packages" in library else None
        return None  # the C library, or Rust/C code that is not ours: its caller says

    def _python_side(self, file: str) -> str:
        if file.startswith("<frozen") or re.search(r"/lib/python3\.\d+/(asyncio/|runpy\.py|selectors\.py)", file):
            return "interpreter"
        if self._inside(file, self.runtime_folder):
            return "runtime"
        if "/site-packages/" in file or "/dist-packages/" in file or re.search(r"/lib/python3\.\d+/", file):
            return "libraries"
        return "app" if self._inside(file, self.app_folder) else "libraries"

    @staticmethod
    def _inside(file: str, folder: Path | None) -> bool:
        if folder is None or not file.startswith("/"):
            return False
        try:
            Path(file).resolve().relative_to(folder)
        except ValueError:
            return False
        return True


@dataclass
class CpuSplit:
    """Samples by side, the waiting ones apart, and the heaviest functions by self time."""

    samples: int = 0
    idle: int = 0
    sides: Counter[str] = field(default_factory=Counter)
    python_self: Counter[str] = field(default_factory=Counter)
    native_self: Counter[str] = field(default_factory=Counter)
    system_calls: Counter[str] = field(default_factory=Counter)

    @property
    def busy(self) -> int:
        return self.samples - self.idle

    def share(self, side: str) -> float:
        return self.sides[side] / self.busy if self.busy else 0.0

    def top(self, which: str, count: int = 8) -> list[tuple[str, float]]:
        counter = {"python": self.python_self, "native": self.native_self, "kernel": self.system_calls}[which]
        return [(name, n / self.busy) for name, n in counter.most_common(count)] if self.busy else []

    def to_json(self) -> dict[str, object]:
        return {
            "samples": self.samples,
            "idle_samples": self.idle,
            "shares": {side: round(self.share(side), 4) for side in SIDES},
            "top_python": [{"function": name, "self_share": round(s, 4)} for name, s in self.top("python", 15)],
            "top_native": [{"function": name, "self_share": round(s, 4)} for name, s in self.top("native", 15)],
            "system_calls": [{"call": name, "share": round(s, 4)} for name, s in self.top("kernel", 15)],
        }


def read_stacks(text: str) -> list[tuple[list[Frame], int]]:
    """py-spy's raw lines as (frames root first, count)."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        stacks.append(([parse_frame(part) for part in stack.split(";")], int(count)))
    return stacks


def waiting(frames: list[Frame]) -> bool:
    """Whether the stack's thread waits rather than runs (its leaf is a wait)."""
    return _waits(_named_leaf(frames))


def _waits(leaf: Frame) -> bool:
    return not leaf.is_python and leaf.bare_name in WAITS


def split(stacks: list[tuple[list[Frame], int]], classifier: Classifier) -> CpuSplit:
    result = CpuSplit()
    for frames, count in stacks:
        result.samples += count
        leaf = _named_leaf(frames)
        if _waits(leaf):
            result.idle += count
            continue
        in_kernel = not leaf.is_python and not leaf.is_rust and leaf.bare_name in SYSTEM_CALLS
        if in_kernel:
            result.sides["kernel"] += count
        else:
            result.sides[_side_of(frames, classifier)] += count
        if leaf.is_python:
            result.python_self[leaf.short()] += count
        elif in_kernel:
            result.system_calls[leaf.bare_name] += count
        else:
            result.native_self[_native_self(frames).short()] += count
    return result


def _named_leaf(frames: list[Frame]) -> Frame:
    """The innermost frame with a name: where unwinding inside the C library found
    only addresses (``0x7f.. (libc.so.6)``), the function that called into them."""
    for frame in reversed(frames):
        if not frame.name.startswith("0x"):
            return frame
    return frames[-1]


def _native_self(frames: list[Frame]) -> Frame:
    """The frame native self time is charged to: the innermost named frame of code
    with line tables below the innermost Python frame, other than Rust's standard
    library (inlined everywhere: ``NonNull::new`` says nothing) — a C library leaf
    such as ``memcpy`` is charged to the code that called it; else the leaf."""
    for frame in reversed(frames):
        if frame.is_python:
            break
        if frame.where.startswith("/rustc/") or frame.name.startswith("0x"):
            continue
        if frame.is_rust or ":" in frame.where:
            return frame
    return _named_leaf(frames)


def _side_of(frames: list[Frame], classifier: Classifier) -> str:
    for frame in reversed(frames):
        side = classifier.side(frame)
        if side is not None:
            return side
    return "runtime"  # only unnamed native frames: the process's own machinery


def runtime_and_handler_together(stacks: list[tuple[list[Frame], int]], classifier: Classifier) -> int:
    """Samples whose one stack holds both a frame of spikard's Rust and a frame of the
    app's own code: the proof that the two sides were unwound together."""
    together = 0
    for frames, count in stacks:
        rust = any(f.is_rust and RUNTIME_RUST.search(f.where) for f in frames)
        app = any(f.is_python and classifier.side(f) == "app" for f in frames)
        together += count if rust and app else 0
    return together
