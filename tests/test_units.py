import pytest

from harness.records.units import human_size, parse_size

# (bytes, what `docker images` printed for an image of exactly that size),
# each pair read off Docker CLI 28.2 against Engine 20.10 on this project's machine.
DOCKER_IMAGES_PRINTED = [
    (999, "999B"),
    (1000, "1kB"),
    (15_960, "16kB"),
    (999_499, "999kB"),
    (999_500, "1e+03kB"),  # Go's %.3g, faithfully odd
    (1_234_567, "1.23MB"),
    (2_157_192, "2.16MB"),
    (74_493_443, "74.5MB"),
    (99_950_000, "100MB"),
    (116_240_666, "116MB"),
    (621_902_757, "622MB"),
]


@pytest.mark.parametrize(("size", "printed"), DOCKER_IMAGES_PRINTED)
def test_human_size_matches_docker_images(size: int, printed: str) -> None:
    assert human_size(size) == printed


@pytest.mark.parametrize(("text", "size"), [("8.64kB", 8640), ("235MB", 235_000_000), ("1.85MB", 1_850_000), ("0B", 0)])
def test_parse_size_reads_the_tutorials_figures(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["235 MiB", "MB", "1,5MB", "-3kB", ""])
def test_parse_size_rejects_other_units(text: str) -> None:
    with pytest.raises(ValueError, match="not a size as docker prints it"):
        parse_size(text)
