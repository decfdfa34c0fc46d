"""Plugin discovery through real entry points (dist-info folders on sys.path, and a real pip install)."""

import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from plugins.registry import (
    FAMILIES,
    SELECTORS,
    TRAINERS,
    DuplicatePluginError,
    PluginLoadError,
    PluginRegistry,
    UnknownPluginError,
)

DEMO = Path(__file__).parent / "demo_plugin"


def _fake_distribution(root: Path, name: str, entry_points: str, modules: dict[str, str] | None = None) -> None:
    """A minimal installed distribution: a .dist-info folder with METADATA and entry_points.txt."""
    info = root / f"{name.replace('-', '_')}-1.0.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(textwrap.dedent(entry_points))
    for mod, src in (modules or {}).items():
        (root / f"{mod}.py").write_text(textwrap.dedent(src))


def _run(code: str, *paths: Path) -> subprocess.CompletedProcess:
    prelude = "import sys\n" + "".join(f"sys.path.insert(0, {str(p)!r})\n" for p in paths)
    return subprocess.run([sys.executable, "-c", prelude + textwrap.dedent(code)], capture_output=True, text=True,
                          timeout=120)


def test_builtin_plugins_are_declared_through_entry_points():
    assert {"if_else", "if_else_long", "while", "multi_r", "gsm"} <= set(FAMILIES.names())
    assert {"grape", "bids"} <= set(SELECTORS.names())
    assert {"grpo", "sft"} <= set(TRAINERS.names())
    assert FAMILIES.specs()["if_else"].distribution == "executable-cf"


def test_unknown_name_lists_installed_and_suggests():
    with pytest.raises(UnknownPluginError) as err:
        FAMILIES.get("if_els")
    message = str(err.value)
    assert "'if_else'" in message and "Did you mean" in message
    assert "multi_r" in message and "executable_cf.families" in message


def test_lazy_loading_imports_nothing_until_asked(tmp_path):
    result = _run("""
        import sys
        from plugins import FAMILIES
        names = FAMILIES.names()
        assert "if_else" in names
        assert not any(m.startswith("cf_tasks.families.if_else") for m in sys.modules), "imported too early"
        FAMILIES.get("if_else")
        assert "cf_tasks.families.if_else" in sys.modules
        print("ok")
    """)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_duplicate_name_names_both_distributions(tmp_path):
    _fake_distribution(tmp_path / "a", "dist-alpha", "[executable_cf.families]\nif_else = alpha_mod:FAMILY\n")
    result = _run("""
        from plugins import FAMILIES, DuplicatePluginError
        try:
            FAMILIES.names()
        except DuplicatePluginError as exc:
            print(exc)
        else:
            print("no error")
    """, tmp_path / "a")
    assert result.returncode == 0, result.stderr
    assert "dist-alpha" in result.stdout and "executable-cf" in result.stdout and "'if_else'" in result.stdout


def test_broken_plugin_is_named_and_does_not_break_others(tmp_path):
    _fake_distribution(
        tmp_path, "dist-broken",
        "[executable_cf.families]\nbroken_fam = broken_mod:FAMILY\nhollow_fam = hollow_mod:FAMILY\n",
        {"broken_mod": "raise RuntimeError('boom at import')\n", "hollow_mod": "FAMILY = object()\n"},
    )
    result = _run("""
        from plugins import FAMILIES, PluginLoadError
        ok, failed = FAMILIES.load_all()
        print(sorted(ok))
        for name, exc in sorted(failed.items()):
            print(name, "|", exc)
    """, tmp_path)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "'if_else'" in lines[0] and "'multi_r'" in lines[0]
    broken = [l for l in lines if l.startswith("broken_fam")][0]
    assert "dist-broken" in broken and "boom at import" in broken
    hollow = [l for l in lines if l.startswith("hollow_fam")][0]
    assert "invalid" in hollow and "generate_items" in hollow


def test_in_process_register_validates_and_rejects_duplicates():
    registry = PluginRegistry("executable_cf.test_group_nobody_uses", "widget", lambda n, o: None)

    class Widget:
        pass

    registry.register("w", Widget)
    assert registry.get("w") is Widget
    with pytest.raises(DuplicatePluginError):
        registry.register("w", Widget)
    registry.unregister("w")
    with pytest.raises(UnknownPluginError, match="none"):
        registry.get("w")
    strict = PluginRegistry("executable_cf.test_group_nobody_uses", "widget",
                            lambda n, o: (_ for _ in ()).throw(TypeError("not a widget")))
    with pytest.raises(TypeError):
        strict.register("x", object())


def test_pip_installed_third_party_plugin_is_discovered(tmp_path):
    """A real ``pip install`` of the demo distribution kept under tests/ (its own setup.cfg)."""
    target = tmp_path / "site"
    source = tmp_path / "demo_plugin"
    shutil.copytree(DEMO, source)  # setuptools builds in-tree; keep the repository clean
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "--target", str(target), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    result = _run("""
        from plugins import FAMILIES, SELECTORS
        fam = FAMILIES.get("demo_mod")
        print(FAMILIES.specs()["demo_mod"].distribution)
        print(type(SELECTORS.get("demo_first")).__name__)
        res = fam.generate_items(variant="counterfactual", n=3, seed=7, config=fam.config("medium"))
        print(len(res.items), all(item["family"] == "demo_mod" for item in res.items))
    """, target)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["cf-demo-plugin", "FirstSelector", "3 True"]
    listing = subprocess.run([sys.executable, "-c", f"import sys; sys.path.insert(0, {str(target)!r}); "
                              "from cf_tasks.cli import main; sys.exit(main(['families']))"],
                             capture_output=True, text=True, timeout=120)
    assert listing.returncode == 0, listing.stderr
    assert "demo_mod" in listing.stdout and "cf-demo-plugin" in listing.stdout
    assert "if_else" in listing.stdout
