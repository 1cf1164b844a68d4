"""Signing in: throttling (django-axes) on the staff and admin sign-in pages, a
one-time code for the admin when DOCFLOW_ADMIN_REQUIRE_MFA is on (django-otp), and
sessions that end after the idle timeout."""

from __future__ import annotations

import datetime
import time

import pytest
import time_machine
from django.contrib.sessions.models import Session
from django.test import Client
from django.urls import reverse
from django.utils import timezone
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice

from tests.factories import UserFactory

PASSWORD = "correct-horse-battery-staple"
HERE = "10.0.0.1"
ELSEWHERE = "10.0.0.2"
SIGN_IN_PAGES = ["/accounts/login/", "/admin/login/"]


@pytest.fixture(autouse=True)
def _limit(settings):
    settings.AXES_FAILURE_LIMIT = 3


@pytest.fixture
def ada(db):
    return UserFactory(username="ada", password=PASSWORD, is_staff=True)


def sign_in(client, page, password, *, address=HERE, **extra):
    return client.post(
        page,
        {"username": "ada", "password": password, **extra},
        REMOTE_ADDR=address,
    )


def signed_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("page", SIGN_IN_PAGES)
def test_repeated_failures_lock_the_username_from_that_address(ada, page):
    client = Client()

    failures = [sign_in(client, page, "wrong").status_code for _ in range(3)]
    locked = sign_in(client, page, PASSWORD)

    assert failures == [200, 200, 429]
    assert locked.status_code == 429
    assert "Too many sign-in attempts" in locked.content.decode()
    assert "Try again in 15 minutes." in locked.content.decode()
    assert not signed_in(client)


@pytest.mark.parametrize("page", SIGN_IN_PAGES)
def test_the_lock_is_for_that_username_and_address_only(ada, page):
    for _ in range(3):
        sign_in(Client(), page, "wrong")

    elsewhere = Client()
    response = sign_in(elsewhere, page, PASSWORD, address=ELSEWHERE)

    assert response.status_code == 302
    assert signed_in(elsewhere)


NGINX = "10.0.0.21"


def sign_in_from(client, page, password, *, peer: str, real_ip: str):
    """A sign-in that reached docflow from ``peer`` saying X-Real-IP ``real_ip``."""
    return client.post(
        page,
        {"username": "ada", "password": password},
        REMOTE_ADDR=peer,
        HTTP_X_REAL_IP=real_ip,
    )


@pytest.mark.parametrize("page", SIGN_IN_PAGES)
def test_behind_a_trusted_proxy_the_lock_is_for_the_address_nginx_saw(
    ada, page, settings
):
    """Every request arrives from nginx: the failures of one address behind it lock
    that address out, not everyone signing in as that username."""
    settings.DOCFLOW_TRUSTED_PROXIES = ["10.0.0.16/28"]
    for _ in range(3):
        sign_in_from(Client(), page, "wrong", peer=NGINX, real_ip="192.0.2.7")

    locked = sign_in_from(Client(), page, PASSWORD, peer=NGINX, real_ip="192.0.2.7")
    elsewhere = Client()
    allowed = sign_in_from(
        elsewhere, page, PASSWORD, peer=NGINX, real_ip="198.51.100.9"
    )

    assert locked.status_code == 429
    assert allowed.status_code == 302
    assert signed_in(elsewhere)


@pytest.mark.parametrize("page", SIGN_IN_PAGES)
def test_an_untrusted_client_cannot_choose_the_address_it_is_counted_under(
    ada, page, settings
):
    settings.DOCFLOW_TRUSTED_PROXIES = ["10.0.0.16/28"]
    for n in range(3):
        # A new X-Real-IP each time, from an address that is not nginx.
        sign_in_from(Client(), page, "wrong", peer=HERE, real_ip=f"192.0.2.{n}")

    response = sign_in_from(Client(), page, PASSWORD, peer=HERE, real_ip="192.0.2.99")

    assert response.status_code == 429


def test_a_malformed_forwarded_address_counts_as_the_proxy(settings, rf):
    from docflow.client_address import client_address

    settings.DOCFLOW_TRUSTED_PROXIES = ["10.0.0.21"]
    through = rf.get("/", REMOTE_ADDR=NGINX, HTTP_X_REAL_IP="192.0.2.7")
    garbled = rf.get("/", REMOTE_ADDR=NGINX, HTTP_X_REAL_IP="192.0.2.7, 10.0.0.1")
    direct = rf.get("/", REMOTE_ADDR=HERE, HTTP_X_REAL_IP="192.0.2.7")

    assert client_address(through) == "192.0.2.7"
    assert client_address(garbled) == NGINX
    assert client_address(direct) == HERE


def test_a_success_clears_the_failures(ada):
    client = Client()
    sign_in(client, "/accounts/login/", "wrong")
    sign_in(client, "/accounts/login/", "wrong")
    assert sign_in(client, "/accounts/login/", PASSWORD).status_code == 302
    client.logout()

    again = [sign_in(client, "/accounts/login/", "wrong").status_code for _ in range(2)]

    assert again == [200, 200]
    assert sign_in(client, "/accounts/login/", PASSWORD).status_code == 302


def test_the_lock_ends_after_the_cool_off(ada, settings):
    client = Client()
    for _ in range(3):
        sign_in(client, "/accounts/login/", "wrong")
    assert sign_in(client, "/accounts/login/", PASSWORD).status_code == 429

    later = timezone.now() + settings.AXES_COOLOFF_TIME + datetime.timedelta(minutes=1)
    with time_machine.travel(later, tick=False):
        response = sign_in(client, "/accounts/login/", PASSWORD)

    assert response.status_code == 302


# Admin two-factor sign-in ---------------------------------------------------------


@pytest.fixture
def mfa(settings):
    settings.DOCFLOW_ADMIN_REQUIRE_MFA = True


def current_code(device: TOTPDevice) -> str:
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    totp.time = time.time()
    return f"{totp.token():0{device.digits}d}"


def test_with_mfa_on_a_signed_in_staff_member_without_a_code_is_kept_out(ada, mfa):
    client = Client()
    client.force_login(ada)

    response = client.get(reverse("admin:index"))
    page = client.get(reverse("admin:login"))

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))
    assert 'name="otp_token"' in page.content.decode()


def test_with_mfa_on_the_password_alone_does_not_open_the_admin(ada, mfa):
    TOTPDevice.objects.create(user=ada, name="phone", confirmed=True)
    client = Client()

    response = sign_in(client, "/admin/login/", PASSWORD)
    index = client.get(reverse("admin:index"))

    assert response.status_code == 200  # the form again, asking for the code
    assert index.status_code == 302


def test_with_mfa_on_a_wrong_code_does_not_open_the_admin(ada, mfa):
    device = TOTPDevice.objects.create(user=ada, name="phone", confirmed=True)
    client = Client()
    wrong = f"{(int(current_code(device)) + 1) % 10**6:06d}"

    sign_in(
        client,
        "/admin/login/",
        PASSWORD,
        otp_device=device.persistent_id,
        otp_token=wrong,
    )

    assert client.get(reverse("admin:index")).status_code == 302


def test_with_mfa_on_password_and_code_open_the_admin(ada, mfa):
    device = TOTPDevice.objects.create(user=ada, name="phone", confirmed=True)
    client = Client()

    response = sign_in(
        client,
        "/admin/login/",
        PASSWORD,
        otp_device=device.persistent_id,
        otp_token=current_code(device),
    )

    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_with_mfa_off_the_admin_asks_for_no_code(ada, settings):
    settings.DOCFLOW_ADMIN_REQUIRE_MFA = False
    client = Client()
    page = client.get(reverse("admin:login"))

    response = sign_in(client, "/admin/login/", PASSWORD)

    assert 'name="otp_token"' not in page.content.decode()
    assert response.status_code == 302
    assert client.get(reverse("admin:index")).status_code == 200


def test_mfa_does_not_apply_to_the_staff_pages(ada, mfa):
    client = Client()

    response = sign_in(client, "/accounts/login/", PASSWORD)

    assert response.status_code == 302
    assert client.get("/work/").status_code == 200


# Sessions -------------------------------------------------------------------------


def test_each_request_pushes_the_idle_expiry_on(ada, settings):
    client = Client()
    client.force_login(ada)
    session = Session.objects.get()
    session.expire_date = timezone.now() + datetime.timedelta(seconds=30)
    session.save(update_fields=["expire_date"])

    client.get("/work/")

    expiry = Session.objects.get().expire_date
    expected = timezone.now() + datetime.timedelta(seconds=settings.SESSION_COOKIE_AGE)
    assert abs((expiry - expected).total_seconds()) < 60


def test_an_idle_session_has_ended(ada):
    client = Client()
    client.force_login(ada)
    Session.objects.update(expire_date=timezone.now() - datetime.timedelta(seconds=1))

    response = client.get("/work/")

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")


def test_session_cookie_is_http_only_and_same_site(ada):
    client = Client()

    sign_in(client, "/accounts/login/", PASSWORD)

    from django.conf import settings

    cookie = client.cookies[settings.SESSION_COOKIE_NAME]
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "Lax"
    assert cookie["max-age"] == ""  # ends with the browser too


# Passwords ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "password",
    ["Sh0rt-pass!", "password1234", "123456789012345", "ada-lovelace-ada"],
)
def test_weak_passwords_are_refused(db, password):
    from django.contrib.auth.password_validation import validate_password
    from django.core.exceptions import ValidationError

    user = UserFactory.build(username="ada-lovelace-ada", first_name="Ada")

    with pytest.raises(ValidationError):
        validate_password(password, user=user)


def test_a_long_uncommon_password_is_accepted(db):
    from django.contrib.auth.password_validation import validate_password

    assert validate_password("tangerine-lighthouse-oboe-47") is None
