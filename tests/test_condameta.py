"""The one conda-meta reader (env/condameta.py) against conda itself: records, history, pinned.

Real conda writes the history (create, install, remove in a temp prefix from the local channel)
and ``conda.history.History`` / ``PrefixData.get_pinned_specs`` say what it means; condafix must
read the same. Hand-written histories cover the forms conda still reads but no longer writes.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from condafix.env import condameta, envinfo
from condafix.errors import InspectError

from .conftest import CUDA12_ENV
from .realconda import BROKEN_SPECS, RealConda

_PINNED_PROBE = """
import json, sys
from conda.core.prefix_data import PrefixData
print(json.dumps([s.name for s in PrefixData(sys.argv[1]).get_pinned_specs()]))
"""


def _ours(prefix: Path) -> dict[str, object]:
    """condafix's reading, in the shape of ``RealConda.history`` (conda's own)."""
    history = condameta.read_history(prefix)
    installed = [str(r["name"]) for _p, r in condameta.records(prefix)]
    return {
        "requested": sorted(history.requested_specs(installed)),
        "states": [sorted(s) for s in history.states()],
        "requests": [
            {
                "date": r.date,
                "cmd": list(r.argv),
                "update_specs": list(r.update_specs),
                "remove_specs": list(r.remove_specs),
                "neutered_specs": list(r.neutered_specs),
            }
            for r in history.user_requests()
        ],
    }


def _condas(conda: RealConda, prefix: Path) -> dict[str, object]:
    seen = conda.history(prefix)
    keys = ("update_specs", "remove_specs", "neutered_specs")
    return {
        "requested": sorted(seen.requested),
        "states": seen.states,
        "requests": [
            {"date": r["date"], "cmd": r["cmd"], **{k: list(r.get(k, [])) for k in keys}} for r in seen.requests
        ],
    }


def test_a_history_real_conda_wrote_reads_as_conda_reads_it(real_conda: RealConda, tmp_path: Path) -> None:
    prefix = real_conda.create(tmp_path / "env", BROKEN_SPECS, solver="libmamba")
    real_conda.install(prefix, "libzlib", solver="libmamba")
    real_conda.run("remove", "-y", "-q", "-p", str(prefix), "--offline", "libzlib", solver="libmamba")
    real_conda.install(prefix, "numpy=2.1.0", solver="libmamba", extra=("--offline",))
    ours, condas = _ours(prefix), _condas(real_conda, prefix)
    assert len(condameta.read_history(prefix).revisions) == 4
    assert ours == condas
    # the doctor's requested specs are conda's requested map
    assert sorted(condameta.spec_name(s) for s in envinfo.read_env(prefix).requested_specs) == condas["requested"]


HAND_WRITTEN = """\
# a comment before the first revision is ignored
+conda-forge/linux-64::ignored-1-0
==> 2019-03-01 10:00:00 <==
conda-forge/linux-64::python-3.12.3-hab00c5b_0_cpython
conda-forge/linux-64::numba-0.61.2-py312h2e8e312_0
# cmd: /opt/conda/bin/conda create -n x python numba
# install specs: python>=3.5.1,numba >=0.50,<0.70,cuda-version

==> 2019-03-02 10:00:00 <==
+conda-forge/noarch::cuda-version-12.9-h4f385c5_3
# update specs: ['cuda-version=12.9', 'numba-cuda', 'https://x/y.conda@']
==> 2019-03-03 10:00:00 <==
   # cmd: conda remove numba
-conda-forge/linux-64::numba-0.61.2-py312h2e8e312_0
-conda-forge/linux-64::numba-0.61.2-py312h2e8e312_0
# uninstall specs: ['numba']
==> 2019-03-04 10:00:00 <==
# cmd: conda update --all
# neutered specs: ['python=3.12']
==> 2019-03-05 10:00:00 <==
# cmd: conda install cuda-nvrtc
# install specs: ['cuda-nvrtc']
# conda version: 4.4.11
"""


def test_every_form_conda_reads_reads_the_same(real_conda: RealConda, make_prefix: Callable[..., Path]) -> None:
    """Old comma lists, ``uninstall``, ``neutered``, ``@`` URLs, text before the first revision,
    a revision without ``# cmd:`` (not a user request), duplicates, indented comments."""
    prefix = make_prefix(CUDA12_ENV, history=HAND_WRITTEN)
    ours, condas = _ours(prefix), _condas(real_conda, prefix)
    assert ours == condas
    # numba uninstalled; the second revision has no `# cmd:`, so numba-cuda was never a request
    assert condas["requested"] == ["cuda-nvrtc", "cuda-version", "python"]
    # the doctor shows the same requested specs
    assert sorted(condameta.spec_name(s) for s in envinfo.read_env(prefix).requested_specs) == condas["requested"]


def test_pinned_reads_as_conda_reads_it(real_conda: RealConda, make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix(CUDA12_ENV)
    (prefix / "conda-meta" / "pinned").write_text("\n# a comment\ncuda-version 12.4.*\n\n  # indented\nnumpy >=2\n")
    done = subprocess.run(
        [real_conda.python, "-c", _PINNED_PROBE, str(prefix)],
        capture_output=True,
        text=True,
        env=real_conda.env(),
        timeout=120,
        check=True,
    )
    assert [condameta.spec_name(s) for s in condameta.read_pinned(prefix)] == json.loads(done.stdout)
    assert condameta.read_pinned(prefix) == ("cuda-version 12.4.*", "numpy >=2")


# ---------------------------------------------------------------- bad files: one clear error


def _doctor(prefix: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "condafix", "doctor", "-p", str(prefix), "--cuda", "12.4"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        stdin=subprocess.DEVNULL,
    )


def test_a_history_that_is_not_utf8_is_one_clear_error(make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix(CUDA12_ENV)
    (prefix / "conda-meta" / "history").write_bytes(b"==> 2024-01-01 <==\n# cmd: conda install \xff\xfe\n")
    with pytest.raises(InspectError, match=r"conda-meta/history: not UTF-8"):
        condameta.read_history(prefix)
    done = _doctor(prefix)
    assert done.returncode == 3, done.stdout + done.stderr
    assert "not UTF-8" in done.stderr + done.stdout and "Traceback" not in done.stderr


def test_a_history_symlinked_out_of_the_prefix_is_not_followed(
    make_prefix: Callable[..., Path], tmp_path: Path
) -> None:
    prefix = make_prefix(CUDA12_ENV)
    outside = tmp_path / "elsewhere"
    outside.write_text("==> 2024-01-01 00:00:00 <==\n# cmd: conda install evil\n# update specs: ['numba']\n")
    history = prefix / "conda-meta" / "history"
    history.unlink()
    history.symlink_to(outside)
    with pytest.raises(InspectError, match="symlink leading outside"):
        envinfo.read_env(prefix)


def test_a_record_symlinked_out_of_the_prefix_is_not_followed(make_prefix: Callable[..., Path], tmp_path: Path) -> None:
    prefix = make_prefix(CUDA12_ENV)
    record = next((prefix / "conda-meta").glob("numba-0*.json"))
    (tmp_path / "outside.json").write_bytes(record.read_bytes())
    record.unlink()
    record.symlink_to(tmp_path / "outside.json")
    with pytest.raises(InspectError, match="symlink leading outside"):
        condameta.records(prefix)


def test_a_pinned_file_that_is_not_utf8_refuses_the_change_in_one_line(make_prefix: Callable[..., Path]) -> None:
    from condafix.change.condafiles import plan_pin_edits
    from condafix.change.safety import Refused

    prefix = make_prefix(CUDA12_ENV)
    (prefix / "conda-meta" / "pinned").write_bytes(b"cuda-version 12.\xff\n")
    with pytest.raises(Refused, match=r"conda-meta/pinned: not UTF-8.*nothing was changed"):
        plan_pin_edits(prefix, ["cuda-version=12.4"], replace=False, spec_matches=lambda *_a: True)


def test_a_record_that_is_not_utf8_names_the_file(make_prefix: Callable[..., Path]) -> None:
    prefix = make_prefix(CUDA12_ENV)
    record = next((prefix / "conda-meta").glob("numba-0*.json"))
    record.write_bytes(record.read_bytes().replace(b'"numba"', b'"numba\xff"'))
    with pytest.raises(InspectError, match=rf"conda-meta/{record.name}: not UTF-8"):
        envinfo.read_env(prefix)


def test_a_mixed_revision_is_conda_s_error_not_a_traceback() -> None:
    text = "==> 2024-01-01 00:00:00 <==\n+a-1-0\nb-1-0\n"
    with pytest.raises(InspectError, match="did not expect 'b-1-0'"):
        condameta.parse_history(text).states()


def test_reading_a_long_history_is_linear() -> None:
    """A 20,000-revision history with one long line parses (no quadratic replay of the text)."""
    one = "==> 2024-01-01 00:00:00 <==\n# cmd: conda install x\n# update specs: ['x']\n+c::x-1-0\n"
    text = one * 20_000 + "# cmd: " + "a " * 200_000 + "\n"
    history = condameta.parse_history(text)
    assert len(history.revisions) == 20_000 and history.requested_specs() == {"x": "x"}
