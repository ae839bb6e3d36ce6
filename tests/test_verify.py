import pytest

from harness.records.engine import RunResult
from harness.records.report import Outcome
from harness.run.verify import judge
from harness.stages.stage import Expectation

PRINTS = Expectation(stdout="hello!\n")
FAILS = Expectation(failure="no such file or directory")


def ran(
    stdout: str = "", stderr: str = "", exit_code: int | None = 0, error: str | None = None, timed_out: bool = False
) -> RunResult:
    return RunResult(stdout=stdout, stderr=stderr, exit_code=exit_code, error=error, timed_out=timed_out)


def test_exact_stdout_passes() -> None:
    assert judge(PRINTS, ran("hello!\n")) == (Outcome.PASS, None)


@pytest.mark.parametrize(
    ("observed", "reason"),
    [
        (ran("hello!"), "expected stdout"),  # the newline matters
        (ran("hello!\n", exit_code=3), "exited with code 3"),
        (ran(exit_code=None, error="OCI runtime create failed"), "did not start"),
        (ran(exit_code=None, error="killed after the 30 s time limit", timed_out=True), "time limit"),
    ],
)
def test_anything_else_fails_with_a_reason(observed: RunResult, reason: str) -> None:
    outcome, why = judge(PRINTS, observed)
    assert outcome is Outcome.FAIL and why is not None and reason in why


@pytest.mark.parametrize(
    "observed",
    [
        ran(stderr="exec /hello: no such file or directory\n", exit_code=1),  # runc reports it as the program's failure
        ran(exit_code=None, error='exec: "/hello": stat /hello: no such file or directory: unknown'),  # or at start
    ],
)
def test_an_expected_failure_passes_wherever_the_message_appears(observed: RunResult) -> None:
    assert judge(FAILS, observed) == (Outcome.PASS, None)


def test_an_expected_failure_must_happen_and_say_the_right_thing() -> None:
    assert judge(FAILS, ran("hello!\n"))[0] is Outcome.FAIL
    outcome, why = judge(FAILS, ran(stderr="permission denied", exit_code=126))
    assert outcome is Outcome.FAIL and why is not None and "without 'no such file or directory'" in why


def test_under_emulation_the_same_missing_loader_passes_in_qemus_words() -> None:
    """qemu-user starts, then cannot open the loader: its own exit code and its capitalised strerror."""
    observed = ran(
        stderr="aarch64-binfmt-P: Could not open '/lib/ld-linux-aarch64.so.1': No such file or directory\n", exit_code=255
    )
    assert judge(FAILS, observed) == (Outcome.PASS, None)
