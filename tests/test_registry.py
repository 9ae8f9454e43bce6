"""Registries: decorator registration, prefixes, and third-party discovery through entry points."""

from __future__ import annotations

import sys
import textwrap

import pytest

from bench.errors import BenchError
from bench.registry import RETRIEVERS, TASKS, Registry


def test_builtin_plugins_are_discovered() -> None:
    tasks = TASKS.all()
    for kind in ("linear", "mlp"):
        for setting in ("single", "multi", "ood"):
            assert f"synthetic-{kind}-{setting}" in tasks
    assert {"oracle", "input"} <= set(RETRIEVERS.all())
    assert TASKS.all()["synthetic-linear-single"].param_defaults()["d"] == 128


def test_third_party_plugin_through_an_entry_point(tmp_path, monkeypatch) -> None:
    pkg = tmp_path / "thirdparty_plugin.py"
    pkg.write_text(textwrap.dedent('''
        from bench.registry import register_task  # noqa: F401
        from tests_registry_probe import REG
        @REG.register("their-task", description="a task from another package", kind="demo")
        class TheirTask:
            pass
    '''))
    (tmp_path / "tests_registry_probe.py").write_text(
        "from bench.registry import Registry\nREG = Registry('task', group='probe_group.tasks')\n"
    )
    dist = tmp_path / "thirdparty_plugin-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-plugin\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[probe_group.tasks]\ntheirs = thirdparty_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import tests_registry_probe

    reg = tests_registry_probe.REG
    meta, spec = reg.get("their-task")
    assert meta.kind == "demo" and spec is None
    sys.modules.pop("thirdparty_plugin", None)
    sys.modules.pop("tests_registry_probe", None)


def test_prefix_names_pass_the_suffix() -> None:
    reg = Registry("retriever", group="no_such_group_xyz")

    @reg.register("st:", description="any model", kind="dense")
    class Any:  # noqa: B903
        pass

    meta, spec = reg.get("st:some/model")
    assert meta.name == "st:" and spec == "some/model"
    with pytest.raises(BenchError):
        reg.get("st:")


def test_unknown_name_lists_close_matches() -> None:
    with pytest.raises(BenchError, match="did you mean synthetic-mlp-multi"):
        TASKS.get("synthetic-mlp-mult")
    with pytest.raises(BenchError, match="known: "):
        RETRIEVERS.get("zzzzzz")


def test_double_registration_is_refused() -> None:
    reg = Registry("task", group="no_such_group_xyz")
    reg.register("a", description="", kind="x")(int)
    with pytest.raises(BenchError, match="registered twice"):
        reg.register("a", description="", kind="x")(float)
