"""Every API endpoint, taken from the OpenAPI schema so that a new one is covered too:
without a token, with a wrong token, and with another user's IDs (404, never 403 with data).
Plus: no secret in the repository."""
from __future__ import annotations

import re
import subprocess

import pytest
import requests

from tests.images import line_png
from tests.stack import REPO

pytestmark = pytest.mark.slow

PUBLIC = {"/api/v1/auth/token/"}  # exchanges a password for a token: it cannot need one


def _operations(stack) -> list[tuple[str, str]]:
    schema = requests.get(f"{stack.url}/api/schema/", headers={"Accept": "application/json"}).json()
    return [(method.upper(), path) for path, item in schema["paths"].items() for method in item if method in ("get", "post", "put", "patch", "delete")]


def test_every_endpoint_needs_a_valid_token(stack):
    operations = _operations(stack)
    assert len(operations) >= 12
    for method, path in operations:
        if path in PUBLIC:
            continue
        url = stack.url + re.sub(r"\{[^}]+\}", "00000000-0000-0000-0000-000000000000", path).replace("{name}", "boxes")
        for headers, code in (({}, "not_authenticated"), ({"Authorization": "Token not-a-real-token"}, "authentication_failed")):
            response = requests.request(method, url, headers=headers)
            assert response.status_code == 401, (method, path, headers, response.status_code)
            assert response.json()["error"]["code"] == code


def test_another_users_ids_are_404_on_every_endpoint(stack):
    owner, stranger = stack.client(), stack.client()
    job = owner.wait(owner.submit(line_png("6*7", seed=1)).headers["Location"])
    batch = owner.post(stack.api("batches/"), files=[("files", ("p.png", line_png("6*7", seed=1), "image/png"))]).json()
    ids = {"jobs": job["id"], "batches": batch["id"]}
    checked = 0
    for method, path in _operations(stack):
        if "{id}" not in path:
            continue
        kind = path.split("/")[3]
        url = stack.url + path.replace("{id}", ids[kind]).replace("{name}", "boxes")
        body = {"json": {"expression": "1+1"}} if method == "POST" and "corrections" in path else {}
        if method == "POST" and "pages" in path:
            body = {"files": [("files", ("p.png", line_png("6*7", seed=1), "image/png"))]}
        response = stranger.request(method, url, **body)
        assert response.status_code == 404, (method, path, response.status_code)
        assert response.json() == {"error": {"code": "not_found", "message": response.json()["error"]["message"]}}
        assert job["id"] not in response.text and "6*7" not in response.text
        checked += 1
    assert checked >= 8
    assert owner.get(job["url"]).json()["status"] == "succeeded"  # untouched


def test_a_revoked_token_or_a_deactivated_user_stops_working_at_once(stack):
    # Tokens are checked through a cache (AUTH_TOKEN_CACHE_SECONDS); a change must not wait for it.
    from rest_framework.authtoken.models import Token

    client = stack.client()
    assert client.get(stack.api("jobs/")).status_code == 200  # now cached
    client.user.is_active = False
    client.user.save()
    assert client.get(stack.api("jobs/")).status_code == 401
    client.user.is_active = True
    client.user.save()
    assert client.get(stack.api("jobs/")).status_code == 200
    Token.objects.filter(user=client.user).delete()
    refused = client.get(stack.api("jobs/"))
    assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_failed"


def test_the_login_page_locks_out_after_repeated_failures(stack):
    from django.conf import settings as django_settings

    stack.client(username="guessed", password="the real password 42")

    def attempt(session, username, password):
        session.get(f"{stack.url}/accounts/login/")
        return session.post(f"{stack.url}/accounts/login/", allow_redirects=False,
                            data={"username": username, "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                            headers={"Referer": f"{stack.url}/accounts/login/"})

    browser = requests.Session()
    for _ in range(django_settings.LOGIN_MAX_FAILURES):
        assert attempt(browser, "guessed", "wrong guess").status_code == 200  # the form again, with an error
    locked = attempt(browser, "guessed", "the real password 42")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in locked.text
    # The API's token exchange shares the count: the right password does not get round it there.
    refused = requests.post(stack.api("auth/token/"), json={"username": "guessed", "password": "the real password 42"})
    assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
    assert refused.json()["error"]["code"] == "throttled" and "token" not in refused.json()
    stack.client(username="someone-else", password="another password 42")
    assert attempt(requests.Session(), "someone-else", "another password 42").status_code == 302  # others unaffected


def test_failed_guesses_at_the_token_exchange_lock_out_the_web_login_too(stack):
    from django.conf import settings as django_settings

    stack.client(username="api-guessed", password="the real password 45")
    token_url = stack.api("auth/token/")
    for _ in range(django_settings.LOGIN_MAX_FAILURES):
        assert requests.post(token_url, json={"username": "api-guessed", "password": "wrong guess"}).status_code == 401
    locked = requests.post(token_url, json={"username": "api-guessed", "password": "the real password 45"})
    assert locked.status_code == 429 and locked.json()["error"]["code"] == "throttled"
    browser = requests.Session()
    browser.get(f"{stack.url}/accounts/login/")
    web = browser.post(f"{stack.url}/accounts/login/", allow_redirects=False, headers={"Referer": f"{stack.url}/accounts/login/"},
                       data={"username": "api-guessed", "password": "the real password 45", "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
    assert web.status_code == 429
    # A success clears the count: another user's right password after a few wrong ones is let in.
    stack.client(username="api-forgetful", password="the real password 46")
    for attempts in (3, django_settings.LOGIN_MAX_FAILURES - 1):  # 3 + 9 would lock out, were the 3 not cleared
        for _ in range(attempts):
            assert requests.post(token_url, json={"username": "api-forgetful", "password": "wrong guess"}).status_code == 401
        assert requests.post(token_url, json={"username": "api-forgetful", "password": "the real password 46"}).status_code == 200


def test_a_token_read_just_before_its_revocation_is_not_cached_after_it(stack, monkeypatch):
    # The race, in order: a request misses the cache and reads the token from the database; the user
    # regenerates the token (its delete drops the cache entry); the request then fills the cache.
    # The request's own code runs; only the revocation is slipped in between its read and its fill.
    from rest_framework.authentication import TokenAuthentication
    from rest_framework.authtoken.models import Token

    from webapp.recognition.authentication import CachedTokenAuthentication

    client = stack.client()
    read_from_database = TokenAuthentication.authenticate_credentials

    def read_then_revoked(self, key):
        found = read_from_database(self, key)
        Token.objects.filter(user=client.user).delete()  # as /account/token/ regenerates it
        return found

    monkeypatch.setattr(TokenAuthentication, "authenticate_credentials", read_then_revoked)
    user, token = CachedTokenAuthentication().authenticate_credentials(client.token)  # read before, filled after
    monkeypatch.undo()
    assert user == client.user and token.key == client.token  # that request was let in: it started before
    for _ in range(2):  # ...but the next ones are not, from the cache or the database
        refused = client.get(stack.api("jobs/"))
        assert refused.status_code == 401 and refused.json()["error"]["code"] == "authentication_failed"
    new = Token.objects.create(user=client.user)
    assert client.get(stack.api("jobs/"), headers={"Authorization": f"Token {new.key}"}).status_code == 200


def test_a_login_on_the_web_keeps_the_users_token_cached_and_deactivating_the_user_does_not(stack):
    from django.core.cache import cache

    from webapp.recognition.authentication import _cache_key

    client = stack.client(password="a long enough password 44")
    assert client.get(stack.api("jobs/")).status_code == 200
    assert isinstance(cache.get(_cache_key(client.token)), tuple)  # the token is served from the cache
    browser = requests.Session()
    browser.get(f"{stack.url}/accounts/login/")
    logged_in = browser.post(f"{stack.url}/accounts/login/", allow_redirects=False, headers={"Referer": f"{stack.url}/accounts/login/"},
                             data={"username": client.user.username, "password": "a long enough password 44", "csrfmiddlewaretoken": browser.cookies["csrftoken"]})
    assert logged_in.status_code == 302
    client.user.refresh_from_db()
    assert client.user.last_login is not None
    assert isinstance(cache.get(_cache_key(client.token)), tuple)  # a login (last_login) revokes nothing
    client.user.is_active = False
    client.user.save()
    assert client.get(stack.api("jobs/")).status_code == 401  # a real change still does, at once


def test_the_admin_login_locks_out_as_the_web_login_does(stack):
    from django.conf import settings as django_settings
    from django.contrib.auth import get_user_model

    get_user_model().objects.create_user("admin-guessed", password="the real password 43", is_staff=True)

    def attempt(session, password, page="/admin/login/"):
        session.get(f"{stack.url}{page}")
        return session.post(f"{stack.url}{page}", allow_redirects=False,
                            data={"username": "admin-guessed", "password": password, "csrfmiddlewaretoken": session.cookies["csrftoken"]},
                            headers={"Referer": f"{stack.url}{page}"})

    browser = requests.Session()
    for _ in range(django_settings.LOGIN_MAX_FAILURES):
        assert attempt(browser, "wrong guess").status_code == 200  # the admin's form again, with an error
    locked = attempt(browser, "the real password 43")
    assert locked.status_code == 429 and int(locked.headers["Retry-After"]) > 0
    assert "Too many failed attempts" in locked.text and "sessionid" not in browser.cookies
    assert browser.get(f"{stack.url}/admin/", allow_redirects=False).status_code == 302  # still not logged in
    # One count for both pages: the web login refuses the pair too.
    assert attempt(requests.Session(), "the real password 43", page="/accounts/login/").status_code == 429
    # Others are unaffected: a staff user logs in to the admin as before.
    get_user_model().objects.create_user("admin-other", password="another password 43", is_staff=True)
    other = requests.Session()
    other.get(f"{stack.url}/admin/login/")
    response = other.post(f"{stack.url}/admin/login/?next=/admin/", allow_redirects=False,
                          data={"username": "admin-other", "password": "another password 43", "csrfmiddlewaretoken": other.cookies["csrftoken"]},
                          headers={"Referer": f"{stack.url}/admin/login/"})
    assert response.status_code == 302 and response.headers["Location"] == "/admin/" and "sessionid" in other.cookies


def test_no_secret_is_committed():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    patterns = {
        "AWS access key": re.compile(r"AKIA[0-9A-Z]{16}"),
        "private key": re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
        "a real Django secret": re.compile(r"DJANGO_SECRET_KEY\s*=\s*['\"]?(?!replace-with|\$|k3y-for)[^\s'\"]{20,}"),
        "a password in a URL": re.compile(r"postgres(?:ql)?://[^:\s/]+:(?!change-me|\.\.\.|…|pw@)[^@\s]{6,}@"),
    }
    found = []
    for name in files:
        path = REPO / name
        if path.suffix in (".png", ".keras", ".npz", ".pdf") or not path.is_file():
            continue
        text = path.read_text(errors="ignore")
        found += [f"{name}: {kind}" for kind, pattern in patterns.items() if pattern.search(text)]
    assert found == []


def test_wrong_passwords_sent_at_once_all_count_towards_the_lockout(stack):
    # Read-then-write counting let a burst of parallel guesses count as one or two.
    from concurrent.futures import ThreadPoolExecutor

    from django.conf import settings as django_settings

    stack.client(username="burst-guessed", password="the real password 48")
    token_url = stack.api("auth/token/")

    def guess(_):
        return requests.post(token_url, json={"username": "burst-guessed", "password": "wrong guess"}).status_code

    with ThreadPoolExecutor(max_workers=django_settings.LOGIN_MAX_FAILURES) as pool:
        codes = list(pool.map(guess, range(django_settings.LOGIN_MAX_FAILURES)))
    assert set(codes) <= {401, 429}
    locked = requests.post(token_url, json={"username": "burst-guessed", "password": "the real password 48"})
    assert locked.status_code == 429
