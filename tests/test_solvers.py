"""The built-in solver plugins against the conformance suite (varfx.testing.solvers)."""

from varfx.testing.solvers import SolverConformance


class TestCholesky(SolverConformance):
    solver_name = "cholesky"


class TestCGSLQ(SolverConformance):
    solver_name = "cg-slq"


class TestNystrom(SolverConformance):
    solver_name = "nystrom"


class TestNystromLowRank(SolverConformance):
    """rank < k everywhere, so the probes and the preconditioned SLQ really work."""

    solver_name = "nystrom"
    solver_options = {"rank": 20}


def test_every_builtin_solver_has_a_conformance_case():
    from varfx import plugins

    plugins.reset()
    builtin = {name for name, (_, plugin) in plugins._collect("solvers").items()
               if plugin == "varfx.default_plugins.solvers"}
    tested = {cls.solver_name for cls in (TestCholesky, TestCGSLQ, TestNystrom, TestNystromLowRank)}
    assert builtin == tested
