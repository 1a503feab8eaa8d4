"""The benchmark suite as data, read from a spikard checkout's ``bench/`` folder:
the workloads (``workloads.json``: each request and the answer it must get) and the
frameworks compared (``frameworks.json``: how each is started and what it needs).
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from spikard_devtools._requests import Probe
from spikard_devtools._served import Answer

WORKLOADS = "workloads.json"
FRAMEWORKS = "frameworks.json"
# Where a checkout keeps the suite, relative to its root.
SUITE_FOLDER = "bench"


class BadSuite(ValueError):
    """The suite's files are missing or malformed; the message says which and where."""


@dataclass(frozen=True)
class Expect:
    """The answer a request must get: a status, and optionally a JSON body equal to
    ``json`` or a body mentioning each of ``mentions`` (error bodies differ between
    frameworks by design, so they are held to what they must say, not to a format)."""

    status: int
    json: Any = None
    has_json: bool = False
    mentions: tuple[str, ...] = ()

    def verdict(self, answer: Answer) -> str | None:
        """None when ``answer`` is the expected one; otherwise what differs."""
        if answer.status != self.status:
            return f"answered {answer.status}, expected {self.status}: {_excerpt(answer.body)}"
        if self.has_json:
            try:
                got = json.loads(answer.body)
            except ValueError:
                return f"answered a body that is not JSON: {_excerpt(answer.body)}"
            if got != self.json:
                return f"answered {_excerpt(answer.body)}, expected {_excerpt(json.dumps(self.json).encode())}"
        text = answer.body.decode("utf-8", "replace")
        missing = [word for word in self.mentions if word not in text]
        if missing:
            return f"the answer does not mention {', '.join(map(repr, missing))}: {_excerpt(answer.body)}"
        return None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status}
        if self.has_json:
            out["json"] = self.json
        if self.mentions:
            out["mentions"] = list(self.mentions)
        return out


def _excerpt(body: bytes, limit: int = 160) -> str:
    text = body.decode("utf-8", "replace")
    return text if len(text) <= limit else text[:limit] + "…"


@dataclass(frozen=True)
class Workload:
    name: str
    title: str
    probe: Probe
    expect: Expect

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "title": self.title, **self.probe.to_json(), "expect": self.expect.to_json()}


@dataclass(frozen=True)
class Framework:
    """A server to measure: its command (``{port}``, ``{python}``, ``{apps}`` and
    ``{root}`` filled in when started), what it needs, and which workloads it serves
    (None: all)."""

    name: str
    label: str
    command: tuple[str, ...]
    install: str = ""
    cwd: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    modules: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()
    build: tuple[str, ...] = ()
    default: bool | str = False  # True, False, or "when installed"
    discard_output: bool = False  # what it prints is not kept (an access log under load)
    stages: bool = False  # a spikard that can keep stage statistics
    workloads: tuple[str, ...] | None = None

    def missing(self) -> str | None:
        """What is not installed for it, or None."""
        absent = [m for m in self.modules if importlib.util.find_spec(m) is None]
        absent += [p for p in self.programs if shutil.which(p) is None]
        if not absent:
            return None
        return f"{', '.join(absent)} not installed" + (f" ({self.install})" if self.install else "")


@dataclass
class Suite:
    folder: Path
    workloads: list[Workload]
    frameworks: list[Framework]
    reference: str | None  # the framework ratios are taken to (FastAPI)
    ceiling: str | None  # the framework whose rate is the measuring limit
    values: dict[str, str] = field(default_factory=dict)

    @property
    def root(self) -> Path:
        return self.folder.parent


def find(given: Path | None, here: Path) -> Path:
    """The suite's folder: ``given``, or ``bench/`` in ``here`` or a folder above it."""
    if given is not None:
        if not given.is_dir():
            raise BadSuite(f"--suite {given}: no such folder")
        if not (given / WORKLOADS).is_file():
            raise BadSuite(f"{given} holds no {WORKLOADS}: --suite names a spikard checkout's bench/ folder")
        return given
    for folder in (here, *here.parents):
        for candidate in (folder, folder / SUITE_FOLDER):
            if (candidate / WORKLOADS).is_file() and (candidate / FRAMEWORKS).is_file():
                return candidate
    raise BadSuite(
        "the benchmark suite lives in a spikard checkout's bench/ folder, and none was found here or above; "
        "run from a checkout, name it with --suite DIR, or benchmark your own app: spikard bench APP"
    )


def load(folder: Path) -> Suite:
    workloads_doc = _read(folder / WORKLOADS)
    frameworks_doc = _read(folder / FRAMEWORKS)
    try:
        workloads = [_workload(entry, folder) for entry in workloads_doc["workloads"]]
        frameworks = [_framework(entry) for entry in frameworks_doc["frameworks"]]
    except OSError as error:
        raise BadSuite(f"{folder}: a workload's file cannot be read: {error.filename}: {error.strerror}") from None
    except (KeyError, TypeError, ValueError) as error:
        raise BadSuite(f"{folder}: a workload or framework is malformed ({type(error).__name__}: {error})") from None
    names = [w.name for w in workloads]
    if len(set(names)) != len(names):
        raise BadSuite(f"{folder / WORKLOADS}: two workloads share a name")
    return Suite(
        folder=folder,
        workloads=workloads,
        frameworks=frameworks,
        reference=frameworks_doc.get("reference"),
        ceiling=frameworks_doc.get("ceiling"),
        values={"python": sys.executable, "apps": str(folder / "apps"), "root": str(folder.parent)},
    )


def _read(path: Path) -> dict[str, Any]:
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise BadSuite(f"cannot read {path}: {error.strerror or error}") from None
    except ValueError as error:
        raise BadSuite(f"{path} is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise BadSuite(f"{path}: expected a JSON object")
    return document


def _workload(entry: dict[str, Any], folder: Path) -> Workload:
    headers: list[tuple[str, str]] = [(str(k), str(v)) for k, v in entry.get("headers", {}).items()]
    body = None
    if "body_file" in entry:
        body = json.dumps(json.loads((folder / entry["body_file"]).read_text(encoding="utf-8"))).encode()
    elif "body" in entry:
        body = json.dumps(entry["body"]).encode()
    if body is not None and not any(name.lower() == "content-type" for name, _ in headers):
        headers.append(("content-type", "application/json"))
    spec = entry["expect"]
    expected, has_json = spec.get("json"), "json" in spec
    if "json_file" in spec:
        expected, has_json = json.loads((folder / spec["json_file"]).read_text(encoding="utf-8")), True
    return Workload(
        name=str(entry["name"]),
        title=str(entry.get("title", entry["name"])),
        probe=Probe(str(entry["method"]).upper(), str(entry["path"]), tuple(headers), body, source="suite"),
        expect=Expect(int(spec["status"]), expected, has_json, tuple(spec.get("mentions", ()))),
    )


def _framework(entry: dict[str, Any]) -> Framework:
    workloads = entry.get("workloads")
    return Framework(
        name=str(entry["name"]),
        label=str(entry.get("label", entry["name"])),
        command=tuple(str(part) for part in entry["command"]),
        install=str(entry.get("install", "")),
        cwd=entry.get("cwd"),
        env=tuple((str(k), str(v)) for k, v in entry.get("env", {}).items()),
        modules=tuple(entry.get("modules", ())),
        programs=tuple(entry.get("programs", ())),
        build=tuple(entry.get("build", ())),
        default=entry.get("default", False),
        stages=bool(entry.get("stages", False)),
        discard_output=bool(entry.get("discard_output", False)),
        workloads=None if workloads is None else tuple(workloads),
    )
