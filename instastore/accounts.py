"""Accounts: sign up, log in and out, bearer-token sessions, passwords, profiles.

Passwords are hashed with argon2id on pools of their own (``instastore.passwords``);
failed log-ins (and password changes) are throttled per client address and per account
(``instastore.ratelimit.LoginThrottle``). A session token is 32 random bytes handed to
the client once; only its sha256 is stored. A user sees and ends only their own
sessions; a new password ends all of them but the one that set it.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from instastore.clock import utcnow
from instastore.config import Settings
from instastore.errors import Conflict, InvalidInput, NotAllowed, NotAuthenticated, NotFound
from instastore.ids import IdGenerator
from instastore.limits import (
    MAX_DISPLAY_NAME_CHARS,
    MAX_LOGIN_NAME_CHARS,
    MAX_PASSWORD_CHARS,
    MAX_SESSIONS_LISTED,
    MIN_PASSWORD_CHARS,
    SESSION_TOUCH_EVERY,
    TOKEN_BYTES,
)
from instastore.model import PhotoCounts, User, UserSession
from instastore.passwords import PasswordHashing
from instastore.ratelimit import LoginThrottle, SharedLimit
from instastore.storage.ports import AccountStore, FollowGraph, LeaseStore, PhotoStore
from instastore.text import check_text

USERNAME = re.compile(
    r"[a-z0-9_.]{3,30}"
)  # SECURITY: used with fullmatch ("$" allows a final "\n")
# What token_urlsafe(TOKEN_BYTES) makes, with room to grow; anything else is no token of ours.
TOKEN = re.compile(r"[A-Za-z0-9_-]{1,256}")


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def check_username(username: object) -> str:
    if not isinstance(username, str) or not USERNAME.fullmatch(username):
        raise InvalidInput("username must be 3-30 characters of a-z, 0-9, '_' and '.'")
    return username


def check_password(password: object, field: str = "password") -> str:
    if (
        not isinstance(password, str)
        or not MIN_PASSWORD_CHARS <= len(password) <= MAX_PASSWORD_CHARS
    ):
        raise InvalidInput(
            f"{field} must be {MIN_PASSWORD_CHARS} to {MAX_PASSWORD_CHARS} characters"
        )
    return password


def check_display_name(name: object) -> str:
    if not isinstance(name, str) or len(name) > MAX_DISPLAY_NAME_CHARS:
        raise InvalidInput(
            f"display_name must be a string of at most {MAX_DISPLAY_NAME_CHARS} characters"
        )
    return check_text(name.strip(), "display_name")


@dataclass(frozen=True)
class Profile:
    user: User
    photo_counts: PhotoCounts  # everything, for each viewer to count what it may see
    photos: int  # the photos the viewer it was made for may see (the owner: all live ones)
    followers: int
    following: int


class Accounts:
    def __init__(
        self,
        accounts: AccountStore,
        photos: PhotoStore,
        graph: FollowGraph,
        settings: Settings,
        ids: IdGenerator,
        limits: LeaseStore,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.accounts = accounts
        self.photos = photos  # the profile's photo count
        self.graph = graph  # the profile's follow counts
        self.settings = settings
        self.ids = ids
        self.clock = clock
        self.on_change: Callable[[int], None] | None = None  # told of a changed user id
        self.hashing = PasswordHashing(
            settings.password_hash_threads,
            settings.password_hash_queue,
            settings.password_hash_time_cost,
            settings.password_hash_memory_kib,
            settings.signup_hash_threads,
            settings.signup_hash_queue,
        )
        self.throttle = LoginThrottle(
            limits, settings.login_failures_per_address, settings.login_failures_per_account
        )
        self.sign_ups = SharedLimit(limits, "sign-ups", settings.signups_per_address)

    def close(self) -> None:
        self.hashing.close()

    async def sign_up(
        self, username: object, password: object, display_name: object = "", address: str = ""
    ) -> User:
        """A new account; ``Conflict`` if the name is taken, ``RateLimited`` past the
        sign-ups of ``address`` (the client's), both checked before the password is hashed;
        ``Overloaded`` while sign-ups are shed (``PasswordHashing.hash_for_sign_up``)."""
        username = check_username(username)
        password = check_password(password)
        display_name = check_display_name(display_name or "")
        # SECURITY: a sign-up costs a password hash (64 MiB of argon2id by default): a
        # name that is taken (public anyway, as its profile) spends none, and neither does
        # an address past its sign-ups. create_user still refuses a name taken meanwhile.
        if await self.accounts.get_user_by_name(username) is not None:
            raise Conflict(f"username {username!r} is taken")
        await self.sign_ups.take(address, "sign-ups from this address")
        hashed = await self.hashing.hash_for_sign_up(password)
        user = User(self.ids.next_id(), username, hashed, display_name, False, self.clock())
        await self.accounts.create_user(user)
        return user

    async def log_in(
        self, username: object, password: object, address: str = ""
    ) -> tuple[User, str]:
        """A session for the right password; ``RateLimited`` when ``address`` (the client's)
        or the account has failed too often (see ``LoginThrottle``)."""
        if not isinstance(username, str) or not isinstance(password, str):
            raise NotAuthenticated("wrong username or password")
        if len(password) > MAX_PASSWORD_CHARS or len(username) > MAX_LOGIN_NAME_CHARS:
            raise NotAuthenticated("wrong username or password")
        user = await self._password_matches(username, password, address)
        if user is None:
            raise NotAuthenticated("wrong username or password")
        token = secrets.token_urlsafe(TOKEN_BYTES)
        now = self.clock()
        session = UserSession(
            self.ids.next_id(),
            user.id,
            now,
            now,
            now + timedelta(days=self.settings.session_days),
            address,
        )
        await self.accounts.create_session(token_hash(token), session)
        # SECURITY: a password change ends every other session after it sets the new
        # hash; a log-in that checked the old hash and stored its session after that
        # ending would outlive it. Read again: a changed hash takes the session back.
        now_user = await self.accounts.get_user(user.id)
        if now_user is None or now_user.password_hash != user.password_hash:
            await self.accounts.delete_session(user.id, session.id)
            raise NotAuthenticated("the password changed meanwhile; log in with the new one")
        return user, token

    async def _password_matches(
        self, username: str, password: str, address: str, user: User | None = None
    ) -> User | None:
        """The user (``user``, or the one named ``username``) if ``password`` is theirs,
        else None; ``RateLimited`` when ``address`` or the account has failed too often
        (see ``LoginThrottle``). A failure spends its hits; a success gives them back."""
        hits = await self.throttle.admit(username, address)
        try:
            user = user or await self.accounts.get_user_by_name(username)
            ok = await self.hashing.verify(
                user.password_hash if user else self.hashing.dummy_hash, password
            )
        except BaseException:
            await self.throttle.refund(hits)  # no password was checked: nothing spent
            raise
        if user is None or not ok:
            return None  # its hits stay: spent
        await self.throttle.succeeded(username, address, hits)
        return user

    async def log_out(self, session: UserSession) -> None:
        await self.accounts.delete_session(session.user_id, session.id)

    async def authenticate(self, token: str) -> tuple[User, UserSession]:
        """The user and session of a bearer token; its last use is written at most once
        every ``SESSION_TOUCH_EVERY``, never once per request."""
        # SECURITY: a header of odd bytes (not UTF-8, controls) is refused before it is hashed.
        if not TOKEN.fullmatch(token):
            raise NotAuthenticated("the bearer token is malformed; log in again")
        hashed, now = token_hash(token), self.clock()
        session = await self.accounts.get_session(hashed, now)
        user = await self.accounts.get_user(session.user_id) if session else None
        if session is None or user is None:
            raise NotAuthenticated("the bearer token is unknown or expired; log in again")
        if now - session.last_used_at >= SESSION_TOUCH_EVERY:
            await self.accounts.touch_session(hashed, session, now)
            session = replace(session, last_used_at=now)
        return user, session

    async def sessions(self, user: User) -> list[UserSession]:
        """The user's unexpired sessions, newest first (the newest ``MAX_SESSIONS_LISTED``)."""
        return await self.accounts.user_sessions(user.id, self.clock(), MAX_SESSIONS_LISTED)

    async def revoke(self, user: User, session_id: int) -> None:
        """End one of the user's own sessions; ``NotFound`` for any other id, another
        user's session included (which stays)."""
        if not await self.accounts.delete_session(user.id, session_id):
            raise NotFound(f"you have no session {session_id}")

    async def log_out_everywhere(self, user: User) -> None:
        await self.accounts.delete_user_sessions(user.id)

    async def change_password(
        self, user: User, current: UserSession, old: object, new: object, address: str = ""
    ) -> None:
        """Set a new password once the old one is checked (throttled as a log-in is: a
        stolen token must not guess it quickly), and end every session but ``current``."""
        new = check_password(new, "new_password")
        if not isinstance(old, str) or len(old) > MAX_PASSWORD_CHARS:
            raise NotAllowed("the password is wrong")
        if await self._password_matches(user.username, old, address, user) is None:
            raise NotAllowed("the password is wrong")
        changed = replace(user, password_hash=await self.hashing.hash(new))
        await self.accounts.set_password_hash(user.id, changed.password_hash)
        # SECURITY: a new password ends every other session (whoever else held a token).
        await self.accounts.delete_user_sessions(user.id, keep=current.id)
        if self.on_change is not None:
            self.on_change(changed.id)

    async def update(self, user: User, display_name: object = None, private: object = None) -> User:
        changed = user
        if display_name is not None:
            changed = replace(changed, display_name=check_display_name(display_name))
        if private is not None:
            if not isinstance(private, bool):
                raise InvalidInput("private must be true or false")
            changed = replace(changed, private=private)
        if changed != user:
            await self.accounts.update_user(changed)
            if self.on_change is not None:
                self.on_change(changed.id)
        return changed

    async def by_name(self, username: str) -> User:
        user = await self.accounts.get_user_by_name(username)
        if user is None:
            raise NotFound(f"no user {username!r}")
        return user

    async def profile(self, username: str) -> Profile:
        """A profile as its owner sees it (``viewing.Viewing.profile`` makes it anyone's)."""
        return await self.profile_of(await self.by_name(username))

    async def profile_of(self, user: User) -> Profile:
        """``user``'s profile, as its owner sees it: their counts read."""
        photos, (followers, following) = await asyncio.gather(
            self.photos.count_photos(user.id), self.graph.count_follows(user.id)
        )
        return Profile(user, photos, photos.live, followers, following)
