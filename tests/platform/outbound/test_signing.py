"""Standard Webhooks signatures, checked by the ``standardwebhooks`` package as an independent verifier."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError

from keel.platform.outbound.signing import generate_secret, sign, signature_header, webhook_headers

BODY = b'{"type": "product.created", "data": {"id": "prd_1"}}'
MSG_ID = "msg_2kWq1"


def test_a_generated_secret_is_whsec_and_32_random_bytes() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret.removeprefix("whsec_"), validate=True)) == 32
    assert generate_secret() != secret


def test_sign_matches_the_published_test_vector() -> None:
    signature = sign(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        msg_id="msg_p5jXN8AQM9LWM0D4loKWxJek",
        timestamp=1614265330,
        body=b'{"test": 2432232314}',
    )
    assert signature == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def test_the_headers_verify_with_the_reference_library() -> None:
    secret = generate_secret()
    headers = webhook_headers([secret], msg_id=MSG_ID, timestamp=int(time.time()), body=BODY)
    assert Webhook(secret).verify(BODY, headers) == {"type": "product.created", "data": {"id": "prd_1"}}
    assert headers["webhook-id"] == MSG_ID
    assert headers["content-type"] == "application/json"


def test_during_rotation_each_secret_alone_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    headers = webhook_headers([old, new], msg_id=MSG_ID, timestamp=int(time.time()), body=BODY)
    assert len(headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(generate_secret()).verify(BODY, headers)


def test_a_tampered_body_fails() -> None:
    secret = generate_secret()
    headers = webhook_headers([secret], msg_id=MSG_ID, timestamp=int(time.time()), body=BODY)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY.replace(b"prd_1", b"prd_2"), headers)


def test_a_tampered_timestamp_fails() -> None:
    secret = generate_secret()
    timestamp = int(time.time())
    headers = webhook_headers([secret], msg_id=MSG_ID, timestamp=timestamp, body=BODY)
    headers["webhook-timestamp"] = str(timestamp - 1)
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(BODY, headers)


def test_signing_without_any_secret_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match="at least one"):
        signature_header([], msg_id=MSG_ID, timestamp=0, body=BODY)
