"""World files: every class of bad input gives one clear message (file, line, key, reason)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import NAVIGATION, REPO, write_world
from test_cli import SERN

from worlds import WorldFileError, load_world, load_world_text
from worlds.loader import list_worlds


def _error(path) -> WorldFileError:
    with pytest.raises(WorldFileError) as info:
        load_world(path)
    return info.value


def test_shipped_worlds_load():
    assert "navigation" in list_worlds()
    world = load_world(NAVIGATION)
    assert world.num_robots == 4
    assert world.physics_rate_hz == 240 and world.control_rate_hz == 20
    assert [r.name for r in world.robot_entries()] == ["robot_0", "robot_1", "robot_2", "robot_3"]
    assert load_world("navigation") == load_world(NAVIGATION).model_copy(update={"source": "navigation"})


def test_unknown_key_names_key_line_and_allowed_keys(tmp_path, navigation_data):
    navigation_data["arena"]["colour"] = "red"
    err = _error(write_world(tmp_path, navigation_data))
    text = str(err)
    assert "world.yaml:" in text
    assert "arena.colour: unknown key" in text
    assert "size_m" in text  # lists what is allowed there
    assert err.problems[0].line is not None


def test_unknown_key_in_task_params(tmp_path, navigation_data):
    navigation_data["task"]["params"]["goal_tolerence_m"] = 0.3
    err = _error(write_world(tmp_path, navigation_data))
    assert "task.params.goal_tolerence_m: unknown key" in str(err)
    assert "goal_tolerance_m" in str(err)


def test_wrong_type(tmp_path, navigation_data):
    navigation_data["robots"][0]["count"] = "four"
    err = _error(write_world(tmp_path, navigation_data))
    assert "robots[0].count" in str(err) and "valid integer" in str(err) and '"four"' in str(err)


def test_number_as_string_is_a_type_error(tmp_path, navigation_data):
    navigation_data["arena"]["size_m"] = [18.0, "12"]
    err = _error(write_world(tmp_path, navigation_data))
    assert "arena.size_m[1]" in str(err) and "valid number" in str(err)


def test_negative_size(tmp_path, navigation_data):
    navigation_data["obstacles"][0]["size_m"] = [-1.0, 2.0]
    err = _error(write_world(tmp_path, navigation_data))
    assert "obstacles[0].size_m[0]" in str(err) and "greater than 0" in str(err)


def test_unknown_obstacle_type_and_robot_model(tmp_path, navigation_data):
    navigation_data["obstacles"][1]["type"] = "cone"
    navigation_data["robots"][0]["model"] = "huskie"
    err = _error(write_world(tmp_path, navigation_data))
    keys = [p.key for p in err.problems]
    assert "obstacles[1]" in keys and "robots[0].model" in keys
    assert "'box', 'cylinder'" in str(err) and "box, disc, husky" in str(err)


def test_start_inside_obstacle(tmp_path, navigation_data):
    navigation_data["robots"][0]["spawn"] = {"poses": [[0.0, 0.2, 0], [-7, -3, 0], [-7, 0, 0], [-7, 3, 0]]}
    err = _error(write_world(tmp_path, navigation_data))
    assert "robots[0].spawn.poses[0]" in str(err) and "inside obstacles[2]" in str(err)


def test_overlapping_starts(tmp_path, navigation_data):
    navigation_data["robots"][0]["spawn"] = {"poses": [[-7, -3, 0], [-7, -2.5, 0], [-7, 0, 0], [-7, 3, 0]]}
    err = _error(write_world(tmp_path, navigation_data))
    assert "robots[0].spawn.poses[1]" in str(err)
    assert "overlaps robots[0].spawn.poses[0]" in str(err)


def test_start_in_the_wall_and_count_mismatch(tmp_path, navigation_data):
    navigation_data["robots"][0]["spawn"] = {"poses": [[-8.8, 0, 0], [-7, 3, 0]]}
    err = _error(write_world(tmp_path, navigation_data))
    assert "count is 4 but 2 poses" in str(err)
    assert "arena wall" in str(err)


def test_goal_outside_arena(tmp_path, navigation_data):
    navigation_data["task"]["params"]["goals"] = {"poses": [[20.0, 0.0], [7, 1], [7, -1], [7, 3]]}
    err = _error(write_world(tmp_path, navigation_data))
    assert "task.params.goals.poses[0]" in str(err) and "outside the arena" in str(err)


def test_goal_region_outside_arena(tmp_path, navigation_data):
    navigation_data["task"]["params"]["goals"] = {"region": {"min": [6.5, -4.5], "max": [12.0, 4.5]}}
    err = _error(write_world(tmp_path, navigation_data))
    assert "task.params.goals.region" in str(err) and "outside the arena" in str(err)


def test_spawn_region_too_small(tmp_path, navigation_data):
    navigation_data["robots"][0]["spawn"]["region"] = {"min": [-8.0, -0.5], "max": [-7.0, 0.5]}
    err = _error(write_world(tmp_path, navigation_data))
    assert "robots[0].spawn.region" in str(err) and "cannot place 4 husky robots" in str(err)


def test_rates_must_divide(tmp_path, navigation_data):
    navigation_data["control_rate_hz"] = 7
    err = _error(write_world(tmp_path, navigation_data))
    assert "control_rate_hz: must divide physics_rate_hz (240)" in str(err)


def test_missing_required_key(tmp_path, navigation_data):
    del navigation_data["arena"]
    err = _error(write_world(tmp_path, navigation_data))
    assert "arena: required key is missing" in str(err)


def test_missing_file(tmp_path):
    err = _error(tmp_path / "nope.yaml")
    assert "nope.yaml" in str(err) and "no such file" in str(err)


def test_directory_and_non_utf8_file(tmp_path):
    assert "is a directory" in str(_error(tmp_path))
    binary = tmp_path / "binary.yaml"
    binary.write_bytes(b"name: \xff\xfe\n")
    assert "not UTF-8" in str(_error(binary))


@pytest.mark.skipif(os.geteuid() == 0, reason="root reads files whatever their mode")
def test_unreadable_file(tmp_path):
    path = tmp_path / "secret.yaml"
    path.write_text("name: x\n")
    path.chmod(0)
    assert "permission denied" in str(_error(path))


def test_invalid_yaml_names_line():
    with pytest.raises(WorldFileError) as info:
        load_world_text("name: x\narena: {size_m: [1, 2]\nrobots: []\n", source="broken.yaml")
    text = str(info.value)
    assert text.startswith("broken.yaml:") and "invalid YAML" in text
    assert info.value.problems[0].line in (2, 3, 4)


def test_not_a_mapping():
    with pytest.raises(WorldFileError, match="a world file is a mapping"):
        load_world_text("- just\n- a list\n", source="list.yaml")
    with pytest.raises(WorldFileError, match="this one is empty"):
        load_world_text("", source="empty.yaml")


def test_line_numbers_point_at_the_key(tmp_path, navigation_data):
    navigation_data["robots"][0]["count"] = 0
    path = write_world(tmp_path, navigation_data)
    err = _error(path)
    line = err.problems[0].line
    assert "count:" in path.read_text().splitlines()[line - 1]


def test_cli_check_exit_code_and_no_traceback(tmp_path, navigation_data):
    navigation_data["robots"][0]["count"] = -2
    bad = write_world(tmp_path, navigation_data)
    sern = [sys.executable, "-m", "sern.cli"]
    ok = subprocess.run([*sern, "check", str(NAVIGATION)], capture_output=True, text=True, cwd=REPO)
    assert ok.returncode == 0, ok.stderr
    assert "ok (4 robots" in ok.stdout
    res = subprocess.run([*sern, "check", str(bad)], capture_output=True, text=True, cwd=REPO)
    assert res.returncode == 2
    assert "robots[0].count" in res.stderr and "greater than 0" in res.stderr
    assert "Traceback" not in res.stderr


def test_changes_to_a_loaded_world_are_checked_like_the_file():
    from worlds import with_changes

    world = with_changes(load_world("navigation"), {"task.params.reward.collision_penalty": 20.0})
    assert world.task.params["reward"]["collision_penalty"] == 20.0
    assert "collision_penalty = 20.0" in world.source
    with pytest.raises(WorldFileError, match=r"colision_penalty: unknown key; allowed here: .*collision_penalty"):
        with_changes(load_world("navigation"), {"task.params.reward.colision_penalty": 1.0})
    with pytest.raises(WorldFileError, match="name is not a mapping"):
        with_changes(load_world("navigation"), {"name.x": 1})


def test_train_refuses_a_bad_world_change_with_exit_2():
    for change, message in [("task.params.reward.colision=3", "unknown key"), ("foo", "expected KEY=VALUE")]:
        run = subprocess.run(
            [SERN, "train", "navigation", "--steps", "1", "--world-set", change],
            capture_output=True,
            text=True,
            cwd=REPO,
        )
        assert run.returncode == 2, run.stderr
        assert message in run.stderr and "Traceback" not in run.stderr
