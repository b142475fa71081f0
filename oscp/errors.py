"""Errors of the oscp package.

    OscpError
    ├── ProtocolError            an incoming message the protocol rejects; ``status``
    │   ├── BadRequest           400 invalid body, headers or segments
    │   │   └── UnknownGroup     400 a group id no site group carries
    │   ├── MissingToken         401 no ``Authorization: Token ...``
    │   ├── WrongToken           403 a token no capacity provider holds
    │   │   └── NotRegistered    403 a known party that is not registered (yet)
    │   ├── MethodNotAllowed     405 e.g. GET on a message path
    │   ├── NotStored            500 the app could not store an accepted message
    │   └── NoCommonVersion      501 Register offers no version we speak
    ├── RegistrationError        a registration event not allowed in the current state
    └── DeliveryError            one of our messages did not get through
        ├── NotConnected         no base URL or token to reach the party yet
        ├── PeerUnreachable      connection refused, timeout (httpx errors, translated)
        └── PeerRejected         the party answered with an error; ``status``

Every `ProtocolError` turns into its HTTP status and ``{"message": ...}``.
"""

from __future__ import annotations


class OscpError(Exception):
    """Root of the oscp package's errors."""


class ProtocolError(OscpError):
    status: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(ProtocolError):
    status = 400


class UnknownGroup(BadRequest):
    status = 400


class MissingToken(ProtocolError):
    status = 401


class WrongToken(ProtocolError):
    status = 403


class NotRegistered(WrongToken):
    status = 403


class MethodNotAllowed(ProtocolError):
    status = 405


class NotStored(ProtocolError):
    status = 500


class NoCommonVersion(ProtocolError):
    status = 501


class RegistrationError(OscpError):
    """An event the registration lifecycle does not allow in its current state."""


class DeliveryError(OscpError):
    """An outgoing message was not delivered."""


class NotConnected(DeliveryError):
    """No base URL or token for the party yet."""


class PeerUnreachable(DeliveryError):
    """The party could not be reached (connection, timeout)."""


class PeerRejected(DeliveryError):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"{status}: {message}")
        self.status = status
