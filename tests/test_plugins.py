"""The plugin system: every hook, entry points, broken plugins, startup imports."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
from click.testing import CliRunner

from varfx import plugins
from varfx.api import FeatureSource, Option, Solver
from varfx.errors import UserError


@pytest.fixture(autouse=True)
def fresh_manager():
    plugins.reset()
    yield
    plugins.reset()


def run_varfx(args, env_extra=None, pythonpath=None):
    env = dict(os.environ)
    env.update(env_extra or {})
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join([str(pythonpath), env.get("PYTHONPATH", "")])
    return subprocess.run([sys.executable, "-m", "varfx", *args], capture_output=True, text=True, env=env, timeout=120)


def make_dist(tmp_path, name, module_source, ep_name=None):
    """A minimal installed distribution on a path entry, with a 'varfx' entry point."""
    ep_name = ep_name or name
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = tmp_path / f"{name}-0.3.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 0.3.1\n")
    (info / "entry_points.txt").write_text(f"[varfx]\n{ep_name} = {name}\n")
    return tmp_path


def test_builtins_register_through_hooks():
    pm = plugins.get_plugin_manager()
    for mod in plugins.DEFAULT_PLUGINS:
        assert pm.get_plugin(mod) is not None
    assert "constant" in plugins.get_priors()
    assert "full" in plugins.get_objectives()
    assert {"cholesky", "cg-slq", "nystrom"} <= set(plugins.get_solvers())


def test_register_feature_sources_and_commands_hooks():
    from varfx import hookimpl

    class Dummy(FeatureSource):
        name = "dummy-track"
        description = "a test feature source"

    class Mod:
        @hookimpl
        def register_feature_sources(register):
            register(Dummy)

        @hookimpl
        def register_commands(cli):
            import click

            @cli.command(name="hello-test")
            def hello():
                click.echo("hello from a plugin")

    pm = plugins.get_plugin_manager()
    pm.register(Mod, name="test-mod")
    assert plugins.get_feature_sources()["dummy-track"] is Dummy
    rec = [r for r in plugins.describe_plugins() if r["name"] == "test-mod"][0]
    assert rec["feature_sources"] == ["dummy-track"]
    import click

    grp = click.Group()
    pm.hook.register_commands(cli=grp)
    result = CliRunner().invoke(grp, ["hello-test"])
    assert result.output.strip() == "hello from a plugin"


def test_lookup_unknown_names_the_choices():
    with pytest.raises(UserError, match="unknown solver 'nope'.*cholesky"):
        plugins.lookup("solvers", "nope")


def test_plugin_options_parsed_and_checked():
    class S(Solver):
        name = "s"
        options = {"tol": Option(float, 1e-3, "tolerance")}

    assert S.parse_options(["tol=1e-5"]) == {"tol": 1e-5}
    with pytest.raises(UserError, match="no option 'bogus'"):
        S.parse_options(["bogus=1"])
    with pytest.raises(UserError, match="expected KEY=VALUE"):
        S.parse_options(["tol"])
    with pytest.raises(UserError, match="expected float"):
        S.parse_options(["tol=abc"])
    assert S(tol=0.5).tolerance == 0.0  # exact by default


def test_third_party_entry_point_listed(tmp_path):
    src = """
        from varfx import hookimpl
        from varfx.api import Prior

        class P(Prior):
            name = "third-party-prior"
            description = "registered from an entry point"

        @hookimpl
        def register_priors(register):
            register(P)
    """
    path = make_dist(tmp_path, "varfx_thirdparty", src)
    res = run_varfx(["plugins", "--json"], pythonpath=path)
    assert res.returncode == 0, res.stderr
    recs = {r["name"]: r for r in json.loads(res.stdout)["plugins"]}
    assert recs["varfx_thirdparty"]["priors"] == ["third-party-prior"]
    assert recs["varfx_thirdparty"]["version"] == "0.3.1"
    assert recs["varfx.default_plugins.solvers"]["builtin"] is True
    # VARFX_LOAD_PLUGINS limits third-party plugins; built-ins stay.
    res = run_varfx(["plugins", "--json"], pythonpath=path, env_extra={"VARFX_LOAD_PLUGINS": ""})
    names = {r["name"] for r in json.loads(res.stdout)["plugins"]}
    assert "varfx_thirdparty" not in names and "varfx.default_plugins.priors" in names


def test_broken_plugin_warns_and_cli_keeps_working(tmp_path):
    path = make_dist(tmp_path, "varfx_broken", "raise ImportError('missing dependency xyz')\n")
    res = run_varfx(["plugins", "--json"], pythonpath=path)
    assert res.returncode == 0
    assert "varfx_broken" in res.stderr and "missing dependency xyz" in res.stderr
    recs = {r["name"]: r for r in json.loads(res.stdout)["plugins"]}
    assert "error" in recs["varfx_broken"]
    assert "constant" in recs["varfx.default_plugins.priors"]["priors"]
    res = run_varfx(["plugins"], pythonpath=path, env_extra={"VARFX_STRICT_PLUGINS": "1"})
    assert res.returncode == 1
    assert "varfx_broken" in res.stderr and "Traceback" not in res.stderr


def test_help_and_plugins_do_not_import_torch():
    code = (
        "import sys, runpy\n"
        "sys.argv = ['varfx'] + sys.argv[1:]\n"
        "try:\n    runpy.run_module('varfx', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'cola', 'h5py', 'scipy') if m in sys.modules]\n"
        "print('HEAVY=' + ','.join(heavy), file=sys.stderr)\n"
    )
    for args in (["--help"], ["plugins"], ["plugins", "--json"], ["fit", "--help"]):
        res = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=120)
        assert "HEAVY=\n" in res.stderr or res.stderr.rstrip().endswith("HEAVY="), (args, res.stderr[-500:])


# ---------------------------------------------------------------------------------------
# name clashes: the plugin registered last wins, one warning per clash


def _clashing_solver_module(label):
    from varfx import hookimpl
    from varfx.api import Solver

    class Clash(Solver):
        name = "cholesky"
        description = f"a third-party cholesky ({label})"

    class Mod:
        @hookimpl
        def register_solvers(register):
            register(Clash)

    return Mod, Clash


def test_third_party_plugin_replaces_a_builtin_and_warns_once(capsys):
    from varfx.default_plugins.solvers import CholeskySolver

    assert plugins.get_solvers()["cholesky"] is CholeskySolver
    mod, clash = _clashing_solver_module("a")
    plugins.get_plugin_manager().register(mod, name="third-party-a")
    capsys.readouterr()
    for _ in range(3):
        assert plugins.get_solvers()["cholesky"] is clash  # before: the built-in won
        assert plugins.lookup("solvers", "cholesky") is clash
    plugins.describe_plugins()
    err = capsys.readouterr().err
    assert err.count("warning") == 1, err
    assert "'cholesky' from plugin 'third-party-a' replaces the one from 'varfx.default_plugins.solvers'" in err


def test_tryfirst_does_not_change_who_wins():
    from varfx import hookimpl
    from varfx.api import Solver

    class Early(Solver):
        name = "cholesky"

    class Mod:
        @hookimpl(tryfirst=True)
        def register_solvers(register):
            register(Early)

    plugins.get_plugin_manager().register(Mod, name="third-party-tryfirst")
    assert plugins.get_solvers()["cholesky"] is Early


def test_later_of_two_third_party_plugins_wins():
    mod_a, clash_a = _clashing_solver_module("a")
    mod_b, clash_b = _clashing_solver_module("b")
    pm = plugins.get_plugin_manager()
    pm.register(mod_a, name="a")
    pm.register(mod_b, name="b")
    assert plugins.get_solvers()["cholesky"] is clash_b


def test_entry_point_clash_with_a_builtin(tmp_path):
    src = """
        from varfx import hookimpl
        from varfx.api import Solver

        class MyCholesky(Solver):
            name = "cholesky"
            description = "third-party cholesky"

        @hookimpl
        def register_solvers(register):
            register(MyCholesky)
    """
    path = make_dist(tmp_path, "varfx_clash", src)
    res = run_varfx(["plugins", "--json"], pythonpath=path)
    assert res.returncode == 0, res.stderr
    recs = {r["name"]: r for r in json.loads(res.stdout)["plugins"]}
    assert "cholesky" in recs["varfx_clash"]["solvers"]
    assert "cholesky" not in recs["varfx.default_plugins.solvers"]["solvers"]
    assert res.stderr.count("replaces the one from 'varfx.default_plugins.solvers'") == 1, res.stderr


def test_entry_points_are_sorted_by_name(monkeypatch):
    class EP:
        def __init__(self, name):
            self.name = name

    class EPs(list):
        def select(self, group):
            return list(self)

    monkeypatch.setattr(plugins.metadata, "entry_points", lambda: EPs([EP("zeta"), EP("alpha"), EP("mid")]))
    assert [ep.name for ep in plugins._entry_points()] == ["alpha", "mid", "zeta"]


def test_register_objectives_hook():
    from varfx import hookimpl
    from varfx.api import Objective

    class Dummy(Objective):
        name = "dummy-objective"
        description = "a test objective"

    class Mod:
        @hookimpl
        def register_objectives(register):
            register(Dummy)

    plugins.get_plugin_manager().register(Mod, name="objective-mod")
    assert plugins.get_objectives()["dummy-objective"] is Dummy
    assert plugins.lookup("objectives", "dummy-objective") is Dummy


def test_every_hook_is_documented_and_tested():
    """Each hookspec is in docs/plugins.md's hook table and named by some test (as
    datasette checks its plugin hooks)."""
    import inspect
    from pathlib import Path

    from varfx import hookspecs

    root = Path(__file__).resolve().parents[1]
    docs = (root / "docs" / "plugins.md").read_text()
    tests = "\n".join(p.read_text() for p in sorted((root / "tests").glob("test_*.py")))
    hooks = [n for n, f in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(f, "varfx_spec")]
    assert len(hooks) >= 7
    for name in hooks:
        params = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"| `{name}({params})` |" in docs, f"hook {name} is not in the table of docs/plugins.md"
        assert f"def {name}(" in tests, f"no test implements the hook {name}"
    # every registry kind is reachable through a hook
    assert set(plugins.KINDS.values()) <= set(hooks)
