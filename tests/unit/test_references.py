"""The image reference grammar (imagekit/references.py), in process: hosts, ports, tags, digests,
and the one-line refusals that name the flag and the fix."""
from __future__ import annotations

import pytest

from imagekit_core.errors import UsageError
from imagekit_core.references import Reference, is_registry_host, parse_reference

DIGEST = "sha256:" + "0123456789abcdef" * 4


@pytest.mark.parametrize(("text", "host", "repository", "tag", "digest"), [
    ("wordfreq", None, "wordfreq", None, None),
    ("wordfreq:v1", None, "wordfreq", "v1", None),
    ("imagekit/debian-python:bookworm", None, "imagekit/debian-python", "bookworm", None),
    ("library/python:3.11-slim", None, "library/python", "3.11-slim", None),
    ("a__b/c.d/e-f--g", None, "a__b/c.d/e-f--g", None, None),
    ("localhost/x", "localhost", "x", None, None),
    ("localhost:5000/x:1", "localhost:5000", "x", "1", None),
    ("127.0.0.1:5000/imagekit-test/wordfreq:docker", "127.0.0.1:5000", "imagekit-test/wordfreq", "docker", None),
    ("quay.io/org/app", "quay.io", "org/app", None, None),
    ("Registry.Example.com/app:1", "Registry.Example.com", "app", "1", None),  # hosts may have capitals
    ("[::1]:5000/app:x", "[::1]:5000", "app", "x", None),
    (f"quay.io/org/app@{DIGEST}", "quay.io", "org/app", None, DIGEST),
    (f"quay.io/org/app:1@{DIGEST}", "quay.io", "org/app", "1", DIGEST),
    (f"app@{DIGEST}", None, "app", None, DIGEST),
    ("app:" + "t" * 128, None, "app", "t" * 128, None),
    ("app:_x.Y-1", None, "app", "_x.Y-1", None),
])
def test_a_reference_parses_into_its_parts(text: str, host: str | None, repository: str, tag: str | None,
                                           digest: str | None) -> None:
    parsed = parse_reference(text, "--image")
    assert parsed == Reference(host, repository, tag, digest)
    assert str(parsed) == text


@pytest.mark.parametrize(("component", "is_host"), [
    ("127.0.0.1:5000", True), ("quay.io", True), ("localhost", True), ("[::1]", True), ("host:5000", True),
    ("imagekit", False), ("library", False), ("local-host", False),
])
def test_a_first_component_is_a_host_only_with_a_dot_a_port_or_localhost(component: str, is_host: bool) -> None:
    assert is_registry_host(component) is is_host
    parsed = parse_reference(f"{component}/app", "--image")
    assert (parsed.host == component) is is_host
    assert parsed.name == f"{component}/app"


def test_a_colon_after_the_last_slash_is_a_tag_before_it_a_port() -> None:
    assert parse_reference("host:5000/app", "REF") == Reference("host:5000", "app")
    assert parse_reference("app:5000", "REF") == Reference(None, "app", "5000")


@pytest.mark.parametrize("text", [
    "", " app", "app ", "Wordfreq Latest", "Imagekit/x", "UPPER", "app:", "app:-x", "app:" + "t" * 129,
    "a:b:c", "/app", "app/", "a//b", "app@sha256:abc", "app@md5:" + "0" * 32, f"app@{DIGEST.upper()}",
    "-app", "app_", "a___b", "host:port/app", "quay.io/App", "a" * 256,
])
def test_a_bad_reference_is_refused_in_one_line_naming_the_flag_and_the_fix(text: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_reference(text, "--image")
    message = str(caught.value)
    assert message.startswith(f"--image {text!r} is not an image reference (fix: ")
    assert "\n" not in message and caught.value.exit_code == 2


def test_a_name_longer_than_255_characters_is_refused() -> None:
    fits = "quay.io/" + "a" * (255 - len("quay.io/"))
    assert parse_reference(fits, "REF").name == fits
    with pytest.raises(UsageError):
        parse_reference(fits + "a", "REF")


def test_a_tag_to_give_an_image_carries_no_digest() -> None:
    assert parse_reference(f"quay.io/app@{DIGEST}", "--tag").digest == DIGEST
    with pytest.raises(UsageError, match=r"^--tag .* \(fix: write \[HOST\[:PORT\]/\]NAME\[:TAG\], "):
        parse_reference(f"quay.io/app@{DIGEST}", "--tag", digest=False)


@pytest.mark.parametrize("text", ["wordfreq:latest", "imagekit/wordfreq:1"])
def test_pushing_needs_a_registry_host(text: str) -> None:
    assert parse_reference(text, "REF").host is None
    with pytest.raises(UsageError, match=rf"^REF '{text}' names no registry \(fix: write HOST\[:PORT\]/NAME"):
        parse_reference(text, "REF", registry=True)
    assert parse_reference(f"localhost:5000/{text}", "REF", registry=True).host == "localhost:5000"


def test_with_tag_replaces_tag_and_digest() -> None:
    pushed = parse_reference(f"127.0.0.1:5000/app:1@{DIGEST}", "REF")
    assert str(pushed.with_tag("latest")) == "127.0.0.1:5000/app:latest"
