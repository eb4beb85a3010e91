"""conda's configuration as condafix reads it: envs dirs, package caches, channel names, credentials."""

from __future__ import annotations

from pathlib import Path

import pytest

from condafix.env import condarc


def config(tmp_path: Path, text: str = "", **env: str) -> condarc.CondaConfig:
    rc = tmp_path / "condarc"
    rc.write_text(text)
    return condarc.load({"HOME": str(tmp_path / "home"), "CONDARC": str(rc), **env})


def test_envs_dirs_and_pkgs_dirs_in_condas_order(tmp_path: Path) -> None:
    cfg = config(tmp_path, "envs_dirs: [/data/envs]\npkgs_dirs: [/data/pkgs]\n", CONDA_EXE="/opt/conda/bin/conda")
    assert cfg.root_prefix == Path("/opt/conda")
    assert cfg.envs_dirs == (Path("/data/envs"), Path("/opt/conda/envs"), tmp_path / "home" / ".conda" / "envs")
    assert cfg.pkgs_dirs[:2] == (Path("/data/pkgs"), Path("/opt/conda/pkgs"))
    # the variables beat the files (conda's precedence); CONDA_PKGS_DIRS is comma-separated
    env = config(tmp_path, "envs_dirs: [/data/envs]\n", CONDA_ENVS_PATH="/a:/b", CONDA_PKGS_DIRS="/p1,/p2")
    assert env.envs_dirs[:2] == (Path("/a"), Path("/b")) and Path("/data/envs") not in env.envs_dirs
    assert env.pkgs_dirs[:2] == (Path("/p1"), Path("/p2"))


def test_named_env_is_found_in_envs_dirs_never_by_environments_txt(tmp_path: Path) -> None:
    home = tmp_path / "home"
    listed = tmp_path / "elsewhere" / "e2"
    (listed / "conda-meta").mkdir(parents=True)
    (home / ".conda").mkdir(parents=True)
    (home / ".conda" / "environments.txt").write_text(f"{listed}\n")
    (home / ".conda" / "envs" / "e1" / "conda-meta").mkdir(parents=True)
    cfg = config(tmp_path)
    assert condarc.find_named_env("e1", cfg) == home / ".conda" / "envs" / "e1"
    assert condarc.find_named_env("e2", cfg) is None
    assert condarc.target_args(home / ".conda" / "envs" / "e1", cfg) == "-n e1"
    odd = tmp_path / "my envs" / "e1"
    assert condarc.target_args(odd, cfg) == f"-p '{odd}'"


def test_channel_names_follow_alias_and_custom_channels(tmp_path: Path) -> None:
    cfg = config(
        tmp_path, "channel_alias: https://mirror.example/conda\ncustom_channels:\n  nvidia: https://nv.example\n"
    )
    assert condarc.channel_url("conda-forge", cfg) == "https://mirror.example/conda/conda-forge"
    assert condarc.channel_url("nvidia/label/cuda-12.4", cfg) == "https://nv.example/nvidia/label/cuda-12.4"
    assert condarc.channel_url("file:///srv/ch/", cfg) == "file:///srv/ch"
    # history lines carry conda's canonical name: the alias or custom base stripped, credentials never
    assert condarc.canonical_channel("https://u:p@mirror.example/conda/t/tk-1/conda-forge", cfg) == "conda-forge"
    assert condarc.canonical_channel("https://nv.example/nvidia", cfg) == "nvidia"
    assert condarc.canonical_channel("https://conda.anaconda.org/pytorch", cfg) == "pytorch"
    assert condarc.canonical_channel("https://other.example/x", cfg) == "https://other.example/x"


def test_strip_credentials(tmp_path: Path) -> None:
    strip = condarc.strip_credentials
    assert strip("https://alice:s3cr3t@host.example:8443/t/tk-99/ch/linux-64/a-1-0.conda") == (
        "https://host.example:8443/ch/linux-64/a-1-0.conda"
    )
    assert strip("https://host.example/ch?token=abc&x=1") == "https://host.example/ch?x=1"
    assert strip("file:///srv/t/ch") == "file:///srv/t/ch"  # no token segment after a bare 't' folder
    assert strip("not a url") == "not a url"


def test_channels_are_merged_over_every_condarc_as_conda_merges_them(tmp_path: Path) -> None:
    """Two condarc files with channels: conda merges them (higher priority first); the planner took only
    the first file it found on b1aaa3b. The expectation is real conda's own ``config --show channels``."""
    import json
    import os
    import subprocess

    from condafix.plan import planner

    python = os.environ.get("CONDAFIX_TEST_CONDA_PYTHON", "")
    if not python:
        pytest.skip("real conda not installed (run .ci/conda-venv and set CONDAFIX_TEST_CONDA_PYTHON)")
    home, xdg = tmp_path / "home", tmp_path / "xdg"
    (home / ".conda").mkdir(parents=True)
    (xdg / "conda").mkdir(parents=True)
    (xdg / "conda" / "condarc").write_text("channels:\n  - nvidia\n  - conda-forge\n")
    (home / ".condarc").write_text("channels:\n  - pytorch\n  - conda-forge\n")
    (home / ".conda" / "condarc").write_text("channels:\n  - bioconda\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MAMBA"))}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(xdg), CONDA_PKGS_DIRS=str(tmp_path / "pkgs"))
    done = subprocess.run(
        [python, "-m", "conda", "config", "--show", "channels", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    conda_says = [c for c in json.loads(done.stdout)["channels"] if c != "defaults"]
    assert len(conda_says) == 4  # the check is about merging: every file contributes
    assert planner.condarc_channels(env) == conda_says


# ---------------------------------------------------------------- merged as conda merges, checked by conda

LAYERS = {
    # (relative path under tmp_path, text); lowest priority first, as conda's SEARCH_PATH orders them
    "plain": [
        ("root/.condarc", "channels:\n  - rootch\nproxy_servers:\n  http: http://root:1\n"),
        ("xdg/conda/condarc", "channels:\n  - nvidia\n  - conda-forge\nproxy_servers:\n  ftp: http://xdg:2\n"),
        ("xdg/conda/condarc.d/10-extra.yml", "channels: [xdgdrop]\n"),
        ("home/.conda/condarc", "channels:\n  - bioconda\n"),
        ("home/.condarc", "channels:\n  - pytorch\n  - conda-forge\nproxy_servers:\n  http: http://home:3\n"),
        ("prefix/.condarc", "channels:\n  - prefixch\n"),
        ("prefix/condarc.d/a.yaml", "proxy_servers:\n  https: http://prefix:4\n"),
        ("extra/rc.yml", "channels:\n  - condarcch\n  - nvidia\n"),
    ],
    "markers": [
        ("xdg/conda/condarc", "channels:\n  - nvidia  #!top\n  - conda-forge\n  - low  #!bottom\n"),
        ("home/.condarc", "channels:\n  - pytorch\n  - conda-forge  #!top\n  - defaults  #!bottom\n"),
        ("prefix/.condarc", "channels:\n  - prefixch\n  - nvidia\n"),
    ],
    "final": [
        (
            "xdg/conda/condarc",
            "channels: #!final\n  - nvidia\n  - conda-forge\nproxy_servers:\n  http: http://x:1 #!final\n",
        ),
        ("home/.condarc", "channels:\n  - pytorch\nproxy_servers:\n  http: http://home:3\n  https: http://home:4\n"),
        ("extra/rc.yml", "proxy_servers: #!final\n  https: http://rc:5\n"),
    ],
    "null and variables": [
        ("xdg/conda/condarc", "channels:\n  - $MIRROR/conda-forge\n  - ${MIRROR}/nvidia\n  - $UNSET_VAR/x\n"),
        ("home/.condarc", "channels: ~\nproxy_servers: ~\n"),
        ("prefix/.condarc", "proxy_servers:\n  http: http://$PROXY_HOST:3128\n"),
    ],
}
ENV_VARS = {
    "plain": {},
    "markers": {"CONDA_CHANNELS": "envch, conda-forge,,"},
    "final": {"CONDA_CHANNELS": "envch"},  # below a #!final file key: it does not count
    "null and variables": {"CONDA_CHANNELS": "envch!important", "MIRROR": "https://m.example", "PROXY_HOST": "p"},
}


@pytest.mark.parametrize("case", sorted(LAYERS))
def test_channels_and_proxies_merge_as_real_conda_merges_them(tmp_path: Path, case: str) -> None:
    """XDG, ~/.conda, ~/.condarc, condarc.d, $CONDA_PREFIX, $CONDARC, ``CONDA_*`` variables, ``#!final``,
    ``#!top``/``#!bottom``, ``~`` and ``$VAR``: condafix's merge is ``conda config --show`` to the letter."""
    import json
    import os
    import subprocess

    python = os.environ.get("CONDAFIX_TEST_CONDA_PYTHON", "")
    if not python:
        pytest.skip("real conda not installed (run .ci/conda-venv and set CONDAFIX_TEST_CONDA_PYTHON)")
    for rel, text in LAYERS[case]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "home").mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CONDA", "MAMBA", "XDG")) and "proxy" not in k}
    env.update(
        HOME=str(tmp_path / "home"),
        XDG_CONFIG_HOME=str(tmp_path / "xdg"),
        CONDA_ROOT=str(tmp_path / "root"),
        CONDA_PREFIX=str(tmp_path / "prefix"),
        CONDARC=str(tmp_path / "extra" / "rc.yml"),
        CONDA_PKGS_DIRS=str(tmp_path / "pkgs"),
        **ENV_VARS[case],
    )
    done = subprocess.run(
        [python, "-m", "conda", "config", "--show", "channels", "proxy_servers", "--json"],
        capture_output=True, text=True, env=env, check=True, timeout=120,
    )  # fmt: skip
    conda_says = json.loads(done.stdout)
    ours = condarc.load(env)
    assert {"channels": list(ours.channels), "proxy_servers": dict(ours.proxy_servers)} == conda_says
    assert len(conda_says["channels"]) >= 2  # every case merges several sources
