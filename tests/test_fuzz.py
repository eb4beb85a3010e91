"""No internal errors on input: every parser gives a result or one clear line with exit 2/3.

Each parser gets a hypothesis run built from the fragments real inputs are made of, mixed with
arbitrary text. CI runs a short version; the long run (counts in the README's reliability section):

    CONDAFIX_FUZZ_EXAMPLES=10000 CONDAFIX_FUZZ_REPORT=fuzz.json pytest tests/test_fuzz.py -p no:cacheprovider
"""

from __future__ import annotations

import json
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from condafix import proxy
from condafix.detect import driver
from condafix.detect import target as target_mod
from condafix.diagnose import explain
from condafix.env import condameta, envinfo
from condafix.errors import CondafixError
from condafix.files import envfile
from condafix.knowledge.cuda import CudaVersion
from condafix.plan import planner
from condafix.redact import redact

EXAMPLES = int(os.environ.get("CONDAFIX_FUZZ_EXAMPLES", "60"))
FIXTURES = Path(__file__).parent / "fixtures"
COUNTS: Counter[str] = Counter()
T = TypeVar("T")

FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
    database=None,
)


@pytest.fixture(scope="module", autouse=True)
def _report() -> Iterator[None]:
    """Write the per-parser counts (conftest leaves the interpreter with os._exit, so no atexit)."""
    yield
    path = os.environ.get("CONDAFIX_FUZZ_REPORT")
    if path and COUNTS:
        Path(path).write_text(json.dumps(dict(sorted(COUNTS.items())), indent=2) + "\n")


def outcome(parser: str, call: Callable[[], T]) -> T | CondafixError:
    """A result, or a CondafixError that is one clear line with exit 2 or 3; anything else fails the test."""
    COUNTS[parser] += 1
    try:
        return call()
    except CondafixError as exc:
        assert exc.exit_code in (2, 3), (exc.exit_code, exc.summary)
        assert exc.summary.strip() and "\n" not in exc.summary, repr(exc.summary)
        assert "Traceback" not in exc.summary and "internal error" not in exc.summary
        return exc


def pieces(fragments: list[str], *, size: int = 12) -> st.SearchStrategy[str]:
    """Text assembled from real-input fragments, random numbers and arbitrary text."""
    number = st.one_of(
        st.integers(-5, 100_000).map(str),
        st.from_regex(r"\A\d{1,3}(\.\d{1,3}){0,3}\Z"),
        st.sampled_from(["0000", "00", "1e9", "12.", ".4", "12.4.5.6", "１２.４", "nan", "-1"]),
    )
    parts = st.one_of(
        st.sampled_from(fragments),
        st.tuples(st.sampled_from(fragments), number).map(lambda t: t[0].replace("{}", t[1], 1)),
        number,
        st.text(max_size=24),
        st.sampled_from(["\n", "\r\n", " ", "\t", "\x00", "\ufeff", "'", '"', "[", "]", "{", "}", ":", "#"]),
    )
    return st.lists(parts, max_size=size).map(lambda xs: "".join(x.replace("{}", "7") for x in xs))


def mutated(paths: list[Path]) -> st.SearchStrategy[str]:
    """A captured real file with a slice cut out, a fragment repeated, or junk inserted."""
    texts = [p.read_text(errors="replace") for p in paths]

    @st.composite
    def build(draw: Any) -> str:
        text = draw(st.sampled_from(texts))
        if not text:
            return text
        a = draw(st.integers(0, len(text)))
        b = draw(st.integers(a, min(len(text), a + 200)))
        how = draw(st.sampled_from(["cut", "dup", "insert", "keep"]))
        if how == "cut":
            return text[:a] + text[b:]
        if how == "dup":
            return text[:b] + text[a:b] * draw(st.integers(1, 50)) + text[b:]
        if how == "insert":
            return text[:a] + draw(st.text(max_size=40)) + text[a:]
        return text

    return build()


# ---------------------------------------------------------------- error text (explain)

ERROR_FRAGMENTS = [
    "ptxas application ptx input, line 9; fatal   : Unsupported .version {}; current version is '{}'",
    "Unsupported .version 7.7; current version is '{}'",
    "LinkerError: [222] Call to cuLinkAddData results in CUDA_ERROR_UNSUPPORTED_PTX_VERSION",
    "[218] CUDA_ERROR_INVALID_PTX",
    "The NVIDIA driver on your system is too old (found version {}).",
    "found version {}",
    "CUDA driver version is insufficient for CUDA runtime version",
    "no kernel image is available for execution on the device",
    "nothing provides __cuda >={} needed by pytorch",
    "__cuda >={} but it is not available",
    "ERROR_OUTDATED_LIBRARY",
    "ProxyError: Conda cannot proceed due to an error in your proxy configuration",
    "cudaErrorInsufficientDriver",
]


@FUZZ
@given(text=st.one_of(pieces(ERROR_FRAGMENTS), mutated(sorted((FIXTURES / "errors").glob("*.txt")))))
def test_explain_never_crashes(text: str) -> None:
    result = outcome("error text (explain)", lambda: explain.explain(text))
    if not isinstance(result, CondafixError):
        live = driver.DriverInfo(cuda="12.4", source="--cuda", override=True)
        outcome("error text (explain)", lambda: explain.with_live(result, live))


# ---------------------------------------------------------------- nvidia-smi text and XML

SMI_FRAGMENTS = [
    "<cuda_version>{}</cuda_version>",
    "<driver_version>{}</driver_version>",
    '<gpu id="00000000:{}:00.0"><product_name>NVIDIA H100</product_name></gpu>',
    "| NVIDIA-SMI {}    Driver Version: {}    CUDA Version: {}     |",
    "| NVIDIA-SMI 610.57   KMD Version: {}   CUDA UMD Version: {} |",
    "|   {}  Tesla T4            On   | 00000000:00:04.0 Off |",
    "NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
    "{}, NVIDIA H100 80GB HBM3, {}\n",
]


@FUZZ
@given(text=st.one_of(pieces(SMI_FRAGMENTS), mutated(sorted((FIXTURES / "smi").glob("*")))))
def test_nvidia_smi_parsers_never_crash(text: str) -> None:
    for parse in (driver.parse_smi_xml, driver.parse_smi_banner, driver.parse_smi_query_gpu, driver.smi_failure):
        outcome("nvidia-smi text/XML", lambda parse=parse: parse(text))  # type: ignore[misc]
    outcome("nvidia-smi text/XML", lambda: driver.decode_cuda(text))


# ---------------------------------------------------------------- conda-meta records and history

JSON_VALUES = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=20)),
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
RECORD_KEYS = ["name", "version", "build", "channel", "url", "requested_spec", "requested_specs", "subdir", "depends"]


@st.composite
def record_texts(draw: Any) -> str:
    kind = draw(st.sampled_from(["record", "json", "text", "deep"]))
    if kind == "record":
        record: dict[str, Any] = {
            "name": draw(st.sampled_from(["cuda-version", "cudatoolkit", "cuda-nvvm-impl", "numba", "libnvjitlink"])),
            "version": draw(st.one_of(st.from_regex(r"\A\d{1,2}(\.\d{1,3}){0,3}\Z"), st.text(max_size=10))),
            "build": draw(
                st.one_of(st.sampled_from(["h4bc722e_1", "cuda112py39", "cuda_12.4", "0"]), st.text(max_size=12))
            ),
        }
        for key in draw(st.lists(st.sampled_from(RECORD_KEYS), max_size=4)):
            record[key] = draw(JSON_VALUES)
        return json.dumps(record)
    if kind == "json":
        return json.dumps(draw(JSON_VALUES))
    if kind == "deep":
        depth = draw(st.integers(100, 20_000))
        return "[" * depth + "]" * draw(st.integers(0, depth))
    return draw(st.text(max_size=200))


@FUZZ
@given(text=record_texts())
def test_conda_meta_records_never_crash(text: str) -> None:
    outcome("conda-meta records", lambda: condameta.parse_record(text, "conda-meta/x-1-0.json"))
    with tempfile.TemporaryDirectory() as tmp:
        meta = Path(tmp) / "conda-meta"
        meta.mkdir()
        (meta / "x-1-0.json").write_text(text)
        (meta / "history").write_text("")
        outcome("conda-meta records", lambda: envinfo.read_env(Path(tmp), "-p"))


HISTORY_FRAGMENTS = [
    "==> 2024-05-01 10:00:00 <==\n",
    "# cmd: conda install -c conda-forge numba-cuda\n",
    "# update specs: {}\n",
    "# install specs: ['numba-cuda', 'cuda-version={}']\n",
    "# remove specs: ['cudatoolkit']\n",
    '# neutered specs: ["{}"]\n',
    "+conda-forge::cuda-version-12.9-h4f385c5_3\n",
    "-conda-forge::cudatoolkit-11.8.0-h4ba93d1_13\n",
]


@FUZZ
@given(text=pieces(HISTORY_FRAGMENTS, size=20))
def test_history_never_crashes(text: str) -> None:
    outcome("conda-meta/history", lambda: condameta.parse_history(text))


# ---------------------------------------------------------------- environment.yml

ENV_FRAGMENTS = [
    "name: {}\n",
    "channels:\n",
    "  - conda-forge\n",
    "  - nvidia\n",
    "dependencies:\n",
    "  - cuda-version={}\n",
    "  - cudatoolkit >={},<12\n",
    "  - numba-cuda\n",
    "  - pytorch-cuda={}\n",
    "  - nvidia::cuda-nvcc {}.*\n",
    "  - pip:\n      - torch=={}+cu121\n",
    "  - !!python/object:os.system {}\n",
    "  - &a cuda-version=12.4\n  - *a\n",
    "  - cudatoolkit[version='>>{}']\n",
    '  - "numpy >=>={}"\n',
    "dependencies: [[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]\n",
    "dependencies: {}\n",
    "\ufeff",
    "\t- cuda-version=12.9\n",
]


@st.composite
def env_texts(draw: Any) -> str:
    if draw(st.integers(0, 9)) == 0:
        depth = draw(st.integers(50, 5_000))
        return "dependencies:\n  - " + "[" * depth + "]" * depth + "\n"
    return draw(st.one_of(pieces(ENV_FRAGMENTS, size=16), mutated(sorted((FIXTURES / "envfiles").glob("*.y*ml")))))


@FUZZ
@given(text=env_texts(), target=st.sampled_from(["11.4", "12.4", "12.8", "13.0"]))
def test_environment_yml_never_crashes(text: str, target: str) -> None:
    outcome(
        "environment.yml",
        lambda: envfile.plan_file(text, "environment.yml", CudaVersion.parse(target)),
    )


# ---------------------------------------------------------------- pixi manifests

PIXI_FRAGMENTS = [
    "[workspace]\n",
    "[project]\n",
    "[tool.pixi.workspace]\n",
    'channels = ["conda-forge"]\n',
    'platforms = ["linux-64"]\n',
    "[dependencies]\n",
    'cuda-version = "{}.*"\n',
    'cudatoolkit = ">={}"\n',
    'cuda-nvcc = {{ version = "{}", channel = "nvidia" }}\n',
    "[feature.cuda.dependencies]\n",
    "[feature.cuda.system-requirements]\n",
    'cuda = "{}"\n',
    "[system-requirements]\n",
    "[pypi-dependencies]\n",
    'torch = {{ version = "=={}", index = "https://download.pytorch.org/whl/cu121" }}\n',
    "x = " + "[" * 200 + "]" * 200 + "\n",
    '"\\u0000" = 1\n',
]


@FUZZ
@given(
    text=st.one_of(pieces(PIXI_FRAGMENTS, size=16), mutated(sorted((FIXTURES / "pixi").glob("*.toml")))),
    target=st.sampled_from(["11.4", "12.4", "13.0"]),
)
def test_pixi_manifests_never_crash(text: str, target: str) -> None:
    from condafix.files import pixifile

    outcome("pixi manifests", lambda: pixifile.plan_manifest(text, "pixi.toml", CudaVersion.parse(target)))


# ---------------------------------------------------------------- lockfiles (pixi.lock, conda-lock.yml, @EXPLICIT)

LOCK_FRAGMENTS = [
    "version: {}\n",
    "environments:\n  default:\n    channels:\n    - url: https://conda.anaconda.org/conda-forge/\n",
    "    packages:\n      linux-64:\n      - conda: https://conda.anaconda.org/conda-forge/noarch/cuda-version-{}-h4f385c5_3.conda\n",
    "packages:\n- conda: https://conda.anaconda.org/conda-forge/noarch/cuda-version-12.9-h4f385c5_3.conda\n",
    "  sha256: {}\n",
    "metadata:\n  platforms: [linux-64]\n",
    "package:\n- name: cuda-version\n  version: '{}'\n  manager: conda\n  platform: linux-64\n",
    "@EXPLICIT\n",
    "https://conda.anaconda.org/conda-forge/linux-64/cudatoolkit-{}-h4ba93d1_13.conda#abc\n",
    "# platform: linux-64\n",
]
LOCK_NAMES = ["pixi.lock", "conda-lock.yml", "explicit.txt"]


@FUZZ
@given(
    text=st.one_of(
        pieces(LOCK_FRAGMENTS, size=14), mutated(sorted(p for p in (FIXTURES / "lockfiles").rglob("*") if p.is_file()))
    ),
    name=st.sampled_from(LOCK_NAMES),
    target=st.sampled_from(["11.4", "12.4", "13.0"]),
)
def test_lockfiles_never_crash(text: str, name: str, target: str) -> None:
    from condafix.files import lockfile

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / name
        path.write_text(text, encoding="utf-8", errors="surrogatepass")
        outcome("lockfiles", lambda: lockfile.check_file(path, CudaVersion.parse(target)))


# ---------------------------------------------------------------- proxy and channel URLs

URL_FRAGMENTS = [
    "http://",
    "https://",
    "socks5h://",
    "file://",
    "user:pw@",
    "@",
    "[::1",
    "[2001:db8::1]",
    "proxy.corp",
    ":{}",
    "/t/{}/",
    "?token={}",
    "%40",
    "%3A%2F%2F",
    "conda-forge",
    "/label/{}",
    " ",
]


@FUZZ
@given(value=pieces(URL_FRAGMENTS, size=10), channel=pieces(URL_FRAGMENTS, size=6))
def test_proxy_and_channel_urls_never_crash(value: str, channel: str) -> None:
    if "\x00" in value:
        value = value.replace("\x00", "")
    env = {"http_proxy": value, "HTTPS_PROXY": value, "no_proxy": channel, "HOME": "/nonexistent"}
    outcome("proxy/channel URLs", lambda: proxy.diagnose(env, [channel], connect=False))
    outcome("proxy/channel URLs", lambda: proxy.validate_proxy_url(value))
    outcome("proxy/channel URLs", lambda: planner.normalize_channel(channel))
    outcome("proxy/channel URLs", lambda: envinfo.channel_name(channel))
    outcome("proxy/channel URLs", lambda: redact(value + " " + channel))


# ---------------------------------------------------------------- --cuda, --driver and environment variables

VERSION_FRAGMENTS = ["12.4", "535.104.05", "{}", ".", "..", "\n", " ", "-", "x", "٣", "0", "99999", "1e400"]


@FUZZ
@given(cuda=pieces(VERSION_FRAGMENTS, size=5), drv=pieces(VERSION_FRAGMENTS, size=5), var=pieces(VERSION_FRAGMENTS))
def test_cuda_driver_options_and_variables_never_crash(cuda: str, drv: str, var: str) -> None:
    from condafix.backends.rattler import net as net_rb
    from condafix.change import lock as lock_mod

    outcome("--cuda/--driver/env vars", lambda: target_mod.resolve_target(cudas=[cuda], drivers=[]))
    outcome("--cuda/--driver/env vars", lambda: target_mod.resolve_target(cudas=[], drivers=[drv]))
    outcome(
        "--cuda/--driver/env vars",
        lambda: driver.from_overrides(cuda=None, driver=None, env={"CONDA_OVERRIDE_CUDA": var}),
    )
    from condafix import progress
    from condafix.backends import choice

    outcome("--cuda/--driver/env vars", lambda: progress.stall_seconds({"CONDAFIX_STALL_SECONDS": var}))
    outcome("--cuda/--driver/env vars", lambda: driver._probe_timeout({"CONDAFIX_PROBE_TIMEOUT": var}))
    outcome("--cuda/--driver/env vars", lambda: choice.default_choice({"CONDAFIX_SOLVER": var}))
    for name in ("CONDAFIX_HTTP_TIMEOUT", "CONDAFIX_MAX_REPODATA_MB"):
        outcome("--cuda/--driver/env vars", lambda name=name: net_rb.net_limits({name: var}))  # type: ignore[misc]
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "conda-meta").mkdir()
        old = os.environ.get("CONDAFIX_LOCK_WAIT")
        os.environ["CONDAFIX_LOCK_WAIT"] = var.replace("\x00", "")
        try:

            def lock() -> None:
                with lock_mod.prefix_lock(Path(tmp)):
                    pass

            outcome("--cuda/--driver/env vars", lock)
        finally:
            if old is None:
                os.environ.pop("CONDAFIX_LOCK_WAIT", None)
            else:
                os.environ["CONDAFIX_LOCK_WAIT"] = old


# ---------------------------------------------------------------- the cases the attack report listed


@pytest.mark.parametrize(
    ("parser", "call"),
    [
        ("explain 0000", lambda: explain.explain("The NVIDIA driver on your system is too old (found version 0000).")),
        (
            "deep YAML",
            lambda: envfile.plan_file(
                "dependencies:\n  - " + "[" * 5000 + "]" * 5000, "e.yml", CudaVersion(major=12, minor=4)
            ),
        ),
        (
            "python tag",
            lambda: envfile.plan_file(
                "dependencies:\n  - !!python/object:os.system {}\n  - cuda-version=12.9\n",
                "e.yml",
                CudaVersion(major=12, minor=4),
            ),
        ),
        (
            "bad spec",
            lambda: envfile.plan_file(
                'dependencies:\n  - cuda-version=12.9\n  - "numpy >=>=1"\n', "e.yml", CudaVersion(major=12, minor=4)
            ),
        ),
        ("driver newline", lambda: target_mod.resolve_target(cudas=[], drivers=["535.104.05\nx"])),
        ("cuda newline", lambda: target_mod.resolve_target(cudas=["12.4\n"], drivers=[])),
        ("deep record", lambda: condameta.parse_record("[" * 100_000, "conda-meta/x.json")),
        ("malformed IPv6 channel", lambda: planner.normalize_channel("http://user:pw@[::1/chan")),
        ("home of no user", lambda: planner.normalize_channel("~no-such-user-here/chan")),
    ],
)
def test_listed_cases_give_a_result_or_one_line(parser: str, call: Callable[[], object]) -> None:
    outcome(parser, call)


def test_lockfile_with_a_malformed_ipv6_url(tmp_path: Path) -> None:
    from condafix.files import lockfile

    path = tmp_path / "explicit.txt"
    path.write_text("@EXPLICIT\nhttp://u:pw@[::1/noarch/cuda-version-12.9-h4f385c5_3.conda#0123\n")
    result = outcome("lockfiles", lambda: lockfile.check_file(path, CudaVersion(major=12, minor=4)))
    assert isinstance(result, CondafixError) and "not a package URL" in result.summary


def test_lock_wait_that_is_not_a_number(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from condafix.change import lock as lock_mod

    (tmp_path / "conda-meta").mkdir()
    monkeypatch.setenv("CONDAFIX_LOCK_WAIT", "abc")
    with pytest.raises(CondafixError, match="CONDAFIX_LOCK_WAIT='abc'") as info, lock_mod.prefix_lock(tmp_path):
        pass
    assert info.value.exit_code == 2
