"""The one exception tree of livemodel.

Every error a user can cause or meet derives from :class:`LivemodelError`. The CLI turns
each into a one-line message and a non-zero exit; the HTTP layer into a status code
(``http_status``). Lower-layer errors (SQLAlchemy, fsspec, pickle) are translated with
``raise ... from exc`` so the cause stays visible to developers but never reaches a user
as a traceback.

    LivemodelError
    ├── ConfigError            bad setting, unreachable database, unknown backend URL
    ├── StoreError             the metadata or artifact store failed
    │   └── IntegrityError     an artifact's SHA-256 does not match: never unpickled
    ├── NotFoundError          unknown model, version, alias, prediction id
    ├── ConflictError          a write lost a race it cannot retry, or breaks a rule
    ├── InvalidInputError      malformed user input (file, frame, argument, request body)
    │   ├── SchemaError        a frame or column the signature cannot describe
    │   └── ValidationError    a batch violates a model's signature (carries violations)
    ├── ModelError             the user's model misbehaves (no ``predict``, raises, NaN)
    ├── UnavailableError       the server cannot answer now (overloaded, model down): 503
    │   └── ModelFailedError   (serving) the model failed on a request's records with no
    │                          fallback answering: 422, or 503 when it did not answer in time
    └── StatisticsError        a statistic is undefined for the data given
"""

from __future__ import annotations


class LivemodelError(Exception):
    """Base of every error livemodel raises on purpose."""

    http_status = 500

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ConfigError(LivemodelError):
    """A setting is invalid, or a configured backend cannot be reached."""

    http_status = 500


class StoreError(LivemodelError):
    """The metadata database or the artifact store failed."""

    http_status = 503


class IntegrityError(StoreError):
    """Stored bytes do not match their recorded SHA-256; they are never deserialized."""

    http_status = 500


class NotFoundError(LivemodelError):
    """A model, version, alias or record does not exist."""

    http_status = 404


class ConflictError(LivemodelError):
    """A write conflicts with the current state (and retrying did not help)."""

    http_status = 409


class InvalidInputError(LivemodelError):
    """Input from a user (file, argument, frame, request) is malformed."""

    http_status = 422


class SchemaError(InvalidInputError):
    """A frame or column cannot be described by a signature."""


class ValidationError(InvalidInputError):
    """A batch violates a model signature."""


class ModelError(LivemodelError):
    """The user's model object is unusable or failed while predicting."""

    http_status = 500


class UnavailableError(LivemodelError):
    """The service cannot answer right now (overloaded, a model that did not answer in time)."""

    http_status = 503


class StatisticsError(LivemodelError):
    """A statistic is undefined for the given data (empty sample, no variance, ...)."""

    http_status = 422
