"""ament_python install of sern: packages, console scripts in lib/sern, data in share/sern."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "sern"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(include=["sern*", "sim_bridge*", "worlds*", "policies*", "ros_nodes*"]),
    package_data={
        "worlds": ["*.yaml", "*.md"],
        "sim_bridge.backends": ["models/*.urdf"],
        "policies": ["checkpoints/*"],
    },
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*_launch.yaml")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/worlds", glob("worlds/*.yaml")),
    ],
    install_requires=["setuptools"],
    extras_require={"ray": ["ray==2.60.0"]},
    zip_safe=False,
    maintainer="sern maintainers",
    maintainer_email="maintainers@sern.dev",
    description="Physical robots and their virtual twins side by side, on ROS 2.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "sern = sern.cli:main",
            "sim_node = ros_nodes.sim_node:main",
            "robot_stand_in = ros_nodes.robot_stand_in:main",
            "twin_bridge = ros_nodes.twin_bridge:main",
            "policy_node = ros_nodes.policy_node:main",
            "recorder = ros_nodes.recorder:main",
            "twin_monitor = ros_nodes.twin_monitor:main",
            "site_link = ros_nodes.site_link:main",
            "unity_endpoint = ros_nodes.unity_endpoint:main",
        ],
    },
)
