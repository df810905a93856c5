from __future__ import annotations

from typing import Annotated, Literal

from pydantic import ConfigDict, EmailStr, Field, StringConstraints

from keel.platform.http.envelope import Schema
from keel.platform.security.passwords import MAX_LENGTH, MIN_LENGTH
from keel.users.schemas import FullName

Password = Annotated[str, StringConstraints(min_length=MIN_LENGTH, max_length=MAX_LENGTH)]
# Login accepts whatever was typed (bounded): the policy applies when a password is set.
LoginPassword = Annotated[str, StringConstraints(min_length=1, max_length=MAX_LENGTH)]
# Six digits (TOTP) or a recovery code (two groups of eight hex digits).
Otp = Annotated[str, StringConstraints(pattern=r"^(\d{6}|[0-9a-fA-F]{8}-[0-9a-fA-F]{8})$")]
# In a form, an empty field means "not sent" (that is how FastAPI reads it).
FormOtp = Annotated[str, StringConstraints(pattern=r"^(|\d{6}|[0-9a-fA-F]{8}-[0-9a-fA-F]{8})$")]
LoginEmail = Annotated[str, StringConstraints(min_length=1, max_length=254)]
# Bounded generously: a JWT pasted here should get INVALID_TOKEN, not a length error.
OpaqueToken = Annotated[str, StringConstraints(min_length=16, max_length=4096)]


class Register(Schema):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr = Field(description="Login e-mail; unique, case-insensitive.", max_length=254)
    password: Password = Field(
        description="12..128 characters; not your e-mail, not a repeated or sequential pattern, "
        "not a common password."
    )
    full_name: FullName = Field(description="Display name, 1..100 characters.")


class Login(Schema):
    model_config = ConfigDict(extra="forbid")

    email: LoginEmail = Field(description="Login e-mail.")
    password: LoginPassword = Field(description="The account's password.")
    otp: Otp | None = Field(None, description="TOTP code or recovery code, when MFA is enabled.")


class Refresh(Schema):
    model_config = ConfigDict(extra="forbid")

    refresh_token: OpaqueToken = Field(description="The refresh token from the last login or refresh.")


class PasswordChange(Schema):
    model_config = ConfigDict(extra="forbid")

    current_password: LoginPassword = Field(description="The password in use now.")
    new_password: Password = Field(description="The new password (same policy as registration).")


class TokenPair(Schema):
    access_token: str = Field(description="JWT for `Authorization: Bearer`; short-lived.")
    refresh_token: str = Field(description="Opaque; exchange it at /auth/refresh. Single use.")
    token_type: Literal["bearer"] = Field("bearer", description="Always bearer.")
    expires_in: int = Field(description="Seconds until the access token expires.")


class MfaSetup(Schema):
    secret: str = Field(description="Base32 TOTP secret (enter it in an authenticator app).")
    otpauth_uri: str = Field(description="otpauth:// URI (render it as a QR code).")
    recovery_codes: list[str] = Field(
        description="Single-use codes for when the authenticator is lost. Shown once."
    )


class MfaEnable(Schema):
    model_config = ConfigDict(extra="forbid")

    otp: Otp = Field(description="A current code from the authenticator, proving the setup worked.")


class MfaDisable(Schema):
    model_config = ConfigDict(extra="forbid")

    password: LoginPassword = Field(description="The account's password.")
    otp: Otp = Field(description="A current TOTP code or an unused recovery code.")
