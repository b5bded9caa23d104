"""Mutation fuzz of the shipped world files, each case run as a user would.

Every case takes one shipped world (``worlds/*.yaml``) and applies one to three seeded
mutations: delete, duplicate or retype a key, extreme and non-finite numbers, numbers
scaled up or down, another valid name (backend, robot model, task, obstacle type), wrong
nesting, unknown keys, a subtree from another world, huge lists, YAML aliases that expand
or refer to themselves, deep nesting, and broken YAML text (stray characters, cut files,
tabs, invalid UTF-8, control characters). The case is written to a file and given to
``sern check`` through the CLI's own entry point (in this process, exit code and output
captured); a case that passes is then given to ``sern run CASE --episodes 1 --quiet``,
its one episode truncated at ``--run-steps`` control steps so thousands of cases take
minutes. The truncation is this harness's, not the CLI's: everything else (world
loading, backend, task, policy, metrics, plot) runs as in a user's run.

A case is *mishandled* when:
- any command raises (a traceback), or exits with a code other than 0 or 2;
- ``sern check`` exits 2 with a problem line that does not start ``FILE:LINE:``;
- a world ``sern check`` accepts does not run (``sern run`` exits other than 0). A
  shipped checkpoint that cannot drive the mutated world is a clean refusal (exit 2
  naming the checkpoint), counted as ``policy_refused``; the world must then run with
  ``--policy scripted``.
- a case takes longer than ``--case-timeout`` seconds.

    .venv/bin/python benchmarks/world_fuzz.py --cases 2000 [--seed 0] [--keep DIR]

Ends with one JSON line: {"cases", "mishandled", "refused", "valid", "ran",
"policy_refused", "seconds", "outcomes", "examples"}.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import json
import math
import os
import random
import re
import shutil
import signal
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from sern.cli import main as sern_main  # noqa: E402
from worlds.loader import WORLDS_DIR  # noqa: E402

# Numbers that break code which trusts its input: zero, negatives, tiny and huge values,
# integers beyond 64 bits, and the non-finite ones.
EXTREME_NUMBERS: list[Any] = [
    0,
    -1,
    -0.0,
    1e-30,
    1e30,
    -1e30,
    1.7976931348623157e308,
    2**31,
    2**63,
    2**64 + 1,
    10**400,
    math.nan,
    math.inf,
    -math.inf,
    0.5,
    4096,
    4097,
    1e6,
]
# Values at the edges of the format's ranges (worlds/ranges.py): valid for some keys, so
# some mutated worlds run at the extremes a real world may have.
EDGE_VALUES: list[Any] = [1, 2, 20, 200, 360, 1000, 1024, 2000, 3600, 4096, 1e-3, 0.05, 359.9, 999.9]
SCALES = [0.0, 0.01, 0.1, 0.5, 0.9, 1.1, 2.0, 3.0, 10.0, 100.0, 1e4]
RETYPES: list[Any] = ["text", "", "12", True, False, None, [], {}, [1, 2], {"a": 1}, 3, 2.5]
NAMES = {
    # not unity: a valid unity world runs only with a Unity side to connect to (tests/test_mlagents.py)
    "backend": ["pybullet", "kinematic", "gazebo"],
    "model": ["husky", "box", "disc", "jackal"],
    "type": ["box", "cylinder", "cone"],
    "name": ["navigation", "flocking", "coverage", "foraging", "pursuit", "transport", "x y", "../up", ""],
}
UNKNOWN_KEYS = ["colour", "size", "radius", "speed_mps", "count ", "Name", "params", "1", "yaw"]


@dataclass
class Case:
    index: int
    world: str
    mutations: list[str] = field(default_factory=list)
    text: str | bytes = ""


@dataclass
class Outcome:
    kind: str  # refused | ran | policy_refused | mishandled
    detail: str = ""


# ---- mutations on parsed data --------------------------------------------------------------


def _paths(node: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key path in ``node`` (mappings and lists), parents before children."""
    out = [prefix] if prefix else []
    if isinstance(node, dict):
        for k, v in node.items():
            out += _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out += _paths(v, (*prefix, i))
    return out


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _set(data: Any, path: tuple, value: Any) -> None:
    _get(data, path[:-1])[path[-1]] = value


def _numbers(data: Any) -> list[tuple]:
    return [p for p in _paths(data) if isinstance(_get(data, p), int | float) and not isinstance(_get(data, p), bool)]


def _show(path: tuple) -> str:
    return ".".join(str(p) for p in path)


def mutate_data(data: dict, rng: random.Random, others: list[dict]) -> str:
    """Apply one data mutation in place; return what it did."""
    paths = _paths(data)
    numbers = _numbers(data)
    # Mild changes (scale, count, name) often leave a valid world, which then runs.
    kind = rng.choice(
        ["scale"] * 5
        + ["count", "name", "extreme", "edge"] * 2
        + ["delete", "retype", "nest", "unknown", "graft", "huge"]
    )
    if kind == "delete":
        path = rng.choice(paths)
        parent = _get(data, path[:-1])
        del parent[path[-1]]
        return f"delete {_show(path)}"
    if kind == "retype":
        path = rng.choice(paths)
        value = copy.deepcopy(rng.choice(RETYPES))
        _set(data, path, value)
        return f"retype {_show(path)} = {value!r}"
    if kind in ("extreme", "scale", "edge") and numbers:
        path = rng.choice(numbers)
        if kind == "extreme":
            value = rng.choice(EXTREME_NUMBERS)
        elif kind == "edge":
            value = rng.choice(EDGE_VALUES)
        else:
            old = _get(data, path)
            value = old * rng.choice(SCALES)
            value = round(value) if isinstance(old, int) else value
        _set(data, path, value)
        return f"{kind} {_show(path)} = {value!r}"[:200]
    if kind == "name":
        named = [p for p in paths if isinstance(p[-1], str) and p[-1] in NAMES]
        if named:
            path = rng.choice(named)
            value = rng.choice(NAMES[path[-1]])
            _set(data, path, value)
            return f"name {_show(path)} = {value!r}"
    if kind == "count":
        counts = [p for p in paths if p[-1] in ("count", "items", "evaders", "landmarks", "neighbours", "beams")]
        if counts:
            path = rng.choice(counts)
            value = rng.choice([1, 2, 3, 5, 8, 16, 33, 100, 1000])
            _set(data, path, value)
            return f"count {_show(path)} = {value}"
    if kind == "nest":
        path = rng.choice(paths)
        value = _get(data, path)
        how = rng.choice(["list", "dict", "unwrap"])
        if how == "list":
            _set(data, path, [value])
        elif how == "dict":
            _set(data, path, {str(path[-1]): value})
        elif isinstance(value, dict) and value:
            _set(data, path, next(iter(value.values())))
        elif isinstance(value, list) and value:
            _set(data, path, value[0])
        return f"nest({how}) {_show(path)}"
    if kind == "unknown":
        maps = [()] + [p for p in paths if isinstance(_get(data, p), dict)]
        path = rng.choice(maps)
        key = rng.choice(UNKNOWN_KEYS)
        _get(data, path)[key] = rng.choice([1, 1.5, "x", [1, 2], {"b": 2}])
        return f"unknown key {_show((*path, key))}"
    if kind == "graft":
        other = rng.choice(others)
        key = rng.choice(sorted(other))
        data[key] = copy.deepcopy(other[key])
        return f"graft {key} from {other.get('name')}"
    if kind == "huge":
        lists = [p for p in paths if isinstance(_get(data, p), list) and _get(data, p)]
        if lists:
            path = rng.choice(lists)
            items = _get(data, path)
            n = rng.choice([50, 1000, 5000])
            _set(data, path, [copy.deepcopy(items[k % len(items)]) for k in range(n)])
            return f"huge {_show(path)} x{n}"
    path = rng.choice(paths)  # fallback: delete
    del _get(data, path[:-1])[path[-1]]
    return f"delete {_show(path)}"


# ---- mutations on text ------------------------------------------------------------------------


def mutate_text(text: str, rng: random.Random) -> tuple[str | bytes, str]:
    lines = text.splitlines(keepends=True)
    kind = rng.choice(
        ["char", "char", "cut", "tab", "dup_line", "swap", "indent", "bytes", "control", "bomb", "self", "deep", "docs"]
    )
    if kind == "char":
        at = rng.randrange(len(text))
        ch = rng.choice([":", "[", "]", "{", "}", '"', "'", "-", "&", "*", "!", "%", "|", ">", "#", ",", "@", "`"])
        if rng.random() < 0.5:
            return text[:at] + ch + text[at:], f"insert {ch!r} at {at}"
        return text[:at] + text[at + 1 :], f"delete char at {at}"
    if kind == "cut":
        at = rng.randrange(len(text))
        return text[:at], f"cut at {at}"
    if kind == "tab":
        k = rng.randrange(len(lines))
        lines[k] = "\t" + lines[k]
        return "".join(lines), f"tab on line {k + 1}"
    if kind == "dup_line":
        k = rng.randrange(len(lines))
        lines.insert(k, lines[k])
        return "".join(lines), f"duplicate line {k + 1}"
    if kind == "swap":
        a, b = rng.randrange(len(lines)), rng.randrange(len(lines))
        lines[a], lines[b] = lines[b], lines[a]
        return "".join(lines), f"swap lines {a + 1} and {b + 1}"
    if kind == "indent":
        k = rng.randrange(len(lines))
        lines[k] = rng.choice([" ", "   ", "      "]) + lines[k]
        return "".join(lines), f"indent line {k + 1}"
    if kind == "bytes":
        raw = text.encode()
        at = rng.randrange(len(raw))
        return raw[:at] + bytes([rng.choice([0xFF, 0xC3, 0x80, 0xFE])]) + raw[at:], f"invalid byte at {at}"
    if kind == "control":
        at = rng.randrange(len(text))
        ch = rng.choice(["\x00", "\x07", "\x1b", "\ufffe"])
        return text[:at] + ch + text[at:], f"control char {ch!r} at {at}"
    if kind == "bomb":
        depth = rng.choice([3, 6, 12])
        bomb = ["lol0: &l0 [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]"]
        bomb += [f"lol{i}: &l{i} [{', '.join([f'*l{i - 1}'] * 10)}]" for i in range(1, depth)]
        return text + "\n" + "\n".join(bomb) + "\n", f"alias bomb 10^{depth}"
    if kind == "self":
        return text + "\nloop: &x [1, *x]\n", "self-referring alias"
    if kind == "deep":
        n = rng.choice([40, 500, 5000])
        return text + "\ndeep: " + "[" * n + "1" + "]" * n + "\n", f"nesting {n} deep"
    return text + "\n---\nname: second\n", "second document"


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def make_case(index: int, seed: int, worlds: dict[str, dict]) -> Case:
    """Case ``index`` of the run seeded ``seed``: the same case whatever else runs."""
    rng = random.Random(f"{seed}:{index}")
    name = rng.choice(sorted(worlds))
    case = Case(index, name)
    data = copy.deepcopy(worlds[name])
    others = [w for n, w in sorted(worlds.items()) if n != name]
    text_mutation = rng.random() < 0.2
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        case.mutations.append(mutate_data(data, rng, others))
    text = yaml.dump(data, Dumper=_DUMPER, sort_keys=False, allow_unicode=True)
    if text_mutation:
        text, what = mutate_text(text, rng)
        case.mutations.append(what)
    case.text = text
    return case


# ---- running a case as a user would -------------------------------------------------------------


class CaseTimeout(Exception):
    pass


@contextlib.contextmanager
def _deadline(seconds: float):
    def expire(signum, frame):
        raise CaseTimeout(f"took longer than {seconds:g} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@contextlib.contextmanager
def episodes_capped_at(steps: int):
    """Truncate every episode at ``steps`` control steps (this harness's budget)."""
    from sim_bridge.env import MultiRobotEnv

    original = MultiRobotEnv.__init__

    def init(self, *args, **kwargs):
        original(self, *args, **kwargs)
        self.max_steps = min(self.max_steps, steps)

    MultiRobotEnv.__init__ = init
    try:
        yield
    finally:
        MultiRobotEnv.__init__ = original


def run_cli(argv: list[str]) -> tuple[int | None, str, str]:
    """``sern ARGV`` in this process: (exit code, stdout, stderr); code None = it raised
    (stderr then holds the traceback)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = sern_main(argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except CaseTimeout:
            raise
        except BaseException:  # any escape is what this harness counts
            err.write(traceback.format_exc())
            code = None
    return code, out.getvalue(), err.getvalue()


def _unlocated(stderr: str, path: str) -> list[str]:
    """Problem lines in ``sern check``'s output that do not start ``FILE:LINE:``."""
    located = re.compile(re.escape(path) + r":\d+: ")
    bad = []
    for line in stderr.splitlines():
        text = line.removeprefix("error: ").strip()
        if not text or re.fullmatch(re.escape(path) + r": \d+ problems", text):
            continue
        if not located.match(text):
            bad.append(line)
    return bad


def run_case(case: Case, workdir: Path, run_steps: int, timeout_s: float) -> Outcome:
    path = workdir / f"case_{case.index}.yaml"
    path.write_bytes(case.text if isinstance(case.text, bytes) else case.text.encode())
    try:
        with _deadline(timeout_s):
            code, _, err = run_cli(["check", str(path)])
            if code is None or code not in (0, 2):
                return Outcome("mishandled", f"sern check exited {code}: {err[-800:]}")
            if code == 2:
                if "Traceback" in err:
                    return Outcome("mishandled", f"traceback from sern check: {err[-800:]}")
                bad = _unlocated(err, str(path))
                if bad or not err.strip():
                    return Outcome("mishandled", f"sern check message without FILE:LINE: {bad[:3] or err!r}")
                return Outcome("refused")
            out = workdir / f"run_{case.index}"
            with episodes_capped_at(run_steps):
                code, _, err = run_cli(["run", str(path), "--episodes", "1", "--quiet", "--out", str(out)])
                if code == 2 and "policies/checkpoints/" in err and "Traceback" not in err:
                    code2, _, err2 = run_cli(
                        ["run", str(path), "--episodes", "1", "--quiet", "--out", str(out), "--policy", "scripted"]
                    )
                    if code2 == 0:
                        return Outcome("policy_refused", err.strip()[-300:])
                    code, err = code2, err2
            shutil.rmtree(out, ignore_errors=True)
            if code != 0:
                return Outcome("mishandled", f"valid world did not run (sern run exited {code}): {err[-1500:]}")
            return Outcome("ran")
    except CaseTimeout as exc:
        return Outcome("mishandled", str(exc))
    finally:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def _c_output_silenced():
    """PyBullet's C code writes URDF warnings straight to fds 1 and 2, around the captured
    Python streams: send them to /dev/null, and yield a stream on the real stderr."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    real_stderr = os.fdopen(os.dup(2), "w")
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        os.dup2(devnull, 2)
        yield real_stderr
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, devnull):
            os.close(fd)
        real_stderr.close()


def fuzz(cases: int, seed: int, run_steps: int, timeout_s: float, keep: Path | None, progress: bool) -> dict:
    import matplotlib
    import torch

    matplotlib.use("Agg")  # plots are written, never shown
    # The policies' small MLPs gain nothing from threads; on a busy 2-core machine torch's
    # default two threads made each checkpoint load ~25x slower.
    torch.set_num_threads(1)
    worlds = {p.stem: yaml.load(p.read_text(), Loader=_LOADER) for p in sorted(WORLDS_DIR.glob("*.yaml"))}
    counts = {"refused": 0, "ran": 0, "policy_refused": 0, "mishandled": 0}
    examples = []
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="world_fuzz_") as tmp, _c_output_silenced() as log:
        workdir = Path(tmp)
        for i in range(cases):
            case = make_case(i, seed, worlds)
            outcome = run_case(case, workdir, run_steps, timeout_s)
            counts[outcome.kind] += 1
            if outcome.kind == "mishandled":
                examples.append(
                    {"case": i, "world": case.world, "mutations": case.mutations, "detail": outcome.detail[-1500:]}
                )
                if keep is not None:
                    keep.mkdir(parents=True, exist_ok=True)
                    data = case.text if isinstance(case.text, bytes) else case.text.encode()
                    (keep / f"case_{seed}_{i}.yaml").write_bytes(data)
            if progress and (i + 1) % 50 == 0:
                rate = (i + 1) / (time.monotonic() - started)
                print(f"{i + 1}/{cases} cases, {counts}, {rate:.1f} cases/s", file=log, flush=True)
    return {
        "cases": cases,
        "mishandled": counts["mishandled"],
        "refused": counts["refused"],
        "valid": counts["ran"] + counts["policy_refused"],
        "ran": counts["ran"],
        "policy_refused": counts["policy_refused"],
        "seed": seed,
        "run_steps": run_steps,
        "seconds": round(time.monotonic() - started, 1),
        "examples": examples[:10],
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000, help="number of mutated worlds (default 1000)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    parser.add_argument("--run-steps", type=int, default=10, help="control steps each valid case runs (default 10)")
    parser.add_argument("--case-timeout", type=float, default=120.0, help="seconds one case may take (default 120)")
    parser.add_argument("--keep", type=Path, default=None, help="write mishandled cases to this folder")
    parser.add_argument("--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    if args.cases < 1 or args.run_steps < 1 or args.case_timeout <= 0:
        parser.error("--cases, --run-steps and --case-timeout must be positive")
    result = fuzz(args.cases, args.seed, args.run_steps, args.case_timeout, args.keep, not args.quiet)
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
