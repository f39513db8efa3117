"""Dial-in PINs: the policy (length, trivial PINs, lockout, expiry) and their storage.

A leader who dials in proves who they are with their extension or phone
number and a PIN. PINs are short, so they are stored as salted scrypt hashes
and guessing is limited by a lockout that lifts by itself after a while.

The lockout is counted per user *and origin* (the caller's number, or a SIP
caller's address): ``max_failures`` wrong PINs lock that user's PIN for that
origin only, so a stranger guessing from elsewhere cannot lock a leader out of
their own phone. Across all origins together a user's PIN locks only after
``OVERALL_FACTOR`` times as many failures (guessing spread over many origins).
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, fields, replace

from sqlalchemy import delete, select

from .database import Database
from .models import PinLockout, Setting, User
from .secrets import hash_secret, verify_secret
from .users import UserError, normalize_aor

PIN_POLICY_KEY = "pin_policy"
MIN_ALLOWED, MAX_ALLOWED = 4, 24
OVERALL_FACTOR = 10  # failures from every origin together that lock a PIN everywhere


_DUMMY = hash_secret("000000")  # checked against when there is nothing to check


class PinError(ValueError):
    """A PIN or a policy value is refused; the message says why."""


@dataclass(frozen=True, slots=True)
class PinPolicy:
    min_length: int = 5
    max_failures: int = 5          # wrong PINs in a row before the PIN locks
    lockout_minutes: float = 15.0  # a locked PIN unlocks by itself after this
    expiry_days: float = 0.0       # 0: PINs never expire
    allow_trivial: bool = False    # 11111, 12345, 54321, the user's own extension or number

    def validate(self) -> PinPolicy:
        if not MIN_ALLOWED <= self.min_length <= MAX_ALLOWED:
            raise PinError(f"min-length must be between {MIN_ALLOWED} and {MAX_ALLOWED} "
                           f"(got {self.min_length})")
        if not 1 <= self.max_failures <= 100:
            raise PinError(f"max-failures must be between 1 and 100 (got {self.max_failures})")
        if not 0 < self.lockout_minutes <= 7 * 24 * 60:
            raise PinError(f"lockout-minutes must be above 0 and at most a week "
                           f"(got {self.lockout_minutes:g})")
        if not 0 <= self.expiry_days <= 3650:
            raise PinError(f"expiry-days must be between 0 and 3650 (got {self.expiry_days:g})")
        return self

    def as_dict(self) -> dict[str, object]:
        return asdict(self)


def is_trivial(pin: str, own_numbers: tuple[str, ...] = ()) -> str | None:
    """Why ``pin`` is too easy to guess, or None."""
    if len(set(pin)) == 1:
        return "it repeats one digit"
    steps = {(int(b) - int(a)) % 10 for a, b in itertools.pairwise(pin)}
    if steps == {1}:
        return "it is an ascending run"
    if steps == {9}:
        return "it is a descending run"
    for number in own_numbers:
        digits = number.lstrip("+")
        if digits and (pin == digits or (len(pin) >= 4 and digits.endswith(pin))):
            return "it is the user's own extension or phone number"
    return None


def check_pin(pin: str, policy: PinPolicy, own_numbers: tuple[str, ...] = ()) -> None:
    """Raise PinError when ``pin`` does not meet the policy."""
    if not pin.isdigit() or not pin.isascii():
        raise PinError("a PIN is made of digits 0-9 only")
    if len(pin) < policy.min_length:
        raise PinError(f"a PIN needs at least {policy.min_length} digits")
    if len(pin) > MAX_ALLOWED:
        raise PinError(f"a PIN has at most {MAX_ALLOWED} digits")
    if not policy.allow_trivial:
        reason = is_trivial(pin, own_numbers)
        if reason is not None:
            raise PinError(f"that PIN is too easy to guess: {reason}")


@dataclass(frozen=True, slots=True)
class PinCheck:
    """The result of a dial-in sign-in: ok, wrong, locked, expired or no-pin."""

    outcome: str
    aor: str | None = None
    failures: int = 0


def _own_numbers(user: User) -> tuple[str, ...]:
    return tuple(x for x in (user.extension, user.phone) if x)


class PinStore:
    def __init__(self, db: Database) -> None:
        self._db = db

    # ---------------------------------------------------------------- policy
    def policy(self) -> PinPolicy:
        with self._db.session() as session:
            row = session.get(Setting, PIN_POLICY_KEY)
            if row is None:
                return PinPolicy()
            stored = json.loads(row.value)
        known = {f.name for f in fields(PinPolicy)}
        return PinPolicy(**{k: v for k, v in stored.items() if k in known})

    def set_policy(self, now: float, **changes: object) -> PinPolicy:
        try:
            policy = replace(self.policy(), **changes).validate()  # type: ignore[arg-type]
        except TypeError as exc:
            raise PinError(str(exc)) from exc
        with self._db.session() as session:
            row = session.get(Setting, PIN_POLICY_KEY)
            value = json.dumps(policy.as_dict(), sort_keys=True)
            if row is None:
                session.add(Setting(key=PIN_POLICY_KEY, value=value, updated_at=now))
            else:
                row.value, row.updated_at = value, now
            session.commit()
        return policy

    # ---------------------------------------------------------------- PINs
    def set_pin(self, sip_uri: str, pin: str, now: float) -> None:
        aor = normalize_aor(sip_uri).aor()
        policy = self.policy()
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.sip_uri == aor))
            if user is None:
                raise UserError(f"no user {aor}")
            check_pin(pin, policy, _own_numbers(user))
            user.pin_hash = hash_secret(pin)
            user.pin_set_at = now
            user.pin_failures = 0
            user.pin_locked_until = None
            session.execute(delete(PinLockout).where(PinLockout.aor == aor))
            session.commit()

    @staticmethod
    def _find(session: object, digits: str) -> User | None:
        """The user whose extension or phone number the caller keyed in."""
        from sqlalchemy.orm import Session

        assert isinstance(session, Session)
        if not digits.isdigit():
            return None
        user = session.scalar(select(User).where(User.extension == digits))
        if user is not None:
            return user
        user = session.scalar(select(User).where(User.phone == f"+{digits}"))
        if user is not None or len(digits) < 7:
            return user
        # a national number: the end of exactly one user's E.164 number
        matches = session.scalars(select(User).where(User.phone.like(f"%{digits}"))).all()
        return matches[0] if len(matches) == 1 else None

    def verify(self, number: str, pin: str, now: float, origin: str = "") -> PinCheck:
        """Check a leader's extension/number and PIN from ``origin`` (the caller's
        number or address), counting failures towards that origin's lockout and,
        with a higher bar, the user's lockout everywhere."""
        policy = self.policy()
        origin = origin[:128]
        with self._db.session() as session:
            user = self._find(session, number)
            if user is None:
                verify_secret(pin, _DUMMY)  # as long as a real check: no timing tells
                return PinCheck("wrong")
            lockout = session.get(PinLockout, (user.sip_uri, origin))
            if lockout is None:
                lockout = PinLockout(aor=user.sip_uri, origin=origin, failures=0,
                                     updated_at=now)
                session.add(lockout)
            # a lockout that has run out is lifted
            if user.pin_locked_until is not None and now >= user.pin_locked_until:
                user.pin_locked_until, user.pin_failures = None, 0
            if lockout.locked_until is not None and now >= lockout.locked_until:
                lockout.locked_until, lockout.failures = None, 0
            if lockout.locked_until is not None or user.pin_locked_until is not None:
                session.commit()
                return PinCheck("locked", user.sip_uri, lockout.failures)
            if user.pin_hash is None:
                session.commit()
                return PinCheck("no-pin", user.sip_uri)
            if not verify_secret(pin, user.pin_hash):
                lockout.failures += 1
                lockout.updated_at = now
                user.pin_failures = (user.pin_failures or 0) + 1
                outcome = "wrong"
                if lockout.failures >= policy.max_failures:
                    lockout.locked_until = now + policy.lockout_minutes * 60
                    outcome = "locked"
                if user.pin_failures >= policy.max_failures * OVERALL_FACTOR:
                    user.pin_locked_until = now + policy.lockout_minutes * 60
                    outcome = "locked"
                session.commit()
                return PinCheck(outcome, user.sip_uri, lockout.failures)
            if policy.expiry_days and user.pin_set_at is not None \
                    and now > user.pin_set_at + policy.expiry_days * 86400:
                session.commit()
                return PinCheck("expired", user.sip_uri)
            lockout.failures = 0
            lockout.updated_at = now
            session.commit()
            return PinCheck("ok", user.sip_uri)

    def purge(self, now: float, older_than: float = 86_400.0) -> int:
        """Forget the lockout rows of origins not seen for a day (and not locked)."""
        with self._db.session() as session:
            result = session.execute(delete(PinLockout).where(
                PinLockout.updated_at < now - older_than,
                (PinLockout.locked_until.is_(None)) | (PinLockout.locked_until < now)))
            session.commit()
            return int(result.rowcount or 0)  # type: ignore[attr-defined]

    def unlock(self, sip_uri: str) -> None:
        aor = normalize_aor(sip_uri).aor()
        with self._db.session() as session:
            user = session.scalar(select(User).where(User.sip_uri == aor))
            if user is None:
                raise UserError(f"no user {aor}")
            user.pin_failures = 0
            user.pin_locked_until = None
            session.execute(delete(PinLockout).where(PinLockout.aor == aor))
            session.commit()
