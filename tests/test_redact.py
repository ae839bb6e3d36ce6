from harness.records.redact import redact


def test_mirror_hosts_are_kept_out_of_results() -> None:
    mirror = "mirror" + ".example" + ".org"
    assert (
        redact(f"var/lib/apt/lists/{mirror}_debian_dists_bookworm_InRelease")
        == "var/lib/apt/lists/<mirror>_debian_dists_bookworm_InRelease"
    )
    assert redact(f"Err:1 http://{mirror}/debian bookworm InRelease") == "Err:1 http://<mirror>/debian bookworm InRelease"
    assert redact("/usr/lib/x86_64-linux-gnu/libc.so.6") == "/usr/lib/x86_64-linux-gnu/libc.so.6"
    # A base no registry can serve: the Engine quotes the registry's host in a URL and in the failed lookup.
    registry = "registry" + ".example" + ".com"
    assert (
        redact(f'Get "https://{registry}/v2/": dial tcp: lookup {registry} on 10.0.0.53:53: no such host')
        == 'Get "https://<mirror>/v2/": dial tcp: lookup <mirror> on 10.0.0.53:53: no such host'
    )
