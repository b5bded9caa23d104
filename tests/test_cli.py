"""The ``sern`` command line end to end, as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import yaml
from conftest import NAVIGATION, REPO, write_world

from sern.cli import main as cli_main

SERN = shutil.which("sern", path=str(Path(sys.executable).parent)) or "sern"


def _sern(*args, cwd=REPO):
    return subprocess.run([SERN, *args], capture_output=True, text=True, cwd=cwd, timeout=600)


def test_help_explains_itself():
    top = _sern("--help")
    assert top.returncode == 0
    assert "run" in top.stdout and "check" in top.stdout
    run = _sern("run", "--help")
    assert run.returncode == 0
    for flag in ("--policy", "--episodes", "--seed", "--out", "metrics.json", "trajectories.png"):
        assert flag in run.stdout


def test_run_writes_metrics_and_trajectories(tmp_path):
    out = tmp_path / "run"
    res = _sern("run", str(NAVIGATION), "--episodes", "1", "--seed", "5", "--out", str(out))
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("episodes", "success_rate", "collision_rate", "spl", "robots", "per_episode"):
        assert key in metrics
    assert metrics["episodes"] == 1 and metrics["seeds"] == [5]
    assert [r["robot"] for r in metrics["robots"]] == ["robot_0", "robot_1", "robot_2", "robot_3"]
    assert len(metrics["per_episode"][0]["robots"]) == 4
    assert 0.0 <= metrics["success_rate"] <= 1.0
    png = (out / "trajectories.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 20_000
    # The table on stdout agrees with the file.
    assert f"success rate {metrics['success_rate']:.0%}" in res.stdout
    assert "Traceback" not in res.stderr


def test_run_by_world_name_from_anywhere(tmp_path):
    res = _sern("run", "navigation", "--episodes", "1", "--policy", "idle", "--out", str(tmp_path / "o"), cwd=tmp_path)
    # idle never arrives: a finished run, success 0 %.
    assert res.returncode == 0, res.stderr
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["success_rate"] == 0.0


def test_run_falls_back_to_the_baseline_when_the_shipped_checkpoint_does_not_fit(tmp_path, capsys):
    """open_field is a navigation world whose robots see less (fewer lidar beams) than the
    shipped navigation checkpoint was trained on: with no --policy the run says so and drives
    the scripted baseline; --policy learned insists, and is refused."""
    code, err = _sern_in_process(capsys, "run", "open_field", "--episodes", "1", "--out", str(tmp_path / "o"))
    assert code == 0, err
    assert "running the scripted baseline: the shipped checkpoint does not fit this world" in err
    assert "expects observations of size" in err
    metrics = json.loads((tmp_path / "o" / "metrics.json").read_text())
    assert metrics["policy"] == "scripted" and metrics["success_rate"] == 1.0
    code, err = _sern_in_process(capsys, "run", "open_field", "--policy", "learned", "--out", str(tmp_path / "l"))
    assert code == 2 and "expects observations of size" in err, err
    args = ("run", "navigation", "--backend", "kinematic", "--episodes", "1", "--out", str(tmp_path / "n"))
    code, err = _sern_in_process(capsys, *args)
    assert code == 0 and "scripted baseline" not in err, err  # a world the checkpoint fits: the checkpoint
    assert json.loads((tmp_path / "n" / "metrics.json").read_text())["policy"] == "learned"


def test_bad_inputs_exit_2_with_a_message_not_a_traceback(tmp_path, navigation_data):
    navigation_data["robots"][0]["spawn"] = {"poses": [[0.0, 0.0, 0.0]]}
    bad_world = write_world(tmp_path, navigation_data)
    cases = [
        (("run", str(bad_world)), "robots[0].spawn.poses[0]"),
        (("run", str(tmp_path / "missing.yaml")), "no such file"),
        (("run", str(NAVIGATION), "--policy", "greedy"), "unknown policy 'greedy'"),
        (("run", str(NAVIGATION), "--episodes", "0"), "must be at least 1"),
        (("run", str(NAVIGATION), "--backend", "gazebo"), "unknown backend 'gazebo'"),
        (("fly",), "invalid choice"),
    ]
    for args, message in cases:
        res = _sern(*args, "--out", str(tmp_path / "x")) if args[0] == "run" else _sern(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "x" / "metrics.json").exists()


def _sern_in_process(capsys, *args) -> tuple[int, str]:
    """``sern ARGS`` through the same ``main`` the console script calls, in this process
    (no interpreter and torch start per case): its exit code and stderr."""
    capsys.readouterr()
    code = cli_main(list(args))
    return code, capsys.readouterr().err


def test_train_refuses_settings_that_cannot_work_with_exit_2(tmp_path, capsys):
    res = _sern("train", "navigation", "--set", "targets=true", "--steps", "1", "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "the navigation task's has no landmarks" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr  # the console script itself; the rest by its main
    cases = [
        (("coverage", "--set", "targets=true", "--set", "discrete_per_axis=3"), "no command grid"),
        (("coverage", "--set", "learning_rat=0.1"), "--set learning_rat: not a training setting"),
        (("navigation", "--set", "steer_search=true"), "the navigation baseline does not search"),
        (("navigation", "--set", "critic_state=true"), "the navigation task has no critic state"),
        (("coverage", "--set", "steer_search=true", "--set", "targets=true"), "steer_search runs the baseline"),
        (("coverage", "--set", "memory=8", "--set", "memory_chunk=5"), "memory_chunk (5) must divide rollout_steps"),
        (("coverage", "--world-set", "task.params.relay_radius_m=-1"), "task.params.relay_radius_m"),
    ]
    for args, message in cases:
        code, err = _sern_in_process(capsys, "train", *args, "--steps", "1", "--out", str(tmp_path / "x"))
        assert code == 2, (args, err)
        assert message in err, (args, err)
    assert not (tmp_path / "x.pt").exists()
    rollouts = [
        (("coverage", "--steps", "5"), "--steps and --worlds are PPO settings"),
        (("coverage", "--set", "episode=3"), "--set episode: not a rollout iteration setting"),
        (("coverage", "--set", "steer_on=sideways"), "steer_on must be one of"),
        (("coverage", "--set", "outcome=sucess"), "'sucess' is not a coverage episode metric"),
        (("navigation",), "the navigation baseline does not search"),
    ]
    for args, message in rollouts:
        code, err = _sern_in_process(capsys, "train", "--algo", "rollouts", *args, "--out", str(tmp_path / "y"))
        assert code == 2, (args, err)
        assert message in err, (args, err)
    assert not (tmp_path / "y.pt").exists()


def test_a_backend_that_cannot_run_the_world_exits_2_naming_the_key(tmp_path, navigation_data):
    foraging = yaml.safe_load((REPO / "worlds" / "foraging.yaml").read_text())
    foraging["backend"] = "pybullet"
    disc_on_pybullet = write_world(tmp_path, foraging, "disc.yaml")
    disc = "robots[0].model: the pybullet backend cannot simulate model 'disc'; backends that can: kinematic, unity"
    navigation_data["backend"] = "gazebo"
    gazebo = write_world(tmp_path, navigation_data, "gazebo.yaml")
    cases = [
        (("check", str(gazebo)), "backend: "),
        (("check", str(disc_on_pybullet)), disc),
        (("run", "foraging", "--backend", "pybullet", "--out", str(tmp_path / "x")), f"(backend = pybullet): {disc}"),
        (("eval", "scripted", "foraging", "--backend", "pybullet", "--episodes", "1"), disc),
    ]
    for args, message in cases:
        res = _sern(*args)
        assert res.returncode == 2, (args, res.stderr)
        assert message in res.stderr, (args, res.stderr)
        assert "Traceback" not in res.stderr
    assert not (tmp_path / "x").exists()


def test_eval_changes_the_world_for_one_command_with_world_set():
    res = _sern("eval", "scripted", "coverage", "--world-set", "task.params.max_episode_s=2", "--episodes", "1")
    assert res.returncode == 0, res.stderr
    metrics = json.loads(res.stdout.strip().splitlines()[-1])
    assert metrics["episode_s"] == 2.0  # the changed time limit, not the file's 30 s
    for args, message in [
        (("--world-set", "task.params.relay_radius_m"), "expected KEY=VALUE"),
        (("--world-set", "task.params.relay_radius_m=-1"), "task.params.relay_radius_m"),
    ]:
        bad = _sern("eval", "scripted", "coverage", *args, "--episodes", "1")
        assert bad.returncode == 2 and message in bad.stderr and "Traceback" not in bad.stderr, bad.stderr
