from urllib.parse import quote

from aml_jupyterhub.accesslog import scrub_uri


def test_nested_callback_urls_lose_their_code_and_state():
    inner = "/user/alice/oauth_callback?code=C0DE&state=ST4TE"
    out = scrub_uri("/hub/error/503?url=" + quote(inner, safe=""))
    assert "C0DE" not in out and "ST4TE" not in out and out.startswith("/hub/error/503?url=")
    assert "oauth_callback" in out  # still says what failed


def test_plain_secrets_and_harmless_urls():
    assert "T0KEN" not in scrub_uri("/hub/api/users?token=T0KEN&x=1")
    assert scrub_uri("/hub/home") == "/hub/home"
    assert scrub_uri("/hub/spawn?next=%2Fuser%2Falice%2Flab") == "/hub/spawn?next=%2Fuser%2Falice%2Flab"
