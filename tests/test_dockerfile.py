from harness.stages.dockerfile import base_images, expand, instructions, label_build_stages

from .conftest import REPO_ROOT

MULTI_STAGE = """\
# syntax comment
ARG BASE=debian:bookworm
FROM ${BASE} AS builder
RUN apt-get update && \\
    apt-get install -y gcc
FROM $BASE-slim
COPY --from=builder /hello /hello
FROM scratch
COPY --from=0 /hello /hello
COPY --from=1 /bin/sh /bin/sh
"""


def test_instructions_join_continuations_and_skip_comments() -> None:
    found = instructions(MULTI_STAGE)
    assert [i.keyword for i in found] == ["ARG", "FROM", "RUN", "FROM", "COPY", "FROM", "COPY", "COPY"]
    run = found[2]
    assert run.arguments == "apt-get update &&  apt-get install -y gcc"
    assert (run.first_line, run.last_line) == (3, 4)


def test_base_images_follow_arg_defaults_and_build_args() -> None:
    assert base_images(MULTI_STAGE, {}) == ("debian:bookworm", "debian:bookworm-slim")
    assert base_images(MULTI_STAGE, {"BASE": "debian:trixie"}) == ("debian:trixie", "debian:trixie-slim")


def test_scratch_and_earlier_stages_are_not_bases() -> None:
    text = "FROM debian:bookworm AS build\nFROM build\nFROM 0\nFROM scratch\n"
    assert base_images(text, {}) == ("debian:bookworm",)


def test_the_repositorys_stages_need_the_expected_bases() -> None:
    def bases(stage: str) -> tuple[str, ...]:
        return base_images((REPO_ROOT / "stages" / stage / "Dockerfile").read_text(), {"BASE": "debian:trixie"})

    assert bases("01-naive") == ("debian:trixie",)
    assert bases("04-slim-base") == ("debian:trixie-slim",)
    assert bases("05-alpine") == ("alpine",)
    assert bases("07-scratch-libs") == ("debian:trixie",)


def test_expand_leaves_unknown_variables_empty_as_docker_does() -> None:
    assert expand("${A}:$B-x", {"A": "debian", "B": "sid"}) == "debian:sid-x"
    assert expand("$MISSING", {}) == ""


def test_labels_end_every_stage_but_the_last() -> None:
    labelled = label_build_stages(MULTI_STAGE, {"k": "v"})
    lines = labelled.splitlines()
    assert lines.count('LABEL "k"="v"') == 2
    # After each compile stage's own steps (shared by every namespace through the cache), before the next FROM.
    assert lines[lines.index("    apt-get install -y gcc") + 1 : lines.index("FROM $BASE-slim")] == ['LABEL "k"="v"']
    assert lines[lines.index("COPY --from=builder /hello /hello") + 1] == 'LABEL "k"="v"'
    assert lines[lines.index("FROM scratch") + 1 :] == ["COPY --from=0 /hello /hello", "COPY --from=1 /bin/sh /bin/sh"]
    assert [i.keyword for i in instructions(labelled)] == [
        "ARG",
        "FROM",
        "RUN",
        "LABEL",
        "FROM",
        "COPY",
        "LABEL",
        "FROM",
        "COPY",
        "COPY",
    ]


def test_single_stage_dockerfiles_are_left_untouched() -> None:
    text = "FROM debian\nRUN true\n"
    assert label_build_stages(text, {"k": "v"}) == text
